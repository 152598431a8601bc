/**
 * The package as a user gets it: `npm pack` of this checkout (prepack builds the prebuilt
 * addons), then `npm install -g` of the tarball into a fresh prefix with cmake, make and every
 * C/C++ compiler hidden from PATH (stand-ins that record any call, which fails the test), and
 * the installed commands run from there:
 *   xen-sshm --version, check (three-VM fixtures), demo, xs-trace -- xenstore-ls against a real
 *   C xenstored, a command that needs privcmd (its error names /dev/xen/privcmd), and, with the
 *   addon taken away, everything that does not need privcmd.
 * Also: what the tarball holds (and leaves out), and that the prebuilt binaries are
 * reproducible from the packed sources. The install is --offline: the shrinkwrapped
 * dependencies come from npm's cache, which the checkout's `npm ci` filled.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { installTarball, packCheckout } from './pack';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot, startDaemon, type RunningDaemon } from '../harness/daemons';

const ROOT = projectRoot();
const THREE = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** What must never run while installing or using the package. */
const BUILD_TOOLS = ['cmake', 'make', 'cc', 'gcc', 'g++', 'c++', 'cpp', 'clang', 'clang++', 'x86_64-linux-gnu-gcc', 'x86_64-linux-gnu-g++', 'aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-g++'];
const PLATFORM = `${process.platform}-${process.arch}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Installed {
  work: string;
  tarball: string;
  files: string[];
  bytes: number;
  prefix: string;
  pkg: string;
  bin: (name: string) => string;
  /** PATH with the build tools replaced by recording stand-ins. */
  env: NodeJS.ProcessEnv;
  /** Build-tool calls recorded so far. */
  calls: () => string[];
  run: (cmd: string, args: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string }) => Promise<Run>;
}

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr || r.error?.message}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

let installed: Installed;

/** The files under `dir`, as paths relative to it (none when it does not exist). */
function walk(dir: string, rel = ''): string[] {
  if (!existsSync(join(dir, rel))) return [];
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(dir, join(rel, e.name)) : [join(rel, e.name)]));
}

/** A folder of build tools that record their call in `log` and fail. */
function hideBuildTools(work: string, name: string): { dir: string; log: string } {
  const dir = join(work, name);
  mkdirSync(dir);
  const log = join(work, `${name}.log`);
  writeFileSync(log, '');
  for (const tool of BUILD_TOOLS) {
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> ${log}\necho "${tool} is hidden in this test" >&2\nexit 1\n`);
    chmodSync(join(dir, tool), 0o755);
  }
  return { dir, log };
}

