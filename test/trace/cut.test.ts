/**
 * Messages cut short by a close (issue 13 point 6): a client that sends 20 bytes of a 30-byte
 * WRITE and closes, a daemon that sends half a reply and closes. The trace must say so on the
 * close line, with the type, ids and byte counts, in text and JSON; before, it showed only
 * "connected" and "closed".
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { RunningDaemon, startDaemon } from '../harness/daemons';
import { T, f, listenXsTrace, nul, parseJsonLines, tmpDir, wire } from './helpers';

let daemon: RunningDaemon;
let dir: string;

test.before(async () => {
  daemon = await startDaemon('cxenstored');
  dir = tmpDir('xs-trace-cut-');
});

test.after.always(async () => {
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Connects, writes `bytes`, waits a little, closes; resolves once closed. */
function sendAndClose(socketPath: string, bytes: Buffer, waitMs = 200, attempt = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    s.on('error', (e: NodeJS.ErrnoException) => {
      // The socket file appears at bind(), a moment before listen(): retry a refused connect.
      if (e.code === 'ECONNREFUSED' && attempt < 50) setTimeout(() => sendAndClose(socketPath, bytes, waitMs, attempt + 1).then(resolve, reject), 20);
      else reject(e);
    });
    // Read whatever comes back, so that the end of the stream (and 'close') is reached.
    s.resume();
    s.on('connect', () => {
      s.write(bytes);
      setTimeout(() => s.end(), waitMs);
    });
    s.on('close', (hadError) => {
      if (!hadError) resolve();
    });
  });
}

test('a client closing in the middle of a WRITE: the close names the cut request and its byte counts', async (t) => {
  // WRITE "/cut/a" = "value!!": 16 header bytes + 14 payload bytes = 30; 20 are sent.
  const frame = wire(f(T.WRITE, 7, 0, Buffer.concat([nul('/cut/a'), Buffer.from('value!!')])));
  t.is(frame.length, 30);
  for (const json of [false, true]) {
    const sock = path.join(dir, `listen-${json}`);
    const proxy = await listenXsTrace(sock, ['--upstream', daemon.socketPath, ...(json ? ['--json'] : [])]);
    await sendAndClose(sock, frame.subarray(0, 20));
    const r = await proxy.stop();
    t.is(r.code, 0, r.stderr);
    if (json) {
      const close = parseJsonLines(r.stdout).find((x) => x.kind === 'disconnect');
      t.truthy(close, r.stdout);
      t.deepEqual(
        close!.warnings.map((w: { code: string }) => w.code),
        ['truncated-message'],
      );
      t.regex(close!.warnings[0].message, /^WRITE request \(req_id 7, tx_id 0\) cut short: 20 of 30 bytes sent before the connection closed/);
    } else {
      t.regex(r.stdout, /-- closed\n +! truncated-message: WRITE request \(req_id 7, tx_id 0\) cut short: 20 of 30 bytes sent/);
    }
  }
  // Nothing reached the daemon: the path does not exist.
  const check = await listenXsTrace(path.join(dir, 'check'), ['--upstream', daemon.socketPath, '--json']);
  await sendAndClose(check.socketPath, wire(f(T.READ, 1, 0, nul('/cut/a'))), 300);
  const c = await check.stop();
  t.true(parseJsonLines(c.stdout).some((x) => x.kind === 'reply' && x.error === 'ENOENT'), c.stdout);
});

test('a client closing after part of a header', async (t) => {
  const sock = path.join(dir, 'listen-header');
  const proxy = await listenXsTrace(sock, ['--upstream', daemon.socketPath, '--json']);
  await sendAndClose(sock, wire(f(T.READ, 3, 0, nul('/cut/b'))).subarray(0, 7));
  const r = await proxy.stop();
  const close = parseJsonLines(r.stdout).find((x) => x.kind === 'disconnect');
  t.deepEqual(close!.warnings, [
    { code: 'truncated-message', message: 'the connection closed after 7 of the 16 header bytes of a request were sent' },
  ]);
});

test('a daemon closing in the middle of a reply: the close names the cut reply', async (t) => {
  // A fake daemon: answers the first request with 10 of the 19 bytes of an OK and closes.
  const fake = path.join(dir, 'fake-daemon');
  const server = net.createServer((c) => {
    c.once('data', () => {
      c.end(wire(f(T.WRITE, 9, 0, nul('OK'))).subarray(0, 10));
    });
  });
  await new Promise<void>((r) => server.listen(fake, () => r()));
  try {
    const sock = path.join(dir, 'listen-fake');
    const proxy = await listenXsTrace(sock, ['--upstream', fake, '--json']);
    await sendAndClose(sock, wire(f(T.WRITE, 9, 0, Buffer.concat([nul('/x'), Buffer.from('v')]))), 300);
    const r = await proxy.stop();
    const close = parseJsonLines(r.stdout).find((x) => x.kind === 'disconnect');
    t.deepEqual(
      close!.warnings.map((w: { code: string }) => w.code),
      ['truncated-message', 'unanswered-request'],
    );
    t.is(close!.warnings[0].message, 'the connection closed after 10 of the 16 header bytes of a reply were received');
    t.regex(close!.warnings[1].message, /^WRITE \/x \(#\d+, req_id 9\) never answered$/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
