/**
 * The real-daemon harness itself: Debian's C xenstored and oxenstored, of Xen 4.17 (Debian 12)
 * and 4.20 (Debian 13, from a private root), start under the preload library, real clients
 * (xenstore-utils and Xen's test-xenstore of the daemon's release, pyxs) work against them,
 * several run at once, and kill() closes every client connection.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect, Socket } from 'node:net';
import { daemonLabel, HarnessError, REAL_DAEMONS, RunningDaemon, startDaemon, XEN_RELEASES } from './daemons';
import { runPyxs, runTestXenstore, runXenstoreCli } from './clients';

/** One daemon of each kind and release for this file, started once, by label ("cxenstored 4.20"). */
const shared = new Map<string, RunningDaemon>();

test.before(async () => {
  for (const real of REAL_DAEMONS) shared.set(daemonLabel(real), await startDaemon(real.kind, { release: real.release }));
});

test.after.always(async () => {
  for (const d of shared.values()) await d.stop();
});

/** A hand-built WRITE/READ frame pair, independent of the project's client. */
function frame(type: number, reqId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(reqId, 4);
  h.writeUInt32LE(0, 8);
  h.writeUInt32LE(payload.length, 12);
  return Buffer.concat([h, payload]);
}

function openRaw(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function readReply(s: Socket): Promise<{ type: number; reqId: number; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 16 && buf.length >= 16 + buf.readUInt32LE(12)) {
        s.off('data', onData);
        resolve({ type: buf.readUInt32LE(0), reqId: buf.readUInt32LE(4), payload: buf.subarray(16, 16 + buf.readUInt32LE(12)) });
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

for (const real of REAL_DAEMONS) {
  const { kind, release } = real;
  const label = daemonLabel(real);
  test(`${label}: xenstore-write, -read, -ls, -rm work against it`, async (t) => {
    const d = shared.get(label)!;
    const w = await runXenstoreCli(d, 'xenstore-write', ['/harness/cli/a', 'alpha', '/harness/cli/b', 'two words']);
    t.is(w.code, 0, w.stderr);
    const r = await runXenstoreCli(d, 'xenstore-read', ['/harness/cli/a', '/harness/cli/b']);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, 'alpha\ntwo words\n');
    const ls = await runXenstoreCli(d, 'xenstore-ls', ['-f', '-p', '/harness/cli']);
    t.is(ls.code, 0, ls.stderr);
    t.deepEqual(ls.stdout.split('\n').filter(Boolean).map((l) => l.replace(/\s+/g, ' ')), [
      '/harness/cli/a = "alpha" (n0)',
      '/harness/cli/b = "two words" (n0)',
    ]);
    const rm = await runXenstoreCli(d, 'xenstore-rm', ['/harness/cli']);
    t.is(rm.code, 0, rm.stderr);
    const gone = await runXenstoreCli(d, 'xenstore-read', ['/harness/cli/a']);
    t.not(gone.code, 0);
    t.regex(gone.stderr, /couldn't read path/);
  });

  test(`${label}: pyxs and xenstore-utils read back each other's writes`, async (t) => {
    const d = shared.get(label)!;
    const w = await runXenstoreCli(d, 'xenstore-write', ['/harness/py/from-cli', 'cli-value']);
    t.is(w.code, 0, w.stderr);
    const py = await runPyxs(
      d,
      [
        'import pyxs, sys',
        'with pyxs.Client() as c:',
        '    sys.stdout.write(c.read(b"/harness/py/from-cli").decode() + "\\n")',
        '    c.write(b"/harness/py/from-pyxs", b"py-value")',
        '    sys.stdout.write(",".join(sorted(x.decode() for x in c.list(b"/harness/py"))) + "\\n")',
      ].join('\n'),
    );
    t.is(py.code, 0, py.stderr);
    t.is(py.stdout, 'cli-value\nfrom-cli,from-pyxs\n');
    const r = await runXenstoreCli(d, 'xenstore-read', ['/harness/py/from-pyxs']);
    t.is(r.stdout, 'py-value\n');
  });

  test(`${label}: Xen's test-xenstore of the same release passes`, async (t) => {
    const d = shared.get(label)!;
    const r = await runTestXenstore(d, ['-i', '20']);
    t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    // One "name : N ns" line per test: test-xenstore's per-operation latency of libxenstore.
    const lines = r.stdout.split('\n').filter((l) => /^[a-z0-9 ]+:\s+(avg: )?\d+ ns/.test(l));
    t.true(lines.length >= 12, r.stdout);
    t.log(`${label} test-xenstore -i 20 (${r.ms} ms):\n${lines.join('\n')}`);
  });

  test(`${label}: two daemons of the same kind run at once, each with its own tree`, async (t) => {
    const a = shared.get(label)!;
    const b = await startDaemon(kind, { release });
    try {
      t.not(a.socketPath, b.socketPath);
      t.not(a.pid, b.pid);
      t.is((await runXenstoreCli(a, 'xenstore-write', ['/harness/which', 'first'])).code, 0);
      t.is((await runXenstoreCli(b, 'xenstore-write', ['/harness/which', 'second'])).code, 0);
      t.is((await runXenstoreCli(a, 'xenstore-read', ['/harness/which'])).stdout, 'first\n');
      t.is((await runXenstoreCli(b, 'xenstore-read', ['/harness/which'])).stdout, 'second\n');
    } finally {
      await b.stop();
    }
    t.false(existsSync(b.rundir), 'stop() removes the rundir');
    await b.stop(); // idempotent
    t.is((await runXenstoreCli(a, 'xenstore-read', ['/harness/which'])).stdout, 'first\n');
  });

  test(`${label}: kill() makes connected clients see the socket close`, async (t) => {
    const d = await startDaemon(kind, { release });
    try {
      const s = await openRaw(d.socketPath);
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => undefined); // ECONNRESET is one way to see it
      s.write(frame(11 /* WRITE */, 7, Buffer.from('/harness/k\0v')));
      const reply = await readReply(s);
      t.is(reply.reqId, 7);
      t.is(reply.payload.toString(), 'OK\0');
      await d.kill();
      await closed;
      const after = await runXenstoreCli(d, 'xenstore-read', ['/harness/k']);
      t.not(after.code, 0);
    } finally {
      await d.stop();
    }
    t.false(existsSync(d.rundir));
  });
}

for (const release of XEN_RELEASES) test(`cxenstored ${release}: trace option writes every message to the trace file`, async (t) => {
  const d = await startDaemon('cxenstored', { trace: true, release });
  try {
    t.truthy(d.tracePath);
    t.is((await runXenstoreCli(d, 'xenstore-write', ['/harness/traced', 'yes'])).code, 0);
    const trace = readFileSync(d.tracePath!, 'utf8');
    t.regex(trace, /IN .* WRITE \(\/harness\/traced yes\)/);
    if (release === '4.17') {
      t.regex(trace, /^OUT .* WRITE \(OK \)/m);
    } else {
      // 4.20's trace has categories ("io: ", "obj: ") and a reply in two lines, OUT(START) and
      // OUT(END) (docs/release-differences.md).
      t.regex(trace, /^io: IN .* WRITE \(\/harness\/traced yes\)/m);
      t.regex(trace, /^io: OUT\(START\) .* WRITE \(OK \)\n(?:.*\n)*?io: OUT\(END\) .* WRITE \(OK \)/m);
    }
  } finally {
    await d.stop();
  }
});

/** Counts failed commits over 60 pyxs transactions: test-eagain should make some fail. */
async function eagainCommits(d: RunningDaemon): Promise<number> {
  const r = await runPyxs(
    d,
    [
      'import pyxs',
      'failed = 0',
      'with pyxs.Client() as c:',
      '    for i in range(60):',
      '        c.transaction()',
      '        c.write(b"/harness/eagain", str(i).encode())',
      '        if not c.commit(): failed += 1',
      'print(failed)',
    ].join('\n'),
  );
  if (r.code !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

for (const release of XEN_RELEASES) test(`oxenstored ${release}: testEagain turns on random commit failures, off by default`, async (t) => {
  const flaky = await startDaemon('oxenstored', { testEagain: true, release });
  try {
    const failed = await eagainCommits(flaky);
    t.log(`test-eagain = true: ${failed}/60 commits failed with EAGAIN`);
    t.true(failed > 0 && failed < 60);
  } finally {
    await flaky.stop();
  }
  t.is(await eagainCommits(shared.get(`oxenstored ${release}`)!), 0);
});

test.serial('a missing preload library fails loudly with the build command', async (t) => {
  const saved = process.env.XEN_SSHM_PRELOAD;
  process.env.XEN_SSHM_PRELOAD = '/nonexistent/libxenstored_preload.so';
  try {
    const err = await t.throwsAsync(startDaemon('cxenstored'), { instanceOf: HarnessError });
    t.is(err?.code, 'ENOENT');
    t.is((err as HarnessError).path, '/nonexistent/libxenstored_preload.so');
    t.regex(err!.message, /cmake-js compile/);
  } finally {
    if (saved === undefined) delete process.env.XEN_SSHM_PRELOAD;
    else process.env.XEN_SSHM_PRELOAD = saved;
  }
});

for (const release of XEN_RELEASES) test(`cxenstored ${release}: fake domains can be introduced, and a guest talks to the daemon over its ring`, async (t) => {
  const d = await startDaemon('cxenstored', { fakeDomains: [1], release });
  try {
    const dom0 = await openRaw(d.socketPath);
    dom0.on('error', () => undefined);
    dom0.write(frame(8 /* INTRODUCE */, 1, Buffer.from('1\x00100\x001\x00')));
    t.is((await readReply(dom0)).payload.toString(), 'OK\0');
    dom0.write(frame(8, 2, Buffer.from('2\x00100\x001\x00')));
    t.is((await readReply(dom0)).payload.toString(), 'EINVAL\0', 'domain 2 does not exist');
    dom0.destroy();
    const guest = await openRaw(await d.guestSocket(1));
    guest.on('error', () => undefined);
    guest.write(frame(10 /* GET_DOMAIN_PATH */, 5, Buffer.from('1\x00')));
    t.is((await readReply(guest)).payload.toString(), '/local/domain/1\0');
    guest.write(frame(2 /* READ */, 6, Buffer.from('/tool/xenstored\x00')));
    const denied = await readReply(guest);
    t.is(denied.type, 16 /* ERROR */);
    t.is(denied.payload.toString(), 'EACCES\0', 'the guest is unprivileged');
    guest.destroy();
  } finally {
    await d.stop();
  }
});

for (const release of XEN_RELEASES) test(`oxenstored ${release}: guest rings are not bridged (typed error)`, async (t) => {
  const err = await t.throwsAsync(shared.get(`oxenstored ${release}`)!.guestSocket(1), { instanceOf: HarnessError });
  t.is(err?.code, 'ENOTSUP');
});

test('4.20 runs from its own root: its daemons and clients are Debian 13\'s, not the machine\'s', async (t) => {
  const d = shared.get('cxenstored 4.20')!;
  t.is(d.release, '4.20');
  // /proc/PID/maps of the running daemon: its libxenctrl is 4.20's from the private root.
  const maps = readFileSync(`/proc/${d.pid}/maps`, 'utf8');
  t.regex(maps, /xen-amd64-4\.20\/root\/usr\/lib\/x86_64-linux-gnu\/libxenctrl\.so\.4\.20/);
  t.notRegex(maps, /libxenctrl\.so\.4\.17/);
  const old = shared.get('cxenstored 4.17')!;
  t.regex(readFileSync(`/proc/${old.pid}/maps`, 'utf8'), /libxenctrl\.so\.4\.17/);
});
