/**
 * The socket transport's byte path (xenstore-wire/transport-socket.ts): reads through `onread`,
 * writes straight to the descriptor while the stream has nothing queued, through socket.write()
 * otherwise. The property that matters: bytes go out exactly in the order sent, whichever path
 * each write took, including when the socket buffer fills up (short writes, EAGAIN).
 */
import test from 'ava';
import { createServer, Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SocketTransport, TransportSink, ConnectionError, XenstoreClient, MessageType as T } from '../../xenstore-wire';
import { FixtureReader, SeenFrame } from './helpers/fake-peer';
import { frameBytes, nul } from './helpers/wire';
import { withTimeout } from './helpers/async';

async function pausedPeer(): Promise<{ path: string; conn: Promise<Socket>; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-socktest-'));
  const path = join(dir, 'socket');
  let got!: (s: Socket) => void;
  const conn = new Promise<Socket>((r) => (got = r));
  const server = createServer({ pauseOnConnect: true }, (s) => got(s));
  await new Promise<void>((r) => server.listen(path, () => r()));
  return {
    path,
    conn,
    close: async () => {
      (await conn).destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sink = (): TransportSink & { closed: (ConnectionError | null)[] } => {
  const closed: (ConnectionError | null)[] = [];
  return { closed, onData: () => undefined, onSendError: () => undefined, onClose: (e) => closed.push(e) };
};

test('a burst that overflows the socket buffer arrives whole and in order (direct writes, then the stream, then direct again)', async (t) => {
  const peer = await pausedPeer();
  const tr = await SocketTransport.connect(peer.path);
  tr.start(sink());
  // 64 MiB in 16000 frames over 80 ticks, while the peer reads nothing: the kernel buffer
  // (a few hundred KiB) fills, writes go short or EAGAIN and the rest queues in the stream.
  const frames: Buffer[] = [];
  for (let tick = 0; tick < 80; tick++) {
    for (let i = 0; i < 200; i++) {
      const n = frames.length;
      const f = frameBytes(T.WRITE, n, 0, Buffer.alloc(4000, n % 251));
      frames.push(f);
      tr.send(f, n);
    }
    await new Promise((r) => setImmediate(r));
  }
  const queued = (tr as unknown as { socket: Socket }).socket.writableLength;
  t.true(queued > 0, `the stream holds ${queued} bytes: the socket buffer did fill up`);
  const s = await peer.conn;
  const reader = new FixtureReader();
  const seen: SeenFrame[] = [];
  const done = new Promise<void>((resolve) =>
    s.on('data', (d: Buffer) => {
      seen.push(...reader.push(d));
      if (seen.length === frames.length) resolve();
    }),
  );
  s.resume();
  // Later sends, once the stream has drained, take the direct path again.
  await withTimeout(done, 60_000, 'every frame at the peer');
  t.is(seen.length, frames.length);
  const wrong = seen.findIndex((f, i) => f.reqId !== i || f.payload.length !== 4000 || f.payload[0] !== i % 251 || f.payload[3999] !== i % 251);
  t.is(wrong, -1, `first frame out of order or damaged: ${wrong}`);
  tr.send(frameBytes(T.READ, 99999, 0, nul('/after')), 99999);
  const after = await withTimeout(new Promise<SeenFrame[]>((r) => s.once('data', (d: Buffer) => r(reader.push(d)))), 5000, 'the frame after the burst');
  t.is(after[0]?.reqId, 99999);
  await tr.close();
  await peer.close();
});

test('writing to a peer that is gone ends the connection with a ConnectionError, never a throw', async (t) => {
  const peer = await pausedPeer();
  const tr = await SocketTransport.connect(peer.path);
  const client = new XenstoreClient(tr);
  (await peer.conn).destroy();
  await new Promise((r) => setTimeout(r, 20));
  const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => client.read(`/gone/${i}`)));
  t.true(results.every((r) => r.status === 'rejected' && r.reason instanceof ConnectionError), JSON.stringify(results.slice(0, 2)));
  t.true((await client.closed) instanceof ConnectionError);
  await peer.close();
});