test.before(async (t) => {
  t.timeout(480_000, 'pack (two addon builds) and install');
  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-pkg-'));
  const packed = packCheckout(ROOT, work);
  const { dir: stubs, log } = hideBuildTools(work, 'stubs');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${stubs}:${process.env.PATH}`, XEN_SSHM_SANDBOX: join(work, 'sandbox'), XEN_SSHM_SANDBOX_IDLE_MS: '60000' };
  const prefix = join(work, 'prefix');
  const pkg = installTarball(packed.tarball, prefix, { env });
  const run = (cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> =>
    new Promise((done) => {
      const child = spawn(cmd, args, { env: o.env ?? env, cwd: o.cwd ?? work, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      child.on('close', (code) => done({ code, stdout, stderr }));
      child.on('error', (e) => done({ code: -1, stdout, stderr: String(e) }));
    });
  installed = {
    work, tarball: packed.tarball, files: packed.files, bytes: packed.size, prefix, pkg,
    bin: (name) => join(prefix, 'bin', name),
    env, run,
    calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
});

test.after.always(() => {
  if (installed) rmSync(installed.work, { recursive: true, force: true });
});

test('the tarball holds the library, CLIs, prebuilt addons, shim sources, units and docs; no tests, fixtures, benches or CI', (t) => {
  const f = installed.files;
  for (const want of [
    'package.json', 'README.md', 'CMakeLists.txt', 'npm-shrinkwrap.json',
    'dist/lib/cli/xen-sshm.js', 'dist/lib/cli/xen-sshm.bundle.js', 'dist/lib/cli/xs-trace.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/xenstore-wire/index.js',
    'prebuilds/linux-x64/xen_sshm_shim.node', 'prebuilds/linux-arm64/xen_sshm_shim.node', 'prebuilds/manifest.json',
    'shim/addon.cc', 'shim/privcmd_sys.c', 'shim/CMakeLists.txt', 'scripts/install.js', 'scripts/build-shim.sh',
    'systemd/xen-sshm.service', 'docs/manager.md',
  ]) {
    t.true(f.includes(want), `the tarball has ${want}`);
  }
  for (const bad of f.filter((p) => /^(test|fixtures|bench|\.ci|dist\/test|dist\/bench|node_modules|build|lib|xenstore-wire|docs\/notes)\//.test(p) || p.endsWith('.map') || p.endsWith('.ts') && !p.endsWith('.d.ts'))) {
    t.fail(`the tarball should not have ${bad}`);
  }
  // Whatever the checkout has under guest/ and systemd/ (the guest programs, the units) ships whole.
  for (const dir of ['guest', 'systemd']) {
    for (const rel of walk(join(ROOT, dir))) t.true(f.includes(`${dir}/${rel}`), `the tarball has ${dir}/${rel}`);
  }
  t.true(f.length < 400, `${f.length} files`);
  t.log(`tarball: ${f.length} files, ${(installed.bytes / 1024).toFixed(0)} KiB`);
});

test('the prebuilt addons are the right machines and reproducible from the packed sources', (t) => {
  const manifest = JSON.parse(readFileSync(join(installed.pkg, 'prebuilds', 'manifest.json'), 'utf8')) as { napiVersion: number; binaries: Record<string, { file: string; sha256: string }> };
  t.is(manifest.napiVersion, 8);
  // ELF e_machine: 0x3e x86-64, 0xb7 AArch64.
  for (const [plat, machine] of [['linux-x64', 0x3e], ['linux-arm64', 0xb7]] as const) {
    const bytes = readFileSync(join(installed.pkg, 'prebuilds', plat, 'xen_sshm_shim.node'));
    t.is(bytes.subarray(0, 4).toString('latin1'), '\x7fELF', plat);
    t.is(bytes.readUInt16LE(18), machine, plat);
    t.is(crypto.createHash('sha256').update(bytes).digest('hex'), manifest.binaries[plat].sha256, plat);
  }
  // The same script on the same sources gives the same bytes.
  const again = join(installed.work, 'again.node');
  sh('bash', [join(ROOT, 'scripts', 'build-shim.sh'), 'x64', again], { cwd: ROOT });
  t.is(crypto.createHash('sha256').update(readFileSync(again)).digest('hex'), manifest.binaries['linux-x64'].sha256);
});

test('installed with no compiler: nothing was built, and the shipped prebuilt addon is the one that loads', async (t) => {
  t.deepEqual(installed.calls(), [], 'no build tool was called during the install');
  t.false(existsSync(join(installed.pkg, 'build')), 'no local build');
  const r = await installed.run(process.execPath, ['-e', `const s = require(${JSON.stringify(join(installed.pkg, 'dist/lib/hypervisor/shim.js'))}); s.loadShim(); console.log(JSON.stringify(s.loadedShim()))`]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { path: join(installed.pkg, 'prebuilds', PLATFORM, 'xen_sshm_shim.node'), origin: 'prebuilt' });
});

test('from the prefix: --version, check, demo, and a privcmd command naming /dev/xen/privcmd', async (t) => {
  // The command is the bundle prepack made (scripts/bundle-cli.js), beside the modules it loads.
  t.is(realpathSync(installed.bin('xen-sshm')), join(realpathSync(installed.pkg), 'dist', 'lib', 'cli', 'xen-sshm.bundle.js'));
  const v = await installed.run(installed.bin('xen-sshm'), ['--version']);
  t.deepEqual([v.code, v.stdout], [0, `${VERSION}\n`]);
  const c = await installed.run(installed.bin('xen-sshm'), ['check', ...['vm1', 'vm2', 'vm3'].map((n) => join(THREE, `${n}.cfg`))]);
  t.is(c.code, 0, c.stderr);
  t.regex(c.stdout, /^3 domains \(vm1, vm2, vm3\), 2 shared memory regions: OK\n/);
  const d = await installed.run(installed.bin('xen-sshm'), ['demo']);
  t.is(d.code, 0, d.stderr);
  t.regex(d.stdout, /vm2 reads ID1 at its guest address 0x50000000: +"Hello vm2, this is vm1/);
  t.regex(d.stdout, /daemon: ID1: d2 \(borrower, mapped\): released/);

  const daemon = await startDaemon('cxenstored');
  t.teardown(() => daemon.stop());
  const a = await installed.run(installed.bin('xen-sshm'), ['apply', join(THREE, 'vm1.cfg'), '--domid', '1', '--xenstore', daemon.socketPath, '--json']);
  t.is(a.code, 1);
  const e = (JSON.parse(a.stdout) as { error: { kind: string; code: string; path: string; message: string } }).error;
  t.deepEqual([e.kind, e.code, e.path], ['hypercall', 'ENOENT', '/dev/xen/privcmd']);
  t.regex(e.message, /^\/dev\/xen\/privcmd does not exist/);
  t.deepEqual(installed.calls(), []);
});

async function xsTrace(t: import('ava').ExecutionContext, daemon: RunningDaemon, env: NodeJS.ProcessEnv): Promise<void> {
  const r = await installed.run(installed.bin('xs-trace'), ['--upstream', daemon.socketPath, '--', 'xenstore-ls', '/'], { env: { ...env, XENSTORED_PATH: daemon.socketPath } });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout + r.stderr, /-> DIRECTORY +req=\d+ tx=0 +\/\n/);
  t.regex(r.stdout + r.stderr, /<- DIRECTORY +req=\d+ tx=0 +\/ -> \d+ child/);
}

test('xs-trace -- xenstore-ls against a real C xenstored, from the prefix', async (t) => {
  const daemon = await startDaemon('cxenstored');
  t.teardown(() => daemon.stop());
  await xsTrace(t, daemon, installed.env);
  t.deepEqual(installed.calls(), []);
});

test.serial('with no addon at all: check, ls and reconcile reading records, xs-trace, the xenstore client and --sandbox work; privcmd names what it tried', async (t) => {
  // The addon taken away, as on a platform with no prebuilt and no compiler.
  const away = join(installed.work, 'prebuilds-away');
  renameSync(join(installed.pkg, 'prebuilds'), away);
  t.teardown(() => renameSync(away, join(installed.pkg, 'prebuilds')));
  const x = installed.bin('xen-sshm');
  const c = await installed.run(x, ['check', join(THREE, 'vm1.cfg'), join(THREE, 'vm2.cfg'), join(THREE, 'vm3.cfg')]);
  t.is(c.code, 0, c.stderr);

  const daemon = await startDaemon('cxenstored', { fakeDomains: [1, 2] });
  t.teardown(() => daemon.stop());
  const S = ['--xenstore', daemon.socketPath];
  // Records as an apply in dom0 leaves them (vm1 owns ID1, 1 MiB at 0x50000000).
  const seed = await installed.run(process.execPath, ['-e', `
    const { connect } = require(${JSON.stringify(join(installed.pkg, 'dist/xenstore-wire/index.js'))});
    (async () => {
      const xs = await connect({ path: ${JSON.stringify(daemon.socketPath)} });
      const r = '/local/shared_mem/ID1';
      for (const [k, v] of [['owner', '1'], ['begin', '0x50000000'], ['size', '0x100000'], ['prot', 'rw'], ['cache_policy', 'ARM_normal'], ['state', 'ready'],
        ['mappings/1', '0x50000000-0x50100000'], ['mappings/1/offset', '0x0'], ['mappings/1/prot', 'rw'], ['mappings/1/state', 'mapped'], ['spelling', 'static_shm']]) await xs.write(r + '/' + k, v);
      await xs.write('/local/domain/1/name', 'vm1');
      console.log(await xs.readString(r + '/owner'));
      await xs.close();
    })().catch((e) => { console.error(e.message); process.exit(1); });`]);
  t.is(seed.code, 0, `the xenstore client, required from the package: ${seed.stderr}`);
  t.is(seed.stdout, '1\n');
  const ls = await installed.run(x, ['ls', '--json', ...S]);
  t.is(ls.code, 0, ls.stderr + ls.stdout);
  t.deepEqual((JSON.parse(ls.stdout) as { regions: Array<{ id: string; owner: number }> }).regions.map((r) => [r.id, r.owner]), [['ID1', 1]]);
  const rec = await installed.run(x, ['reconcile', '--no-dead-domains', '--json', ...S]);
  t.is(rec.code, 0, rec.stderr + rec.stdout);
  // Records written by hand, as by an older xen-sshm, have no per-domain index: reconcile builds it.
  t.deepEqual(JSON.parse(rec.stdout), { ok: true, actions: [], index: { rebuilt: true, repaired: [] } });
  await xsTrace(t, daemon, installed.env);

  const demo = await installed.run(x, ['demo']);
  t.is(demo.code, 0, `--sandbox without the addon: ${demo.stderr}`);
  t.regex(demo.stdout, /vm2 reads ID1 at its guest address 0x50000000: +"Hello vm2, this is vm1/);

  const peek = await installed.run(x, ['peek', 'ID1', '--json', ...S]);
  t.is(peek.code, 1);
  // The manager's error for the region, with the hypercall layer's facts in its message.
  const e = (JSON.parse(peek.stdout) as { error: { kind: string; code: string; reason: string; message: string } }).error;
  t.deepEqual([e.kind, e.reason, e.code], ['manager', 'hypercall', 'ENOENT']);
  t.true(e.message.includes(join(installed.pkg, 'prebuilds', PLATFORM, 'xen_sshm_shim.node')) || e.message.includes('/dev/xen/privcmd'), e.message);
  t.deepEqual(installed.calls(), []);
});

test.serial('on a platform without a prebuilt, the install step tries the source build; when that cannot run, the install still succeeds and says what works', async (t) => {
  const copy = join(installed.work, 'other-platform');
  cpSync(installed.pkg, copy, { recursive: true });
  rmSync(join(copy, 'prebuilds'), { recursive: true, force: true });
  // The source build's cmake-js (a dev dependency: fetched by npm on such a platform).
  mkdirSync(join(copy, 'node_modules'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules', 'cmake-js'), join(copy, 'node_modules', 'cmake-js'));
  const hidden = hideBuildTools(installed.work, 'stubs-other');
  const r = await installed.run(process.execPath, [join(copy, 'scripts', 'install.js')], { cwd: copy, env: { ...installed.env, PATH: `${hidden.dir}:${process.env.PATH}` } });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`no prebuilt addon for ${PLATFORM}, and building it from source failed`));
  t.regex(r.stderr, /check, ls, reconcile, xs-trace, the xenstore client, --sandbox/);
  const calls = readFileSync(hidden.log, 'utf8');
  t.regex(calls, /^cmake /m, 'cmake was tried');
});
