/**
 * Seeded fuzzing: random and truncated frames, random splits, mutated headers, fed to the
 * framing decoder and to the client (in-process transport, and a real socket peer). The only
 * acceptable outcomes are whole frames, values, and typed errors; buffering stays bounded.
 * A failing case prints its seed; rerun it by putting the seed in the loop.
 */
import test from 'ava';
import {
  FrameDecoder,
  MessageType as T,
  ProtocolError,
  XenstoreClient,
  XenstoreWireError,
  connect,
  XS_ERRNO_NAMES,
} from '../../xenstore-wire';
import { DecodedRequest, parseRequest, request } from '../../xenstore-wire/payload';
import { Rng } from './helpers/rng';
import { frameBytes, headerBytes, nul } from './helpers/wire';
import { FakeSocketPeer, FakeTransport, FixtureReader, SeenFrame } from './helpers/fake-peer';

function randomFrame(rng: Rng): { type: number; reqId: number; txId: number; payload: Buffer } {
  return {
    type: rng.next() < 0.8 ? rng.int(0, 26) : rng.int(0, 0xffffffff),
    reqId: rng.int(0, 0xffffffff),
    txId: rng.int(0, 3),
    payload: rng.bytes(rng.next() < 0.9 ? rng.int(0, 64) : rng.int(0, 6000)),
  };
}

test('decoder: 3000 seeded streams of valid frames in random splits decode exactly', (t) => {
  let decoded = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const rng = new Rng(seed);
    const frames = Array.from({ length: rng.int(0, 8) }, () => randomFrame(rng));
    const stream = Buffer.concat(frames.map((f) => frameBytes(f.type, f.reqId, f.txId, f.payload)));
    const d = new FrameDecoder({ maxPayload: 8192 });
    const got = rng.split(stream, rng.pick([1, 7, 64, 4096])).flatMap((c) => d.push(c));
    if (got.length !== frames.length || got.some((g, i) => g.reqId !== frames[i].reqId || !g.payload.equals(frames[i].payload))) {
      t.fail(`seed ${seed}: decoded ${got.length} of ${frames.length} frames`);
      return;
    }
    if (d.pendingBytes !== 0) t.fail(`seed ${seed}: ${d.pendingBytes} bytes left over`);
    decoded += got.length;
  }
  t.true(decoded > 9000, `${decoded} frames decoded`);
});

test('decoder: 5000 seeded random, truncated and mutated streams give frames or ProtocolError, never more buffering than the bound', (t) => {
  const maxPayload = 4096;
  let protocolErrors = 0;
  let frames = 0;
  for (let seed = 1; seed <= 5000; seed++) {
    const rng = new Rng(seed * 7919);
    let stream: Buffer;
    const mode = seed % 4;
    if (mode === 0) stream = rng.bytes(rng.int(0, 300));
    else {
      const fs = Array.from({ length: rng.int(1, 5) }, () => randomFrame(rng));
      stream = Buffer.concat(fs.map((f) => frameBytes(f.type, f.reqId, f.txId, f.payload)));
      if (mode === 1) stream = stream.subarray(0, rng.int(0, stream.length)); // truncated
      if (mode === 2) for (let k = rng.int(1, 6); k > 0; k--) stream[rng.int(0, stream.length - 1)] = rng.int(0, 255); // flipped bytes
      if (mode === 3) stream = Buffer.concat([stream, headerBytes(rng.int(0, 30), 1, 0, rng.int(0, 0xffffffff))]); // lying length
    }
    const d = new FrameDecoder({ maxPayload });
    try {
      for (const c of rng.split(stream, rng.pick([1, 16, 512]))) {
        frames += d.push(c).length;
        if (d.pendingBytes > maxPayload + 16) {
          t.fail(`seed ${seed}: buffering ${d.pendingBytes} bytes`);
          return;
        }
      }
    } catch (e) {
      if (!(e instanceof ProtocolError) || e.reason !== 'oversized-frame') {
        t.fail(`seed ${seed}: threw ${String(e)}`);
        return;
      }
      protocolErrors++;
    }
  }
  t.true(protocolErrors > 1000, `${protocolErrors} protocol errors`);
  t.true(frames > 1000, `${frames} frames`);
});

