/**
 * Hostile input to the sandbox's `create` (issue 13, point 4): memory Xen cannot count is
 * refused with exact integers (no float page counts), just under the bound is accepted, and a
 * create that fails part-way (a name over xenstore's limits) leaves nothing behind: no domain
 * in the simulated host, no record in xenstore.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XENSTORE_PAYLOAD_MAX } from '../../xenstore-wire/constants';
import { Sandbox } from '../../lib/sandbox';
import { createDomain, MAX_DOMAIN_MIB } from '../../lib/sandbox/toolstack';
import { MAX_DOMAIN_PAGES, PAGES_PER_MIB } from '../../lib/vocabulary';
import { runXenSshm } from '../helpers/cli';


const cli = runXenSshm;

async function sandbox(t: import('ava').ExecutionContext): Promise<{ sb: Sandbox; dir: string; state(): Promise<{ host: number[]; xenstore: string[] }> }> {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-sbc-'));
  const sb = new Sandbox(join(dir, 'sb'), { idleMs: 60_000 });
  t.teardown(async () => {
    await sb.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    sb, dir,
    async state() {
      const xs = await sb.connect();
      const hv = sb.openHypervisor();
      try {
        const ids = (await xs.exists('/local/domain')) ? await xs.directory('/local/domain') : [];
        return { host: (await hv.domains()).map((d) => d.domid).filter((d) => d !== 0), xenstore: ids.filter((d) => d !== '0') };
      } finally {
        await xs.close();
        await hv.close();
      }
    },
  };
}

test('memory Xen cannot count is refused before any change, in exact integers', async (t) => {
  const s = await sandbox(t);
  const S = ['--sandbox-dir', s.sb.dir, '--no-apply'];
  t.is(MAX_DOMAIN_MIB, Math.floor(MAX_DOMAIN_PAGES / PAGES_PER_MIB) - 1, "max_pages is 32-bit, less libxl's 1 MiB");
  for (const [memory, accepted] of [
    ['18446744073709551616', false],
    ['99999999999', false],
    [String(MAX_DOMAIN_MIB + 1), false],
    ['0', false],
    ['"1.5"', false],
    ['"-4"', false],
    [String(MAX_DOMAIN_MIB), true],
  ] as const) {
    const cfg = join(s.dir, `m${memory.replace(/\W/g, '_')}.cfg`);
    writeFileSync(cfg, `name = "m${memory.replace(/\W/g, '_')}"\nmemory = ${memory}\n`);
    const r = await cli(['create', cfg, ...S, '--json']);
    if (accepted) {
      t.is(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { detail: string };
      t.is(j.detail, `${MAX_DOMAIN_MIB} MiB, max ${MAX_DOMAIN_MIB + 1} MiB`);
      continue;
    }
    t.is(r.code, 1, `memory = ${memory}`);
    const e = (JSON.parse(r.stdout) as { error: { code: string; step: string; message: string } }).error;
    t.deepEqual([e.code, e.step], ['EINVAL', 'create'], `memory = ${memory}`);
    t.regex(e.message, /memory/);
  }
  t.deepEqual((await s.state()).host.length, 1, 'only the domain at the bound exists');
  // The same bound on --maxmem and on maxmem in the config.
  const cfg = join(s.dir, 'mm.cfg');
  writeFileSync(cfg, 'name = "mm"\nmemory = 128\nmaxmem = 99999999999\n');
  t.is((await cli(['create', cfg, ...S])).code, 1);
  writeFileSync(cfg, 'name = "mm"\nmemory = 128\n');
  const flag = await cli(['create', cfg, ...S, '--maxmem', '18446744073709551616']);
  t.is(flag.code, 1);
  t.regex(flag.stderr, /--maxmem = 18446744073709551616 MiB is more than Xen can give a domain: at most 16777214 MiB/);
  t.deepEqual((await s.state()).host.length, 1);
});

test('a name over xenstore\'s limits fails and leaves nothing in the simulated host or xenstore', async (t) => {
  const s = await sandbox(t);
  const room = XENSTORE_PAYLOAD_MAX - '/local/domain/32752/name'.length - 1;
  const xs = await s.sb.connect();
  const hv = s.sb.openHypervisor();
  t.teardown(async () => {
    await xs.close();
    await hv.close();
  });
  for (const name of ['n'.repeat(room + 1), 'n'.repeat(5000), 'é'.repeat(Math.ceil(room / 2) + 1)]) {
    const e = await t.throwsAsync(createDomain(xs, hv, { name }));
    t.is((e as { code?: string }).code, 'E2BIG');
    t.deepEqual(await s.state(), { host: [], xenstore: [] });
  }
  // Just under the bound: accepted, and readable back whole.
  const d = await createDomain(xs, hv, { name: 'n'.repeat(room) });
  t.is((await xs.readString(`/local/domain/${d.domid}/name`)).length, room);
  t.deepEqual(await s.state(), { host: [d.domid], xenstore: [String(d.domid)] });
});

test('a create the daemon refuses part-way is undone: the simulated domain goes too', async (t) => {
  const s = await sandbox(t);
  const xs = await s.sb.connect();
  const hv = s.sb.openHypervisor();
  t.teardown(async () => {
    await xs.close();
    await hv.close();
  });
  // A client whose transactions all fail, as a xenstored refusing the records would.
  const refusing = new Proxy(xs, {
    get(target, prop, receiver) {
      if (prop === 'transaction') return () => Promise.reject(Object.assign(new Error('ENOSPC: TRANSACTION_END'), { code: 'ENOSPC', kind: 'xenstore' }));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const e = await t.throwsAsync(createDomain(refusing, hv, { name: 'victim' }));
  t.is((e as { code?: string }).code, 'ENOSPC');
  t.deepEqual(await s.state(), { host: [], xenstore: [] });
});
