/**
 * Real xenstore clients against the in-memory server, held to C xenstored: Xen's own
 * test-xenstore, a scripted xenstore-utils session (its output must equal C xenstored's, live
 * and as recorded in fixtures/server), and pyxs.
 *
 * The server runs in this process, so every client is spawned asynchronously (a synchronous
 * spawn would block the event loop the server answers on).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, RunningDaemon, projectRoot } from '../harness/daemons';
import { runPyxs, runTestXenstore, runTool } from '../harness/clients';
import { startServer, XenstoreServer } from '../../xenstore-wire/server';

let server: XenstoreServer;
let reference: RunningDaemon;

test.before(async () => {
  server = await startServer();
  reference = await startDaemon('cxenstored');
});

test.after.always(async () => {
  await server?.close();
  await reference?.stop();
});

const SESSION = join(projectRoot(), 'fixtures', 'server', 'xenstore-utils-session.sh');

test.serial("Xen's test-xenstore passes against the in-memory server", async (t) => {
  const r = await runTestXenstore(server, ['-i', '20']);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => /^[a-z0-9 ]+:\s+(avg: )?\d+ ns/.test(l));
  t.is(lines.length, 12, r.stdout);
  t.log(`in-memory test-xenstore -i 20 (${r.ms} ms):\n${lines.join('\n')}`);
  const c = await runTestXenstore(reference, ['-i', '20']);
  t.is(c.code, 0);
  t.log(`C xenstored, same run:\n${c.stdout.split('\n').filter((l) => / ns/.test(l)).join('\n')}`);
});

test.serial('a scripted xenstore-utils session prints exactly what it prints against C xenstored', async (t) => {
  // The script runs in its own folder (it writes watch.out there).
  const cwdRun = async (socketPath: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-session-'));
    try {
      const r = await runTool('/bin/sh', ['-c', `cd '${dir}' && exec /bin/sh '${SESSION}'`], { ...process.env, XENSTORED_PATH: socketPath }, { timeoutMs: 60_000 });
      t.is(r.code, 0, r.stderr);
      return r.stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  // Fresh daemons: the session lists the whole tree.
  const freshServer = await startServer();
  const freshReference = await startDaemon('cxenstored');
  let ours: string;
  let theirs: string;
  try {
    ours = await cwdRun(freshServer.socketPath);
    theirs = await cwdRun(freshReference.socketPath);
  } finally {
    await freshServer.close();
    await freshReference.stop();
  }
  t.is(ours, theirs);
  t.is(ours, readFileSync(join(projectRoot(), 'fixtures', 'server', 'xenstore-utils-session.cxenstored.out'), 'utf8'));
  // The session did what it says: every step ran and the watch saw its four events.
  t.is((ours.match(/^## /gm) ?? []).length, 24);
  t.regex(ours, /## xenstore-watch -n 4 \/s\/w\n\/s\/w\n\/s\/w\/x\n\/s\/w\/x\n\/s\/w\n/);
});

const PYXS_PROGRAM = `
import pyxs, sys, errno
out = []
with pyxs.Client() as c:
    c.write(b"/py/a", b"alpha")
    c.write(b"/py/b/c", bytes(range(0x20, 0x80)))  # pyxs sends printable 7-bit ASCII only
    out.append(c.read(b"/py/a").decode())
    out.append(str(c.read(b"/py/b/c") == bytes(range(0x20, 0x80))))
    out.append(",".join(x.decode() for x in c.list(b"/py")))
    c.mkdir(b"/py/d")
    out.append(repr(c.read(b"/py/d")))
    out.append(str(c.exists(b"/py/zz")))
    c.set_perms(b"/py/a", [b"n0", b"r1"])
    out.append(",".join(p.decode() for p in c.get_perms(b"/py/a")))
    out.append(c.get_domain_path(3).decode())
    out.append(str(c.is_domain_introduced(0)))
    try:
        c.read(b"/py/missing")
    except pyxs.PyXSError as e:
        out.append("read missing: " + errno.errorcode[e.args[0]])
    c.transaction()
    c.write(b"/py/t", b"in-tx")
    out.append(str(c.commit()))
    out.append(c.read(b"/py/t").decode())
    with c.monitor() as m:
        m.watch(b"/py/w", b"tok")
        events = m.wait()
        out.append(repr(next(events)))
        c.write(b"/py/w/x", b"1")
        out.append(repr(next(events)))
    c.delete(b"/py")
    out.append(str(c.exists(b"/py")))
print("\\n".join(out))
`;

test.serial('pyxs works against the in-memory server, with the same results as against C xenstored', async (t) => {
  const ours = await runPyxs(server, PYXS_PROGRAM);
  t.is(ours.code, 0, ours.stderr);
  const theirs = await runPyxs(reference, PYXS_PROGRAM);
  t.is(theirs.code, 0, theirs.stderr);
  t.is(ours.stdout, theirs.stdout);
  t.deepEqual(ours.stdout.trim().split('\n'), [
    'alpha',
    'True',
    'a,b',
    "b''",
    'False',
    'n0,r1',
    '/local/domain/3',
    'True',
    'read missing: ENOENT',
    'True',
    'in-tx',
    "Event(path=b'/py/w', token=b'tok')",
    "Event(path=b'/py/w/x', token=b'tok')",
    'False',
  ]);
});