/** A random request of types 23-26 or a depth watch, with the decoding it must get back. */
function randomNewRequest(rng: Rng): { type: number; payload: Buffer; decoded: DecodedRequest } {
  const domid = rng.next() < 0.5 ? undefined : rng.pick([0, 1, 7, 0x7ff0, 65535, rng.int(0, 65535)]);
  const quota = rng.pick(['nodes', 'watches', 'transactions', 'node-size', 'permissions', 'soft-memory', 'path-max']);
  const value = rng.pick([0, 1, 4294967295, rng.int(0, 0xffffffff)]);
  const extra = (o: object) => (domid === undefined ? o : { ...o, domid });
  const args = (...xs: (string | number | undefined)[]) => xs.filter((x) => x !== undefined).map(String);
  switch (rng.int(0, 4)) {
    case 0:
      return { type: T.GET_FEATURE, payload: request.getFeature(domid), decoded: extra({ type: T.GET_FEATURE, args: args(domid) }) as DecodedRequest };
    case 1: {
      const d = domid ?? 0;
      return { type: T.SET_FEATURE, payload: request.setFeature(d, value), decoded: { type: T.SET_FEATURE, args: args(d, value), domid: d, features: value } };
    }
    case 2: {
      if (domid === undefined && rng.next() < 0.3) return { type: T.GET_QUOTA, payload: request.getQuota(), decoded: { type: T.GET_QUOTA, args: [] } };
      return { type: T.GET_QUOTA, payload: request.getQuota(domid, quota), decoded: extra({ type: T.GET_QUOTA, args: args(domid, quota), quota }) as DecodedRequest };
    }
    case 3:
      return {
        type: T.SET_QUOTA,
        payload: request.setQuota(domid, quota, value),
        decoded: extra({ type: T.SET_QUOTA, args: args(domid, quota, value), quota, value }) as DecodedRequest,
      };
    default: {
      const path = rng.pick(['/', '/a', '/local/domain/3/device', '@releaseDomain', '@introduceDomain', `@releaseDomain/${rng.int(0, 65535)}`, 'rel/x']);
      const token = rng.pick(['t', 'xs1', 'token-with-dashes']);
      const depth = rng.next() < 0.25 ? undefined : rng.pick([0, 1, 2, 0x7fffffff, rng.int(0, 100)]);
      const decoded: DecodedRequest = depth === undefined ? { type: T.WATCH, path, token } : { type: T.WATCH, path, token, depth };
      return { type: T.WATCH, payload: request.watch(path, token, depth), decoded };
    }
  }
}

test('types 23-26 and depth watches: 3000 seeded requests round-trip through random splits; mutations give ProtocolError only', (t) => {
  let mutatedTyped = 0;
  let mutatedParsed = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const rng = new Rng(seed * 65537);
    const reqs = Array.from({ length: rng.int(1, 6) }, () => randomNewRequest(rng));
    const stream = Buffer.concat(reqs.map((r, i) => frameBytes(r.type, i + 1, 0, r.payload)));
    const d = new FrameDecoder({ maxPayload: 4096 });
    const frames = rng.split(stream, rng.pick([1, 5, 64, 4096])).flatMap((c) => d.push(c));
    if (frames.length !== reqs.length) {
      t.fail(`seed ${seed}: ${frames.length} of ${reqs.length} frames`);
      return;
    }
    for (let i = 0; i < frames.length; i++) {
      t.deepEqual(parseRequest(frames[i].type, frames[i].payload), reqs[i].decoded, `seed ${seed} request ${i}`);
    }
    // The same payloads with bytes flipped, cut or extended: a decoded request or a typed error.
    for (const r of reqs) {
      const m = Buffer.from(r.payload);
      const k = rng.int(0, 2);
      const mutated =
        k === 0 && m.length > 0
          ? (m.fill(rng.pick([0, 0x20, 0x2d, 0x39, 0x61, rng.int(0, 255)]), rng.int(0, m.length - 1), rng.int(0, m.length)), m)
          : k === 1
            ? m.subarray(0, rng.int(0, m.length))
            : Buffer.concat([m, Buffer.from(rng.pick(['1\0', '\0', 'x\0', '99999999999\0']), 'latin1')]);
      try {
        parseRequest(r.type, mutated);
        mutatedParsed++;
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.reason !== 'malformed-payload') {
          t.fail(`seed ${seed}: ${String(e)} for ${mutated.toString('hex')}`);
          return;
        }
        mutatedTyped++;
      }
    }
  }
  t.true(mutatedTyped > 1000 && mutatedParsed > 1000, `${mutatedTyped} refused, ${mutatedParsed} parsed`);
});

/** Valid replies for the requests the client sent, to be mutated by the fuzzer. */
function repliesFor(sent: SeenFrame[], rng: Rng): Buffer[] {
  return sent.map((f) => {
    const r = rng.next();
    if (r < 0.15) return frameBytes(T.ERROR, f.reqId, f.txId, nul(rng.next() < 0.8 ? rng.pick(XS_ERRNO_NAMES) : 'EBOGUS'));
    if (r < 0.25) return frameBytes(T.WATCH_EVENT, rng.int(0, 9), 0, nul('/w', rng.pick(['xs1', 'xs2', 'zz'])));
    switch (f.type) {
      case T.READ:
        return frameBytes(f.type, f.reqId, f.txId, rng.bytes(rng.int(0, 40)));
      case T.DIRECTORY:
        return frameBytes(f.type, f.reqId, f.txId, nul('a', 'b'));
      case T.TRANSACTION_START:
        return frameBytes(f.type, f.reqId, 0, nul(String(rng.int(0, 20))));
      case T.GET_PERMS:
        return frameBytes(f.type, f.reqId, f.txId, nul('n0', rng.pick(['r1', 'q2', ''])));
      default:
        return frameBytes(f.type, f.reqId, f.txId, nul(rng.pick(['OK', 'KO', ''])));
    }
  });
}

