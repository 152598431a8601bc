/**
 * The `xen-sshm` command as a user runs it: a sandbox session from create to destroy, --json
 * everywhere (errors too, through the shared handler), refusals on a real host, concurrent
 * invocations sharing one background xenstored, the demo, the progress bar on a terminal, and
 * the daemon command.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHypervisor } from '../../lib/hypervisor';
import { Sandbox } from '../../lib/sandbox';
import { gfnsOf } from '../../lib/store';
import { startServer } from '../../xenstore-wire/server';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');
const THREE = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');
/** Leftover sandbox daemons of a failed run go away by themselves. */
const ENV = { ...process.env, XEN_SSHM_SANDBOX_IDLE_MS: '60000' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function xs(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? ENV, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function json<T = Record<string, unknown>>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

function sandboxDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-cli-'));
  t.teardown(() => new Sandbox(dir).remove());
  return dir;
}

/** Processes whose command line names `needle` (the sandbox daemons of a folder). */
function processesNaming(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('a sandbox session: create, apply, ls, peek, release, reconcile, destroy', async (t) => {
  const sb = sandboxDir(t);
  const S = ['--sandbox-dir', sb];
  // --no-apply: only the domain, as xl create -p, so that apply is tried on its own below.
  const c1 = await xs(['create', join(THREE, 'vm1.cfg'), '--no-apply', ...S]);
  t.is(c1.code, 0, c1.stderr);
  t.regex(c1.stdout, /^created vm1 as d1 \(128 MiB, max 129 MiB\)\nunpaused vm1\n$/);
  t.is(json(await xs(['create', join(THREE, 'vm2.cfg'), '--no-apply', ...S, '--json'])).domid, 2);
  const dup = await xs(['create', join(THREE, 'vm2.cfg'), '--no-apply', ...S]);
  t.is(dup.code, 1);
  t.regex(dup.stderr, /^xen-sshm: create vm2: step create failed: a domain named "vm2" exists already/);

  // vm1 owns 2 MiB but has 1 MiB of slack: refused with what to do, then raised.
  const nomem = await xs(['apply', join(THREE, 'vm1.cfg'), '--domain', 'vm1', ...S]);
  t.is(nomem.code, 1);
  t.regex(nomem.stderr, /needs 512 pages \(2 MiB\).*\n  hint: .*--raise-maxmem/);
  const a1 = await xs(['apply', join(THREE, 'vm1.cfg'), '--domain', 'vm1', '--raise-maxmem', ...S]);
  t.is(a1.code, 0, a1.stderr);
  t.regex(a1.stdout, /max memory raised from 129 to 130 MiB/);
  t.regex(a1.stdout, /ID1: owner, 1 MiB populated at 0x50000000-0x50100000/);
  const a2 = json<{ ok: boolean; entries: Array<{ id: string; role: string; setTarget: string; begin: string }> }>(
    await xs(['apply', join(THREE, 'vm2.cfg'), '--domid', '2', '--allow-set-target', '--json', ...S]),
  );
  t.true(a2.ok);
  t.deepEqual(a2.entries.map((e) => [e.id, e.role, e.setTarget, e.begin]), [['ID1', 'borrower', 'done', '0x50000000']]);

  const ls = json<{ regions: Array<{ id: string; owner: number; state: string; size: string; mappings: Array<{ domid: number }> }>; domains: Array<{ domid: number; name: string; target: number | null }> }>(
    await xs(['ls', '--json', ...S]),
  );
  t.deepEqual(ls.regions.map((r) => [r.id, r.owner, r.state, r.size, r.mappings.map((m) => m.domid)]), [
    ['ID1', 1, 'ready', '0x100000', [1, 2]],
    ['ID2', 1, 'ready', '0x100000', [1]],
  ]);
  t.deepEqual(ls.domains, [{ domid: 1, name: 'vm1', target: null }, { domid: 2, name: 'vm2', target: 1 }]);
  const table = await xs(['ls', ...S]);
  t.regex(table.stdout, /│ ID1 │ ready │ 1 MiB │ vm1 \(d1\)/);
  t.regex(table.stdout, /set_target .*: vm2 \(d2\) -> d1/);
  const tree = await xs(['ls', '--tree', ...S]);
  for (const line of ['/local/shared_mem/ID1/owner = "1"', '/local/shared_mem/ID1/size = "0x100000"', '/local/shared_mem/ID1/mappings/2 = "0x50000000-0x50100000"', '/local/domain/2/target = "1"']) {
    t.true(tree.stdout.split('\n').includes(line), line);
  }

  // vm1 writes (its own view, through the sandbox's host); dom0 peeks.
  const hv = new SimHypervisor({ dir: join(sb, 'sim'), allowOnXenHost: true });
  const v = await hv.guestMap(1, gfnsOf(0x50000000n, 8192n));
  v.buffer.write('peek me', 4096 + 16);
  v.unmap();
  await hv.close();
  const peek = await xs(['peek', 'ID1', '--offset', '4K', '--length', '32', ...S]);
  t.is(peek.code, 0, peek.stderr);
  t.regex(peek.stdout, /^ID1 \(owner d1\), bytes 4096\.\.4128:\n00001000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  \|\.{16}\|\n00001010  70 65 65 6b 20 6d 65 00 /);
  const pj = json<{ hex: string; length: number; offset: string }>(await xs(['peek', 'ID1', '--offset', '0x1010', '--length', '7', '--json', ...S]));
  t.is(Buffer.from(pj.hex, 'hex').toString(), 'peek me');
  t.is(pj.offset, '0x1010');
  const past = await xs(['peek', 'ID1', '--offset', '2M', ...S]);
  t.is(past.code, 1);

  const rel = await xs(['release', '--domain', 'vm1', ...S]);
  t.is(rel.code, 0, rel.stderr);
  t.regex(rel.stdout, /ID1: d1 released as owner; borrowers remain, region orphaned\nID2: d1 released as owner\n/);
  t.deepEqual(json(await xs(['reconcile', '--json', ...S])), { ok: true, actions: [] });
  const d2 = await xs(['destroy', 'vm2', ...S]);
  t.is(d2.code, 0, d2.stderr);
  t.is(d2.stdout, 'ID1: d2 released as borrower\ndestroyed vm2 (d2)\n');
  t.is((await xs(['ls', ...S])).stdout, 'no static shared memory under /local/shared_mem\n');
  t.deepEqual(json(await xs(['destroy', '1', '--json', ...S])), { ok: true, domid: 1, domain: 'vm1', toolstack: 'sandbox', released: { domid: 1, entries: [] } });
});

test('errors go through the shared handler: a line on stderr, or { ok: false, error } with --json; exit 1', async (t) => {
  const sb = sandboxDir(t);
  const missing = await xs(['apply', '/nonexistent.cfg', '--sandbox-dir', sb, '--json']);
  t.is(missing.code, 1);
  const e = json<{ ok: boolean; error: { kind: string; code: string; file: string } }>(missing);
  t.false(e.ok);
  t.deepEqual([e.error.kind, e.error.code, e.error.file], ['config', 'ENOENT', '/nonexistent.cfg']);
  const both = await xs(['release', '--sandbox-dir', sb]);
  t.is(both.code, 2, 'a usage error');
  t.is(both.stderr, 'xen-sshm: give exactly one of --domid N or --domain NAME\n');
  const noId = json<{ error: { code: string; reason: string; path: string } }>(await xs(['peek', 'NOPE', '--sandbox-dir', sb, '--json']));
  t.deepEqual([noId.error.code, noId.error.reason, noId.error.path], ['ENOENT', 'not-found', '/local/shared_mem/NOPE']);
  const badCfg = await xs(['apply', join(ROOT, 'fixtures', 'config', 'broken', 'align.cfg'), '--domid', '1', '--sandbox-dir', sb]);
  t.is(badCfg.code, 1);
  t.regex(badCfg.stderr, /1 config error, nothing applied\n  hint: xen-sshm check .*\n.*align\.cfg:3:25: error \[align\]: begin 0x50000800 is not 4 KiB aligned/);
});

test('on a real host, create and destroy run xl (here absent: named, nothing done); ls needs no hypervisor; apply needs privcmd', async (t) => {
  const server = await startServer({});
  t.teardown(() => server.close());
  const empty = mkdtempSync(join(tmpdir(), 'xen-sshm-nopath-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  // No xl on PATH (node itself is run by its absolute path).
  const env = { ...ENV, XENSTORED_PATH: server.socketPath, PATH: empty };
  const cfg = join(THREE, 'vm1.cfg');
  const create = json<{ error: { kind: string; code: string; step: string; command: string; undone: string[] } }>(await xs(['create', cfg, '--json'], { env }));
  t.deepEqual([create.error.kind, create.error.code, create.error.step, create.error.command, create.error.undone], ['toolstack', 'ENOENT', 'create', `xl create -p ${cfg}`, []]);
  const destroy = json<{ error: { code: string; step: string } }>(await xs(['destroy', 'vm1', '--json'], { env }));
  t.deepEqual([destroy.error.code, destroy.error.step], ['ENOENT', 'resolve']);
  const text = await xs(['create', cfg], { env });
  t.is(text.code, 1);
  t.regex(text.stderr, /^xen-sshm: create vm1: step create failed: xl create -p \S+vm1\.cfg: xl was not found\n  hint: .*--xl PATH\n$/);
  const ls = await xs(['ls'], { env });
  t.is(ls.code, 0, ls.stderr);
  t.is(ls.stdout, 'no static shared memory under /local/shared_mem\n');
  const apply = json<{ error: { kind: string; code: string; path: string } }>(await xs(['apply', cfg, '--domid', '1', '--json'], { env }));
  t.deepEqual([apply.error.kind, apply.error.code, apply.error.path], ['hypercall', 'ENOENT', '/dev/xen/privcmd']);
});

test('concurrent invocations start one sandbox xenstored and share it', async (t) => {
  const sb = sandboxDir(t);
  const runs = await Promise.all(Array.from({ length: 6 }, () => xs(['ls', '--json', '--sandbox-dir', sb])));
  for (const r of runs) t.is(r.code, 0, r.stderr);
  const daemons = processesNaming(`xenstored-main.js\0${sb}`);
  t.is(daemons.length, 1, `daemons: ${daemons.join(', ')}`);
  t.false(existsSync(join(sb, 'xenstored.start')));
  t.is(new Sandbox(sb).daemonPid(), daemons[0]);
  // Stopped, it starts again on demand with the same state.
  t.is(json(await xs(['create', join(THREE, 'vm1.cfg'), '--no-apply', '--sandbox-dir', sb, '--json'])).domid, 1);
  t.true(await new Sandbox(sb).stop());
  const again = json<{ domains: unknown[] }>(await xs(['ls', '--json', '--sandbox-dir', sb]));
  t.deepEqual(again.domains, []);
  t.is(json(await xs(['create', join(THREE, 'vm2.cfg'), '--no-apply', '--sandbox-dir', sb, '--json'])).domid, 2, 'vm1 is still there after the restart');
});

test('xen-sshm demo works on a fresh temporary sandbox and leaves nothing behind', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'xen-sshm-demo-cwd-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const r = await xs(['demo'], { cwd });
  t.is(r.code, 0, r.stderr);
  const dir = /^\$ SB=(\S+)/m.exec(r.stdout)![1];
  for (const expected of [
    /created vm1 as d1 \(128 MiB, max 129 MiB\), paused/,
    /ID1: borrower of d1, 1 MiB mapped at 0x50000000-0x50100000/,
    /^\/local\/shared_mem\/ID1\/owner = "1"$/m,
    /^\/local\/shared_mem\/ID2\/mappings\/3 = "0x50000000-0x50100000"$/m,
    /vm2 reads ID1 at its guest address 0x50000000: +"Hello vm2, this is vm1/,
    /reading dom0's \/local\/shared_mem\/ID1\/owner gives it EACCES/,
    /daemon: ID1: d2 \(borrower, mapped\): released \(the domain no longer runs\)/,
  ]) {
    t.regex(r.stdout, expected);
  }
  t.false(existsSync(dir), 'the temporary sandbox is removed');
  t.deepEqual(processesNaming(`xenstored-main.js\0${dir}`), []);
  const j = json<{ ok: boolean; message: { written: string; readByVm2: string }; cleanup: Array<{ domid: number; action: string }> }>(await xs(['demo', '--json'], { cwd }));
  t.true(j.ok);
  t.is(j.message.readByVm2, j.message.written);
  t.deepEqual(j.cleanup.map((c) => [c.domid, c.action]), [[2, 'released']]);
});

test('a progress bar on stderr for large regions when stderr is a terminal', async (t) => {
  const sb = sandboxDir(t);
  const cfg = join(sb, 'big.cfg');
  writeFileSync(cfg, 'name = "big"\nmemory = 16\nstatic_shm = ["id=BIG, begin=0x100000000, size=128M, role=owner"]\n');
  t.is((await xs(['create', cfg, '--no-apply', '--sandbox-dir', sb])).code, 0);
  // script(1) gives the command a terminal.
  const r = await new Promise<Run>((done) => {
    const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} apply ${cfg} --sandbox-dir ${sb} --raise-maxmem`, '/dev/null'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.on('close', (code) => done({ code, stdout, stderr: '' }));
  });
  t.is(r.code, 0, r.stdout);
  t.regex(r.stdout, /BIG d1 populating \[[^\]]*\] 100% 32768\/32768 pages/);
  // Not on a pipe.
  const piped = await xs(['release', '--domain', 'big', '--sandbox-dir', sb]);
  t.is(piped.code, 0);
  t.is(piped.stderr, '');
});

test('xen-sshm daemon reports, as JSON lines, the cleanup after a domain dies, and stops on SIGTERM', async (t) => {
  const sb = sandboxDir(t);
  const S = ['--sandbox-dir', sb];
  t.is((await xs(['create', join(THREE, 'vm1.cfg'), '--raise-maxmem', ...S])).code, 0);
  t.is((await xs(['create', join(THREE, 'vm2.cfg'), '--allow-set-target', ...S])).code, 0);
  const child = spawn(process.execPath, [CLI, 'daemon', '--json', ...S], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  let wake: (() => void) | null = null;
  child.stdout.on('data', (b) => {
    buf += b;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  const until = async (pred: (l: Record<string, unknown>) => boolean): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while (!lines.some(pred)) {
      if (Date.now() > deadline) throw new Error(`daemon said: ${JSON.stringify(lines)}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  await until((l) => l.type === 'reconciled');
  t.is((await xs(['destroy', 'vm2', '--no-cleanup', ...S])).code, 0);
  await until((l) => l.type === 'reconciled' && l.trigger === '@releaseDomain' && JSON.stringify(l.actions).includes('"released"'));
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.on('close', r));
  t.is(code, 0);
  t.is(lines[lines.length - 1].type, 'stopped');
  t.deepEqual(json<{ regions: Array<{ mappings: Array<{ domid: number }> }> }>(await xs(['ls', '--json', ...S])).regions.map((r) => r.mappings.map((m) => m.domid)), [[1], [1]]);
});

test('--help lists every command', async (t) => {
  const r = await xs(['--help']);
  t.is(r.code, 0);
  for (const c of ['check', 'apply', 'release', 'ls', 'reconcile', 'daemon', 'peek', 'demo', 'create', 'destroy', 'install-units', 'xenstored']) t.regex(r.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  const apply = await xs(['apply', '--help']);
  t.regex(apply.stdout, /xl create -p \/etc\/xen\/vm1\.cfg\n  xen-sshm apply \/etc\/xen\/vm1\.cfg --domain vm1\n  xl unpause vm1/);
});
