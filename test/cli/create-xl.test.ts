/**
 * `xen-sshm create` and `destroy` on the real-host path: xl run as a command (here a stand-in,
 * fake-xl.ts, playing xl on a simulated host; the QEMU tier runs the real xl), each step in
 * order, and on any failing step everything undone: release, then `xl destroy` of the half-made
 * domain, exit 1 naming the step. The records and the simulated host are checked after each.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../xenstore-wire';
import { SimHypervisor } from '../../lib/hypervisor/sim';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');
const THREE = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Host {
  dir: string;
  sim: string;
  socket: string;
  xl: string;
  log: string;
  /** Runs xen-sshm with this host's xenstored, sim and fake xl; FAKE_XL_FAIL from `fail`. */
  run(args: string[], fail?: string): Promise<Run>;
  /** The fake xl's calls, in order. */
  calls(): string[][];
  /** Domains the simulated host has (name by domid from xenstore, and the host's own list). */
  domains(): Promise<{ xenstore: string[]; host: number[] }>;
  records(): Promise<string[]>;
}

async function host(t: import('ava').ExecutionContext): Promise<Host> {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-xl-'));
  // The sandbox's xenstored and simulated host, used here as a "real" host: xen-sshm reaches
  // them with --xenstore and --sim, and only the fake xl makes and ends domains.
  const sandbox = new Sandbox(join(dir, 'host'), { idleMs: 60_000 });
  await sandbox.start();
  t.teardown(async () => {
    await sandbox.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const server = { socketPath: sandbox.socketPath };
  const sim = sandbox.simDir;
  const xl = join(dir, 'xl');
  writeFileSync(xl, `#!${process.execPath}\nrequire(${JSON.stringify(join(__dirname, 'fake-xl.js'))});\n`);
  chmodSync(xl, 0o755);
  const log = join(dir, 'xl.log');
  writeFileSync(log, '');
  const env = (fail?: string): NodeJS.ProcessEnv => ({ ...process.env, XENSTORED_PATH: server.socketPath, FAKE_XL_SIM: sim, FAKE_XL_LOG: log, ...(fail ? { FAKE_XL_FAIL: fail } : {}) });
  return {
    dir, sim, socket: server.socketPath, xl, log,
    run: (args, fail) =>
      new Promise((done) => {
        const xlOpt = args.includes('create') || args.includes('destroy') ? ['--xl', xl] : [];
        const child = spawn(process.execPath, [CLI, ...args, ...xlOpt, '--xenstore', server.socketPath, '--sim', sim], { env: env(fail), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b) => (stdout += b));
        child.stderr.on('data', (b) => (stderr += b));
        child.on('close', (code) => done({ code, stdout, stderr }));
      }),
    calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]),
    async domains() {
      const xs = await connect({ path: server.socketPath });
      const hv = new SimHypervisor({ dir: sim, allowOnXenHost: true });
      try {
        const ids = (await xs.exists('/local/domain')) ? (await xs.directory('/local/domain')).filter((d) => d !== '0') : [];
        const names = await Promise.all(ids.map(async (d) => (await xs.readString(`/local/domain/${d}/name`)) + ':' + d));
        return { xenstore: names.sort(), host: (await hv.domains()).map((d) => d.domid).filter((d) => d !== 0).sort((a, b) => a - b) };
      } finally {
        await xs.close();
        await hv.close();
      }
    },
    /** The regions recorded (the per-domain index, `by-domain`, is not a region). */
    async records() {
      const xs = await connect({ path: server.socketPath });
      try {
        return (await xs.exists('/local/shared_mem')) ? (await xs.directory('/local/shared_mem')).filter((n) => n !== 'by-domain').sort() : [];
      } finally {
        await xs.close();
      }
    },
  };
}

function json<T>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

const cfg = (n: string): string => join(THREE, `${n}.cfg`);