function mutate(stream: Buffer, rng: Rng): Buffer {
  const out = Buffer.from(stream);
  switch (rng.int(0, 5)) {
    case 0:
      return out; // valid
    case 1:
      return out.subarray(0, rng.int(0, out.length)); // truncated
    case 2:
      for (let k = rng.int(1, 4); k > 0 && out.length > 0; k--) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return out;
    case 3:
      return Buffer.concat([out, rng.bytes(rng.int(1, 40))]); // trailing garbage
    case 4:
      return Buffer.concat([headerBytes(rng.int(0, 30), rng.int(0, 5), 0, rng.int(0, 0xffffffff)), out]); // lying header first
    default:
      return rng.bytes(rng.int(0, 80)); // pure noise
  }
}

/** Starts a mix of requests; returns promises that never reject (they resolve to the outcome). */
function startRequests(xs: XenstoreClient, rng: Rng): Promise<unknown>[] {
  const out: Promise<unknown>[] = [];
  for (let i = rng.int(1, 6); i > 0; i--) {
    const k = rng.int(0, 5);
    const p: Promise<unknown> =
      k === 0
        ? xs.read('/a')
        : k === 1
          ? xs.write('/a', 'v')
          : k === 2
            ? xs.directory('/d')
            : k === 3
              ? xs.transactionStart()
              : k === 4
                ? xs.getPerms('/p')
                : xs.watch('/w').ready;
    out.push(p.then((v) => v, (e: unknown) => e));
  }
  return out;
}

function checkOutcomes(t: { fail(m: string): void }, seed: number, outcomes: unknown[]): number {
  let typed = 0;
  for (const o of outcomes) {
    if (o instanceof Error) {
      if (!(o instanceof XenstoreWireError)) t.fail(`seed ${seed}: untyped error ${String(o)}`);
      typed++;
    }
  }
  return typed;
}

test('client: 3000 seeded garbage reply streams over an in-process transport give values or typed errors', async (t) => {
  let typed = 0;
  let values = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const rng = new Rng(seed * 104729);
    const tr = new FakeTransport();
    const xs = new XenstoreClient(tr, { maxReplyPayload: 4096 });
    const outcomes = startRequests(xs, rng);
    const reader = new FixtureReader();
    const sent = tr.sent.flatMap((b) => reader.push(b));
    // Requests go out on the next tick on a socket; here the fake collects them at once.
    const stream = mutate(Buffer.concat(repliesFor(sent, rng)), rng);
    try {
      for (const c of rng.split(stream, rng.pick([1, 13, 4096]))) tr.feed(c);
    } catch (e) {
      t.fail(`seed ${seed}: onData threw ${String(e)}`);
      return;
    }
    tr.drop(); // whatever is still pending now fails with ConnectionError
    const settled = await Promise.all(outcomes);
    const n = checkOutcomes(t, seed, settled);
    typed += n;
    values += settled.length - n;
    if (xs.inFlight !== 0) t.fail(`seed ${seed}: ${xs.inFlight} requests left in flight`);
  }
  t.true(typed > 1000 && values > 1000, `${typed} typed errors, ${values} values`);
});

test('client: 150 seeded garbage reply streams from a real socket peer give values or typed errors', async (t) => {
  let typed = 0;
  let total = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const rng = new Rng(seed * 15485863);
    const peer = await FakeSocketPeer.start();
    const xs = await connect({ path: peer.path });
    const outcomes = startRequests(xs, rng);
    await peer.waitFrames(outcomes.length);
    const stream = mutate(Buffer.concat(repliesFor(peer.frames, rng)), rng);
    const sock = await peer.socket();
    for (const c of rng.split(stream, rng.pick([1, 64, 4096]))) {
      sock.write(c);
      if (rng.next() < 0.2) await new Promise((r) => setImmediate(r)); // let the client read mid-stream
    }
    await new Promise((r) => setTimeout(r, 2));
    await peer.stop(); // closes the connection: anything unanswered fails
    const settled = await Promise.all(outcomes);
    typed += checkOutcomes(t, seed, settled);
    total += settled.length;
    await xs.destroy();
  }
  t.true(typed > 0 && total > 150, `${typed} typed errors of ${total} outcomes`);
});
