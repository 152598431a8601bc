/**
 * The proposal's three-VM example, applied vm1, vm2, vm3 in order, in both config spellings,
 * on the in-memory xenstored and on Debian's C xenstored (with the simulated host): the
 * records, as Xen's own `xenstore-ls -f` prints them, are the proposal's lines (owner, size,
 * mappings per domain) plus the extensions, and the bytes are really shared.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readXlConfig } from '../../lib/config';
import { gfnsOf, sharedMemoryTree } from '../../lib/store';
import { connect, XenstoreError } from '../../xenstore-wire';
import { runXenstoreCli } from '../harness/clients';
import { projectRoot } from '../harness/daemons';
import { consistencyProblems, startEnv, type StoreKind } from './helpers';

const ROOT = projectRoot();
const FIXTURES = join(ROOT, 'fixtures', 'config', 'three-vm');
const EXPECTED = join(ROOT, 'fixtures', 'manager');

/** The proposal's own lines: owner, size, and one mapping per domain using the region. */
const PROPOSAL_LINES = [
  '/local/shared_mem/ID1/owner = "1"',
  '/local/shared_mem/ID1/size = "0x100000"',
  '/local/shared_mem/ID1/mappings/1 = "0x50000000-0x50100000"',
  '/local/shared_mem/ID1/mappings/2 = "0x50000000-0x50100000"',
  '/local/shared_mem/ID2/owner = "1"',
  '/local/shared_mem/ID2/size = "0x100000"',
  '/local/shared_mem/ID2/mappings/1 = "0x50100000-0x50200000"',
  '/local/shared_mem/ID2/mappings/3 = "0x50000000-0x50100000"',
];

for (const kind of ['memory', 'cxenstored'] as StoreKind[]) {
  for (const spelling of ['static_shared_mem', 'static_shm'] as const) {
    test(`three-VM example, ${spelling}, on ${kind === 'memory' ? 'the in-memory xenstored' : 'C xenstored'}`, async (t) => {
      const env = await startEnv(kind);
      t.teardown(() => env.close());
      const cfg = (n: string) => readXlConfig(join(FIXTURES, spelling, `${n}.cfg`));
      // The configs ask for 128 MiB each; vm1 gets room for the 2 MiB it owns (xl mem-max).
      for (const name of ['vm1', 'vm2', 'vm3']) await env.vm(name, { memoryMiB: 128, maxmemMiB: name === 'vm1' ? 130 : 128 });
      const m = env.manager();
      const r1 = await m.apply({ config: await cfg('vm1') });
      const r2 = await m.apply({ config: await cfg('vm2'), allowSetTarget: true });
      const r3 = await m.apply({ config: await cfg('vm3'), allowSetTarget: true });
      t.deepEqual(r1.entries.map((e) => [e.id, e.role, e.action]), [['ID1', 'owner', 'created'], ['ID2', 'owner', 'created']]);
      t.deepEqual(r2.entries.map((e) => [e.id, e.role, e.action, e.setTarget]), [['ID1', 'borrower', 'mapped', 'done']]);
      t.deepEqual(r3.entries.map((e) => [e.id, e.role, e.action, e.setTarget]), [['ID2', 'borrower', 'mapped', 'done']]);

      // Xen's own client prints the records.
      const ls = await runXenstoreCli(env, 'xenstore-ls', ['-f', '/local/shared_mem']);
      t.is(ls.code, 0, ls.stderr);
      const lines = ls.stdout.trimEnd().split('\n');
      for (const l of PROPOSAL_LINES) t.true(lines.includes(l), `missing proposal line ${l}`);
      t.is(ls.stdout, readFileSync(join(EXPECTED, `three-vm.${spelling}.expected`), 'utf8'));
      // Our dumper prints what xenstore-ls prints.
      t.deepEqual((await sharedMemoryTree(env.xs, '/local/shared_mem', [])), lines);

      // The guest mirrors: readable by their domain only; the set_target records.
      for (const [domid, id, role] of [[1, 'ID1', 'owner'], [1, 'ID2', 'owner'], [2, 'ID1', 'borrower'], [3, 'ID2', 'borrower']] as const) {
        const p = `/local/domain/${domid}/shared_mem/${id}`;
        t.is(await env.xs.readString(`${p}/role`), role);
        t.deepEqual((await env.xs.getPerms(p)).map((x) => `${x.access}${x.domid}`), ['n0', `r${domid}`]);
      }
      const mirror2 = await runXenstoreCli(env, 'xenstore-ls', ['-f', '-p', '/local/domain/2/shared_mem']);
      t.is(mirror2.stdout, readFileSync(join(EXPECTED, 'three-vm.mirror-vm2.expected'), 'utf8'));
      t.is(await env.xs.readString('/local/domain/2/target'), '1');
      t.is(await env.xs.readString('/local/domain/3/target'), '1');
      t.false(await env.xs.exists('/local/domain/1/target'));
      t.deepEqual((await env.xs.getPerms('/local/shared_mem/ID1')).map((x) => `${x.access}${x.domid}`), ['n0']);

      // The bytes: vm1 writes each region, vm2 and vm3 read them at their own addresses.
      const w1 = await env.hv.guestMap(1, gfnsOf(0x50000000n, 0x100000n));
      const w2 = await env.hv.guestMap(1, gfnsOf(0x50100000n, 0x100000n));
      w1.buffer.write('for vm2', 0x1234);
      w2.buffer.write('for vm3', 0xfff00);
      const v2 = await env.hv.guestMap(2, gfnsOf(0x50000000n, 0x100000n));
      const v3 = await env.hv.guestMap(3, gfnsOf(0x50000000n, 0x100000n));
      t.is(v2.buffer.toString('utf8', 0x1234, 0x1234 + 7), 'for vm2');
      t.is(v3.buffer.toString('utf8', 0xfff00, 0xfff00 + 7), 'for vm3');
      v3.buffer.write('reply', 0);
      t.is(w2.buffer.toString('utf8', 0, 5), 'reply');
      for (const v of [w1, w2, v2, v3]) v.unmap();
      t.deepEqual(await consistencyProblems(env), []);

      if (kind === 'memory') {
        // As the guest itself: its mirror yes, dom0's records no.
        const guest = await connect({ path: await env.server!.domainSocketPath(2) });
        t.is(await guest.readString('/local/domain/2/shared_mem/ID1/begin'), '0x50000000');
        const denied = await t.throwsAsync(guest.read('/local/shared_mem/ID1/owner'));
        t.is((denied as XenstoreError).code, 'EACCES');
        const other = await t.throwsAsync(guest.read('/local/domain/1/shared_mem/ID1/begin'));
        t.is((other as XenstoreError).code, 'EACCES');
        await guest.close();
      }
    });
  }
}