test('create runs xl create -p, apply, xl unpause; destroy releases, then xl destroy', async (t) => {
  const h = await host(t);
  const c1 = await h.run(['create', cfg('vm1'), '--raise-maxmem']);
  t.is(c1.code, 0, c1.stderr);
  t.is(c1.stdout, [
    'created vm1 as d1 with xl create -p',
    'vm1 (d1):',
    '  max memory raised from 129 to 130 MiB for the frames it owns (XEN_DOMCTL_max_mem)',
    '  ID1: owner, 1 MiB populated at 0x50000000-0x50100000',
    '  ID2: owner, 1 MiB populated at 0x50100000-0x50200000',
    'unpaused vm1',
    '',
  ].join('\n'));
  t.deepEqual(h.calls(), [['create', '-p', cfg('vm1')], ['domid', 'vm1'], ['unpause', '1']]);

  const c2 = json<{ ok: boolean; domid: number; toolstack: string; paused: boolean; applied: { entries: Array<{ id: string; role: string; setTarget: string }> } }>(
    await h.run(['--json', 'create', cfg('vm2'), '--allow-set-target', '--paused']),
  );
  t.deepEqual([c2.ok, c2.domid, c2.toolstack, c2.paused], [true, 2, 'xl', true]);
  t.deepEqual(c2.applied.entries.map((e) => [e.id, e.role, e.setTarget]), [['ID1', 'borrower', 'done']]);
  t.deepEqual(h.calls().slice(3), [['create', '-p', cfg('vm2')], ['domid', 'vm2']], '--paused: no unpause');
  t.deepEqual(await h.records(), ['ID1', 'ID2']);

  const d2 = await h.run(['destroy', 'vm2']);
  t.is(d2.code, 0, d2.stderr);
  t.is(d2.stdout, 'ID1: d2 released as borrower\ndestroyed vm2 (d2)\n');
  t.deepEqual(h.calls().slice(5), [['domid', 'vm2'], ['destroy', '2']]);
  t.deepEqual((await h.domains()).xenstore, ['vm1:1']);
  const ls = json<{ regions: Array<{ id: string; mappings: Array<{ domid: number }> }> }>(await h.run(['ls', '--json']));
  t.deepEqual(ls.regions.map((r) => [r.id, r.mappings.map((m) => m.domid)]), [['ID1', [1]], ['ID2', [1]]]);

  // By domid too; the owner's regions go with it.
  const d1 = json<{ domid: number; domain: string; released: { entries: Array<{ id: string; action: string }> } }>(await h.run(['destroy', '1', '--json']));
  t.deepEqual([d1.domid, d1.domain, d1.released.entries.map((e) => `${e.id} ${e.action}`)], [1, 'vm1', ['ID1 released', 'ID2 released']]);
  t.deepEqual(h.calls().slice(7), [['domname', '1'], ['destroy', '1']]);
  t.deepEqual(await h.domains(), { xenstore: [], host: [] });
  t.deepEqual(await h.records(), []);
});

