/**
 * `check` and `apply` agree on every cross-config rule, by construction: both run the one
 * planner (lib/config/plan.ts), `check` on the configs together, `apply` on one config against
 * the records the earlier applies left (and again inside its claim transaction). Each row of
 * the table is a sequence of configs: `xen-sshm check` of all of them together, and applying
 * them one after another (each as its own domain), must name the same rule for the last one, or
 * both accept it.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigFiles, type RuleId } from '../../lib/config';
import { ManagerError } from '../../lib/manager';
import { config, consistencyProblems, startEnv } from './helpers';

interface Row {
  what: string;
  /** name -> entries; applied in this order, the last one is the one judged. */
  configs: Array<[string, string]>;
  rule: RuleId | null;
}

const shm = (...entries: string[]): string => `static_shm = [${entries.map((e) => `"${e}"`).join(', ')}]`;
const mem = (...entries: string[]): string => `static_shared_mem = [${entries.map((e) => `"${e}"`).join(', ')}]`;
const OWNER = shm('id=A, begin=0x60000000, size=64K, role=owner');

export const TABLE: Row[] = [
  { what: 'an owner and a borrower', configs: [['a', OWNER], ['b', shm('id=A, begin=0x70000000, size=64K')]], rule: null },
  { what: 'a window at an offset, ending at the region end', configs: [['a', OWNER], ['b', shm('id=A, begin=0x70000000, size=16K, offset=48K')]], rule: null },
  { what: 'a second owner', configs: [['a', OWNER], ['b', shm('id=A, begin=0x60000000, size=64K, role=owner')]], rule: 'owner.multiple' },
  { what: 'a borrower with no owner anywhere', configs: [['b', shm('id=A, begin=0x70000000, size=64K')]], rule: 'owner.missing' },
  { what: "a window past the owner's region", configs: [['a', OWNER], ['b', shm('id=A, begin=0x70000000, size=64K, offset=4K')]], rule: 'window' },
  { what: 'a borrower writing a read-only region', configs: [['a', shm('id=A, begin=0x60000000, size=64K, role=owner, prot=r')], ['b', shm('id=A, begin=0x70000000, size=64K')]], rule: 'prot.above-owner' },
  { what: 'a read-only borrower of a read-only region', configs: [['a', shm('id=A, begin=0x60000000, size=64K, role=owner, prot=r')], ['b', shm('id=A, begin=0x70000000, size=64K, prot=r')]], rule: null },
  { what: 'static_shared_mem: the first domain owns, the next borrows', configs: [['a', mem('0x60000000+64K = A')], ['b', mem('0x70000000+64K = A')]], rule: null },
  { what: 'static_shared_mem: sizes differ', configs: [['a', mem('0x60000000+64K = A')], ['b', mem('0x70000000+128K = A')]], rule: 'size.mismatch' },
  { what: 'one ID in both spellings', configs: [['a', OWNER], ['b', mem('0x70000000+64K = A')]], rule: 'id.mixed-spelling' },
  {
    what: 'one borrower, two owners (set_target)',
    configs: [['a', OWNER], ['c', shm('id=C, begin=0x60000000, size=64K, role=owner')], ['b', shm('id=A, begin=0x70000000, size=64K', 'id=C, begin=0x71000000, size=64K')]],
    rule: 'set-target',
  },
  {
    what: "the proposal's example applied vm2, vm3, vm1: vm1 would borrow from both",
    configs: [['vm2', mem('0x50000000+1M = ID1')], ['vm3', mem('0x50000000+1M = ID2')], ['vm1', mem('0x50000000+1M = ID1', '0x50100000+1M = ID2')]],
    rule: 'set-target',
  },
  {
    what: "the proposal's example in its own order",
    configs: [['vm1', mem('0x50000000+1M = ID1', '0x50100000+1M = ID2')], ['vm2', mem('0x50000000+1M = ID1')], ['vm3', mem('0x50000000+1M = ID2')]],
    rule: null,
  },
];

const text = (name: string, body: string): string => `name = "${name}"\n${body}\n`;

for (const row of TABLE) {
  test(`check and apply agree: ${row.what} -> ${row.rule ?? 'accepted'}`, async (t) => {
    // check: every config together, as files.
    const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-agree-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const files = row.configs.map(([name, body]) => {
      const p = join(dir, `${name}.cfg`);
      writeFileSync(p, text(name, body));
      return p;
    });
    const checked = await checkConfigFiles(files);
    const last = files[files.length - 1];
    t.deepEqual(checked.errors.filter((e) => e.file !== last), [], 'the earlier configs are fine together');
    const checkRule = checked.errors.find((e) => e.file === last)?.rule ?? null;

    // apply: one after another, each as its own domain, on a fresh host.
    const env = await startEnv('memory');
    t.teardown(() => env.close());
    const m = env.manager();
    let applyRule: RuleId | null = null;
    for (const [i, [name, body]] of row.configs.entries()) {
      const domid = await env.vm(name);
      const run = m.apply({ config: config(text(name, body), `${name}.cfg`), domid, allowSetTarget: true });
      if (i < row.configs.length - 1) {
        await run;
        continue;
      }
      try {
        await run;
      } catch (e) {
        t.true(e instanceof ManagerError, String(e));
        applyRule = (e as ManagerError).rule ?? null;
        t.truthy(applyRule, `the refusal names its rule: ${(e as Error).message}`);
      }
    }
    t.is(checkRule, row.rule, 'check');
    t.is(applyRule, row.rule, 'apply');
    t.deepEqual(await consistencyProblems(env), []);
  });
}
