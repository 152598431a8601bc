/**
 * `xen-sshm xenstored`: the in-memory server as a foreground daemon, used by real tools.
 */
import test from 'ava';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';
import { runXenstoreCli } from '../harness/clients';
import { parseDomainList } from '../../lib/cli/commands/xenstored';

const CLI = join(projectRoot(), 'dist', 'lib', 'cli', 'xen-sshm.js');

interface Daemon {
  child: ChildProcess;
  socket: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

async function startCli(args: string[]): Promise<Daemon> {
  const child = spawn(process.execPath, [CLI, 'xenstored', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const socket = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (\S+)\n/.exec(out) ?? /"socket":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    exit.then((code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  return { child, socket, stderr: () => err, exit };
}

test('serves DIR/socket to xenstore-utils, traces, keeps the tree with --persist, stops on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-cli-'));
  const persist = join(dir, 'tree.json');
  const running: Daemon[] = [];
  try {
    const d = await startCli(['--rundir', dir, '--trace', '--persist', persist]);
    running.push(d);
    t.is(d.socket, join(dir, 'socket'));
    const w = await runXenstoreCli({ socketPath: d.socket }, 'xenstore-write', ['/cli/x', 'hello']);
    t.is(w.code, 0, w.stderr);
    t.is((await runXenstoreCli({ socketPath: d.socket }, 'xenstore-read', ['/cli/x'])).stdout, 'hello\n');
    d.child.kill('SIGTERM');
    t.is(await d.exit, 0);
    t.regex(d.stderr(), /IN \d+ \S+ WRITE \(\/cli\/x hello\)/);
    t.regex(d.stderr(), /OUT \d+ \S+ WRITE \(OK \)/);
    t.true(existsSync(persist));
    t.false(existsSync(d.socket), 'the socket is removed on stop');

    const again = await startCli(['--rundir', dir, '--persist', persist, '--json']);
    running.push(again);
    t.is((await runXenstoreCli({ socketPath: again.socket }, 'xenstore-read', ['/cli/x'])).stdout, 'hello\n');
    again.child.kill('SIGINT');
    t.is(await again.exit, 0);
  } finally {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--domains: an introduced guest gets its own socket, whose clients are unprivileged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-cli-'));
  const d = await startCli(['--rundir', dir, '--domains', '1-2']);
  try {
    const dom0 = { socketPath: d.socket };
    // The toolstack's part: the guest's home, then INTRODUCE (domid, mfn, event channel).
    t.is((await runXenstoreCli(dom0, 'xenstore-write', ['/local/domain/1/name', 'guest1'])).code, 0);
    t.is((await runXenstoreCli(dom0, 'xenstore-chmod', ['-r', '/local/domain/1', 'n1'])).code, 0);
    const intro = await import('node:net').then(
      ({ connect }) =>
        new Promise<Buffer>((resolve, reject) => {
          const s = connect(d.socket, () => {
            const payload = Buffer.from('1\x00123\x005\x00', 'latin1');
            const h = Buffer.alloc(16);
            h.writeUInt32LE(8, 0); // INTRODUCE
            h.writeUInt32LE(1, 4);
            h.writeUInt32LE(0, 8);
            h.writeUInt32LE(payload.length, 12);
            s.write(Buffer.concat([h, payload]));
          });
          s.once('data', (b: Buffer) => {
            s.destroy();
            resolve(b);
          });
          s.once('error', reject);
        }),
    );
    t.is(intro.subarray(16).toString('latin1'), 'OK\0');
    const guestSocket = join(dir, 'domain-1.socket');
    for (let i = 0; i < 100 && !existsSync(guestSocket); i++) await new Promise((r) => setTimeout(r, 10));
    const guest = { socketPath: guestSocket };
    t.is((await runXenstoreCli(guest, 'xenstore-read', ['name'])).stdout, 'guest1\n', 'relative to /local/domain/1');
    const denied = await runXenstoreCli(guest, 'xenstore-read', ['/tool/xenstored']);
    t.not(denied.code, 0);
    t.regex(denied.stderr, /couldn't read path/);
    t.is((await runXenstoreCli(guest, 'xenstore-write', ['data/x', 'from-guest'])).code, 0);
    t.is((await runXenstoreCli(dom0, 'xenstore-ls', ['-p', '/local/domain/1'])).stdout.replace(/[ .]+\(/g, ' ('), 'name = "guest1" (n1)\ndata = "" (n1)\n x = "from-guest" (n1)\n');
  } finally {
    d.child.kill('SIGTERM');
    t.is(await d.exit, 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--domains lists are checked', (t) => {
  t.deepEqual(parseDomainList('1-3,7'), [1, 2, 3, 7]);
  const e = t.throws(() => parseDomainList('0'));
  t.is((e as unknown as { code: string }).code, 'EINVAL');
  t.throws(() => parseDomainList('3-1'));
  t.throws(() => parseDomainList('x'));
});