test('a failing apply is undone: release, then xl destroy of the half-made domain; exit 1 naming the step', async (t) => {
  const h = await host(t);
  t.is((await h.run(['create', cfg('vm1'), '--raise-maxmem'])).code, 0);
  // vm3 borrows ID2 but gives no set_target consent: apply refuses after xl create -p.
  const r = await h.run(['create', cfg('vm3')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^xen-sshm: create vm3: step apply failed: .*set_target.* \(undone: release of d2, xl destroy 2\)\n  hint: /);
  t.deepEqual(h.calls().slice(3), [['create', '-p', cfg('vm3')], ['domid', 'vm3'], ['destroy', '2']]);
  t.deepEqual(await h.domains(), { xenstore: ['vm1:1'], host: [1] }, 'vm3 is gone from the host and from xenstore');
  const ls = json<{ regions: Array<{ id: string; mappings: Array<{ domid: number }> }> }>(await h.run(['ls', '--json']));
  t.deepEqual(ls.regions.map((x) => [x.id, x.mappings.map((m) => m.domid)]), [['ID1', [1]], ['ID2', [1]]]);

  const j = json<{ ok: boolean; error: { kind: string; code: string; step: string; domain: string; domid: number; undone: string[]; left: string[]; cause: { kind: string; reason: string } } }>(
    await h.run(['create', cfg('vm3'), '--json']),
  );
  t.deepEqual([j.ok, j.error.kind, j.error.code, j.error.step, j.error.domain, j.error.domid], [false, 'toolstack', 'EPERM', 'apply', 'vm3', 2]);
  t.deepEqual([j.error.undone, j.error.left], [['release of d2', 'xl destroy 2'], []]);
  t.deepEqual([j.error.cause.kind, j.error.cause.reason], ['manager', 'set-target']);
});

test('a failing xl unpause is undone too: the mapping released, the domain destroyed', async (t) => {
  const h = await host(t);
  t.is((await h.run(['create', cfg('vm1'), '--raise-maxmem'])).code, 0);
  const r = await h.run(['create', cfg('vm2'), '--allow-set-target'], 'unpause');
  t.is(r.code, 1);
  t.regex(r.stderr, /^xen-sshm: create vm2: step unpause failed: \S+ unpause 2 failed \(exit status 1\): libxl: error: .*injected failure of xl unpause \(undone: release of d2, xl destroy 2\)\n$/);
  t.deepEqual(h.calls().slice(3), [['create', '-p', cfg('vm2')], ['domid', 'vm2'], ['unpause', '2'], ['destroy', '2']]);
  t.deepEqual(await h.domains(), { xenstore: ['vm1:1'], host: [1] });
  const ls = json<{ regions: Array<{ id: string; mappings: Array<{ domid: number }> }> }>(await h.run(['ls', '--json']));
  t.deepEqual(ls.regions.map((x) => [x.id, x.mappings.map((m) => m.domid)]), [['ID1', [1]], ['ID2', [1]]], "vm2's mapping was released");
});

test('a failing xl create leaves nothing to undo; an invalid config runs no xl at all', async (t) => {
  const h = await host(t);
  const r = json<{ error: { code: string; step: string; status: number; command: string; undone: string[] } }>(await h.run(['create', cfg('vm1'), '--json'], 'create'));
  t.deepEqual([r.error.code, r.error.step, r.error.status, r.error.command, r.error.undone], ['EXLFAIL', 'create', 1, `${h.xl} create -p ${cfg('vm1')}`, []]);
  t.deepEqual(h.calls(), [['create', '-p', cfg('vm1')]]);

  const bad = join(h.dir, 'bad.cfg');
  writeFileSync(bad, 'name = "bad"\nstatic_shm = ["id=X, begin=0x50000800, size=4K, role=owner"]\n');
  const b = await h.run(['create', bad]);
  t.is(b.code, 1);
  t.regex(b.stderr, /^xen-sshm: create bad: step check failed: .*1 config error, nothing created.*\n  hint: xen-sshm check .*bad\.cfg explains each\n.*bad\.cfg:2:\d+: error \[align\]/s);
  t.deepEqual(h.calls(), [['create', '-p', cfg('vm1')]], 'no xl call for an invalid config');
  t.deepEqual(await h.domains(), { xenstore: [], host: [] });
});

test('destroy: a failing xl destroy reports the step after the release; dom0 and unknown domains are refused before any change', async (t) => {
  const h = await host(t);
  t.is((await h.run(['create', cfg('vm1'), '--raise-maxmem'])).code, 0);
  const r = await h.run(['destroy', 'vm1'], 'destroy');
  t.is(r.code, 1);
  t.regex(r.stderr, /^xen-sshm: destroy vm1: step destroy failed: \S+ destroy 1 failed \(exit status 1\).* \(done: release of d1\)\n$/);
  t.deepEqual(await h.records(), [], 'released');
  t.deepEqual((await h.domains()).host, [1], 'the domain stays: xl destroy failed');

  const none = json<{ error: { code: string; step: string } }>(await h.run(['destroy', 'nope', '--json']));
  t.deepEqual([none.error.code, none.error.step], ['ESRCH', 'resolve']);
  const callsBefore = h.calls().length;
  const zero = await h.run(['destroy', '0']);
  t.is(zero.code, 1);
  t.regex(zero.stderr, /dom0 cannot be destroyed; nothing released/);
  t.deepEqual(h.calls().slice(callsBefore), [], 'no xl call for dom0');
});

test('create and destroy usage: sandbox-only and real-host-only options are refused with exit 2', async (t) => {
  const h = await host(t);
  const r = await h.run(['create', cfg('vm1'), '--domid', '7']);
  t.is(r.code, 2);
  t.is(r.stderr, 'xen-sshm: --domid and --maxmem are for the sandbox: on a real host xl takes them from the config\n');
  t.deepEqual(h.calls(), []);
});
