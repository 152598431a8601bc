/**
 * The command line's conventions, as a user meets them: --version; global options (--json,
 * --sandbox, --sandbox-dir) before or after the command name; exit status 0 success, 1 failure,
 * 2 usage; an unknown option is one line naming it and pointing to --help; every command,
 * daemon included, goes through the shared option checks; and whatever the input, the error
 * handler prints no JavaScript stack and no more than its documented bounds.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { elide, errorToJSON, OUTPUT_BOUNDS, reportError, UsageError } from '../../lib/cli/handle-error';
import { ManagerError } from '../../lib/manager/errors';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');
const THREE = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');
const ENV = { ...process.env, XEN_SSHM_SANDBOX_IDLE_MS: '60000' };
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** What a Node stack trace line looks like. */
const STACK = /^\s+at .*[(:]\d+/m;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function xs(args: string[], env: NodeJS.ProcessEnv = ENV): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function tmp(t: import('ava').ExecutionContext, prefix = 'xen-sshm-conv-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('--version and -V print the package version and exit 0', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await xs([flag]);
    t.deepEqual([r.code, r.stdout, r.stderr], [0, `${VERSION}\n`, ''], flag);
  }
});

test('global options work before and after the command name, with the same result', async (t) => {
  const sb = tmp(t);
  t.teardown(() => new Sandbox(sb).remove());
  t.is((await xs(['create', join(THREE, 'vm1.cfg'), '--raise-maxmem', '--sandbox-dir', sb])).code, 0);
  const forms = [
    ['ls', '--json', '--sandbox-dir', sb],
    ['--json', 'ls', '--sandbox-dir', sb],
    ['--sandbox-dir', sb, '--json', 'ls'],
    ['--sandbox-dir', sb, 'ls', '--json'],
  ];
  const outs = [];
  for (const f of forms) {
    const r = await xs(f);
    t.is(r.code, 0, `${f.join(' ')}: ${r.stderr}`);
    outs.push(JSON.parse(r.stdout) as { ok: boolean; regions: Array<{ id: string }> });
  }
  t.deepEqual(outs[0].regions.map((r) => r.id), ['ID1', 'ID2']);
  for (const o of outs) t.deepEqual(o, outs[0]);
  // --json before the command reaches check too, which has no host.
  const check = await xs(['--json', 'check', join(THREE, 'vm1.cfg'), join(THREE, 'vm2.cfg'), join(THREE, 'vm3.cfg')]);
  t.is(check.code, 0);
  t.true((JSON.parse(check.stdout) as { ok: boolean }).ok);
});

test('exit status: 0 success, 1 failure, 2 usage', async (t) => {
  const dir = tmp(t);
  const bad = join(dir, 'bad.cfg');
  writeFileSync(bad, 'name = "bad"\nstatic_shm = ["id=X, begin=0x50000800, size=4K, role=owner"]\n');
  const cases: Array<[string[], number]> = [
    [['check', join(THREE, 'vm1.cfg')], 0],
    [['--help'], 0],
    [['check', bad], 1],
    [['apply', '/nonexistent.cfg', '--domid', '1', '--sandbox-dir', join(dir, 'sb')], 1],
    [[], 2],
    [['frobnicate'], 2],
    [['ls', '--frobnicate'], 2],
    [['apply'], 2],
    [['apply', bad, '--domid', 'abc'], 2],
    [['apply', bad, '--domid', '99999999999999999999'], 2],
    [['peek', 'ID1', '--length', '12Q', '--sandbox-dir', join(dir, 'sb')], 2],
    [['release', '--sandbox'], 2],
    [['ls', '--sandbox', '--xenstore', '/x'], 2],
  ];
  for (const [args, code] of cases) {
    const r = await xs(args);
    t.is(r.code, code, `xen-sshm ${args.join(' ')}: ${r.stderr}`);
    t.notRegex(r.stderr + r.stdout, STACK, `xen-sshm ${args.join(' ')} printed a stack`);
  }
  await new Sandbox(join(dir, 'sb')).remove();
});

test('an unknown option or command is one line naming it and pointing to --help, not the whole help', async (t) => {
  const r = await xs(['ls', '--frobnicate']);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.is(r.stderr, "xen-sshm ls: unknown option '--frobnicate'; see 'xen-sshm ls --help'\n");
  const near = await xs(['apply', 'x.cfg', '--raise-maxmen']);
  t.is(near.stderr, "xen-sshm apply: unknown option '--raise-maxmen' (Did you mean --raise-maxmem?); see 'xen-sshm apply --help'\n");
  const cmd = await xs(['chek', 'x.cfg']);
  t.is(cmd.stderr, "xen-sshm: unknown command 'chek' (Did you mean check?); see 'xen-sshm --help'\n");
  const j = await xs(['--json', 'ls', '--frobnicate']);
  t.is(j.code, 2);
  t.deepEqual(JSON.parse(j.stdout), { ok: false, error: { kind: 'usage', code: 'EINVAL', reason: 'unknownOption', message: "unknown option '--frobnicate'", hint: 'see xen-sshm ls --help' } });
});

test('every command goes through the shared option checks, daemon included', async (t) => {
  for (const cmd of [['daemon'], ['ls'], ['reconcile'], ['apply', 'x.cfg'], ['create', 'x.cfg'], ['destroy', 'vm1'], ['peek', 'ID1'], ['release', '--domid', '1']]) {
    const r = await xs([...cmd, '--sandbox', '--xenstore', '/nonexistent/socket']);
    t.is(r.code, 2, cmd.join(' '));
    t.is(r.stderr, 'xen-sshm: --xenstore and --sandbox exclude each other: the sandbox has its own xenstored\n', cmd.join(' '));
    const sim = await xs([...cmd, '--sandbox-dir', '/tmp/x', '--sim', '/tmp/y']);
    t.is(sim.code, 2, cmd.join(' '));
    t.regex(sim.stderr, /^xen-sshm: --sim and --sandbox exclude each other/);
  }
  const root = await xs(['daemon', '--root', 'relative/path', '--sandbox']);
  t.is(root.code, 2);
  t.is(root.stderr, 'xen-sshm: --root "relative/path" is not an absolute xenstore path\n');
});

