/**
 * The installed `xen-sshm` is dist/lib/cli/xen-sshm.bundle.js (package.json "bin", made by
 * scripts/bundle-cli.js from tsc's output). Built afresh here, it must behave as the entry it is
 * made from, byte for byte on stdout and stderr and in its exit status, across the command line:
 * version and help, check (plan, JSON, every broken fixture), usage errors, and the host
 * commands whose modules it leaves in dist/ (ls on a real C xenstored, apply's hypercall error,
 * the sandbox). And what each start-up loads: the bundle's check reads no other file of ours;
 * the unbundled check loads none of the host layers, cli-table3 or string-width.
 */
import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot, startDaemon } from '../harness/daemons';

const ROOT = projectRoot();
const SOURCE = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');
const BUNDLE = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.bundle.js');
const THREE = ['vm1', 'vm2', 'vm3'].map((n) => join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem', `${n}.cfg`));
const BROKEN = join(ROOT, 'fixtures', 'config', 'broken');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, node: string[] = []): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [...node, file, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

test.before(() => {
  // The bundle of this dist/, not one left from an earlier build.
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'bundle-cli.js')], { stdio: ['ignore', 'ignore', 'pipe'] });
});

test('package.json names the bundle as the xen-sshm command, with a node hashbang', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.is(pkg.bin['xen-sshm'], 'dist/lib/cli/xen-sshm.bundle.js');
  t.true(readFileSync(BUNDLE, 'utf8').startsWith('#!/usr/bin/env node\n'));
});

test('the same output and exit status as the entry it is built from: version, help, check, usage errors', async (t) => {
  const broken = readdirSync(BROKEN).filter((f) => f.endsWith('.cfg')).map((f) => join(BROKEN, f));
  const lines: string[][] = [
    ['--version'], ['-V'], ['--help'], [], ['check', '--help'], ['ls', '--help'], ['apply', '--help'], ['help', 'check'],
    ['check', ...THREE], ['check', '--json', ...THREE], [...THREE.slice(0, 1), 'check', '--json'].reverse(), ['check', '--dom0less', ...THREE],
    ['check', ...broken], ['check', '--json', ...broken], ['check', join(BROKEN, 'nope.cfg')],
    ['check'], ['check', '--jsn', ...THREE], ['frobnicate'], ['ls', '--sandbox', '--xenstore', '/x'], ['--json', 'release', 'a.cfg'],
  ];
  t.true(broken.length >= 10);
  for (const args of lines) {
    const [a, b] = await Promise.all([run(SOURCE, args), run(BUNDLE, args)]);
    t.deepEqual(b, a, `xen-sshm ${args.join(' ')}`);
  }
});

test('the host commands it leaves in dist/: ls on a real C xenstored, apply without privcmd, the sandbox', async (t) => {
  const daemon = await startDaemon('cxenstored');
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-bundle-'));
  try {
    const env = { ...process.env, XEN_SSHM_SANDBOX_IDLE_MS: '60000' };
    const box = join(dir, 'sandbox');
    const lines: string[][] = [
      ['ls', '--xenstore', daemon.socketPath], ['ls', '--json', '--xenstore', daemon.socketPath], ['ls', '--tree', '--xenstore', daemon.socketPath],
      ['apply', THREE[0], '--domid', '1', '--xenstore', daemon.socketPath, '--json'],
      ['reconcile', '--json', '--xenstore', daemon.socketPath],
    ];
    for (const args of lines) {
      const a = await run(SOURCE, args, env);
      const b = await run(BUNDLE, args, env);
      t.deepEqual(b, a, `xen-sshm ${args.join(' ')}`);
    }
    // The sandbox: one session driven by the bundle, read back by both.
    for (const args of [['create', THREE[0], '--raise-maxmem'], ['create', THREE[1], '--allow-set-target']]) {
      const r = await run(BUNDLE, ['--sandbox-dir', box, ...args], env);
      t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const [a, b] = [await run(SOURCE, ['--sandbox-dir', box, 'ls'], env), await run(BUNDLE, ['--sandbox-dir', box, 'ls'], env)];
    t.deepEqual(b, a);
    t.regex(b.stdout, /ID1 .*\n/);
    t.regex(b.stdout, /vm2 \(d\d+\) borrower/);
  } finally {
    await new Sandbox(join(dir, 'sandbox')).stop();
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The files of ours and of node_modules that a run of `file` loaded (required modules, at exit). */
async function loaded(t: { is: (a: unknown, b: unknown, m?: string) => void }, file: string, args: string[]): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-loaded-'));
  try {
    const probe = join(dir, 'probe.js');
    const out = join(dir, 'loaded.json');
    writeFileSync(probe, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
    const r = await run(file, args, process.env, ['-r', probe]);
    t.is(r.code, 0, r.stderr);
    return (JSON.parse(readFileSync(out, 'utf8')) as string[]).filter((f) => f !== probe).map((f) => f.slice(ROOT.length + 1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('what start-up loads: the bundle\'s check and --version read no other module; the entry\'s check no host layer', async (t) => {
  t.deepEqual(await loaded(t, BUNDLE, ['check', ...THREE]), ['dist/lib/cli/xen-sshm.bundle.js']);
  t.deepEqual(await loaded(t, BUNDLE, ['--version']), ['dist/lib/cli/xen-sshm.bundle.js']);
  const source = await loaded(t, SOURCE, ['check', ...THREE]);
  t.true(source.includes('dist/lib/config/plan.js'));
  t.deepEqual(source.filter((f) => /^dist\/(xenstore-wire|lib\/(manager|hypervisor|sandbox|store|toolstack))\/|node_modules\/(cli-table3|string-width|emoji-regex|cli-progress)\//.test(f)), []);
  // A host command loads its layers from dist/, one instance each (the tier's timing preload instruments them).
  const ls = await loaded(t, BUNDLE, ['ls', '--help']);
  t.true(ls.includes('dist/lib/cli/commands/ls.js'));
});