test('hostile input through the CLI: no stack, bounded and escaped output, exit 1', async (t) => {
  const dir = tmp(t);
  // A 10,000-character ID and 500 bad entries: the config's own errors, printed by the handler.
  const cfg = join(dir, 'hostile.cfg');
  const long = 'A'.repeat(10_000);
  const entries = Array.from({ length: 500 }, (_, i) => `"id=E${i}, begin=0x${(0x50000800 + i * 0x10000).toString(16)}, size=4K, role=owner"`);
  writeFileSync(cfg, `name = "h"\nstatic_shm = [ "id=${long}, begin=0x50000000, size=4K, role=owner", ${entries.join(', ')} ]\n`);
  const sb = join(dir, 'sb');
  t.teardown(() => new Sandbox(sb).remove());
  const r = await xs(['apply', cfg, '--domid', '1', '--sandbox-dir', sb]);
  t.is(r.code, 1);
  t.notRegex(r.stderr, STACK);
  const listed = r.stderr.split('\n').filter((l) => /hostile\.cfg:\d+:\d+: error/.test(l)).length;
  t.true(listed <= OUTPUT_BOUNDS.MAX_LISTED, `${listed} errors listed`);
  t.regex(r.stderr, /\nand \d+ more errors\n$/);
  t.true(r.stderr.length < (OUTPUT_BOUNDS.MAX_LISTED + 2) * (OUTPUT_BOUNDS.MAX_TEXT + 200), `${r.stderr.length} characters`);
  const j = await xs(['apply', cfg, '--domid', '1', '--sandbox-dir', sb, '--json']);
  t.is(j.code, 1);
  const err = (JSON.parse(j.stdout) as { error: { errors: unknown[] } }).error;
  t.is(err.errors.length, OUTPUT_BOUNDS.MAX_LISTED + 1, 'the list is cut, with a last "and N more"');
  t.regex(String(err.errors[OUTPUT_BOUNDS.MAX_LISTED]), /^and \d+ more$/);
  t.true(j.stdout.length < 200_000, `${j.stdout.length} characters of JSON`);

  // A file name carrying terminal escapes is shown escaped.
  const esc = join(dir, 'evil\x1b[2J.cfg');
  const e = await xs(['check', esc]);
  t.is(e.code, 1);
  t.false(e.stderr.includes('\x1b'), 'no raw escape character reaches the terminal');

  // A failure that is no typed error of ours (a sandbox folder that cannot be made).
  const odd = await xs(['ls', '--sandbox-dir', '/etc/passwd/x']);
  t.is(odd.code, 1);
  t.notRegex(odd.stderr, STACK);
  t.regex(odd.stderr, /^xen-sshm: internal error \(E[A-Z]+\): .*\n$/);
  t.is(odd.stderr.split('\n').length, 2, 'one line');
});

// The handler on its own, with values no command produces on purpose.

function capture(fn: () => number): { code: number; out: string; err: string } {
  const w = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  let out = '';
  let err = '';
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: fn(), out, err };
  } finally {
    process.stdout.write = w.out;
    process.stderr.write = w.err;
  }
}

test.serial('reportError: anything thrown gives a bounded report, never a stack, never a throw', (t) => {
  const circular: Record<string, unknown> = { kind: 'manager', message: 'loop', code: 'EINVAL' };
  circular.self = circular;
  const hostile = {
    kind: 'manager', message: 'x', get code(): string {
      throw new Error('boom');
    },
  };
  const values: unknown[] = [
    new Error('plain'),
    new RangeError('Invalid string length'),
    null, undefined, 42, 'a string', Symbol('s'), 10n,
    { toString: () => { throw new Error('no'); } },
    Object.create(null),
    new ManagerError({ code: 'EINVAL', reason: 'config', message: 'M'.repeat(1_000_000), errors: Array.from({ length: 10_000 }, (_, i) => new ManagerError({ code: 'EINVAL', reason: 'config', message: `e${i}` })) }),
    { kind: 'config', message: 'f', format: () => 'F'.repeat(50_000) },
    { kind: 'config', message: 'f', format: () => { throw new Error('format failed'); } },
    { kind: 'manager', message: 'j', toJSON: () => { throw new Error('toJSON failed'); } },
    circular,
    hostile,
  ];
  for (const v of values) {
    for (const json of [false, true]) {
      const r = capture(() => reportError(v, { json }));
      const text = r.out + r.err;
      t.true(r.code === 1, `exit ${r.code}`);
      t.notRegex(text, STACK);
      t.true(text.length < (OUTPUT_BOUNDS.MAX_LISTED + 3) * (OUTPUT_BOUNDS.MAX_TEXT + 200), `${text.length} characters for ${typeof v}`);
      t.true(text.length > 0);
    }
  }
  const u = capture(() => reportError(new UsageError('bad --x', { option: '--x' })));
  t.deepEqual([u.code, u.err], [2, 'xen-sshm: bad --x\n']);
  t.is(elide('x'.repeat(5000)).length, OUTPUT_BOUNDS.MAX_TEXT + '...[3000 more characters]...'.length);
  t.deepEqual(errorToJSON(new Error('raw')), { kind: 'internal', code: 'EINTERNAL', message: 'raw' });
});
