/**
 * Client behaviour the real daemons cannot be made to show on demand: replies out of order,
 * protocol violations, oversized replies, DIRECTORY_PART generation changes, lost connections,
 * EAGAIN storms. The peer is a real Unix socket server whose answers each test scripts.
 */
import test from 'ava';
import {
  connect,
  ConnectionError,
  MessageType as T,
  ProtocolError,
  XenstoreClient,
  XenstoreError,
  REPLY_PAYLOAD_BOUND,
} from '../../xenstore-wire';
import { FakeSocketPeer, SeenFrame } from './helpers/fake-peer';
import { frameBytes, headerBytes, nul } from './helpers/wire';
import { nextEvent, withTimeout } from './helpers/async';

async function setup(): Promise<{ peer: FakeSocketPeer; xs: XenstoreClient; done: () => Promise<void> }> {
  const peer = await FakeSocketPeer.start();
  const xs = await connect({ path: peer.path });
  await peer.socket();
  return {
    peer,
    xs,
    done: async () => {
      await xs.destroy();
      await peer.stop();
    },
  };
}

const ok = (f: SeenFrame) => frameBytes(f.type, f.reqId, f.txId, nul('OK'));
const firstString = (f: SeenFrame) => f.payload.toString('latin1').split('\0')[0];

test('replies out of order are matched by req_id', async (t) => {
  const { peer, xs, done } = await setup();
  const reads = ['/a', '/b', '/c', '/d'].map((p) => xs.readString(p));
  await peer.waitFrames(4);
  for (const f of [...peer.frames].reverse()) peer.send(frameBytes(T.READ, f.reqId, 0, `value of ${firstString(f)}`));
  t.deepEqual(await Promise.all(reads), ['value of /a', 'value of /b', 'value of /c', 'value of /d']);
  await done();
});

test('1000 pipelined reads go out as one burst before any reply', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = () => undefined; // no reply until all have arrived
  const reads = Array.from({ length: 1000 }, (_, i) => xs.readString(`/p/${i}`));
  await peer.waitFrames(1000);
  t.true(peer.dataEvents <= 3, `${peer.dataEvents} socket reads for 1000 requests`);
  t.is(xs.inFlight, 1000);
  t.is(new Set(peer.frames.map((f) => f.reqId)).size, 1000, 'distinct req_ids');
  peer.send(Buffer.concat(peer.frames.map((f) => frameBytes(T.READ, f.reqId, 0, firstString(f)))));
  const got = await Promise.all(reads);
  t.true(got.every((v, i) => v === `/p/${i}`));
  await done();
});

test('an ERROR reply becomes XenstoreError with the daemon name; an unknown name a ProtocolError', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => {
    const name = firstString(f) === '/unknown' ? 'EWEIRD' : 'EACCES';
    peer.send(frameBytes(T.ERROR, f.reqId, f.txId, nul(name)));
  };
  const e = await t.throwsAsync(xs.read('/secret'), { instanceOf: XenstoreError });
  t.like(e, { code: 'EACCES', op: 'READ', path: '/secret', source: 'daemon', errno: 13 });
  const p = await t.throwsAsync(xs.read('/unknown'), { instanceOf: ProtocolError });
  t.like(p, { reason: 'unknown-error-name', rawName: 'EWEIRD', path: '/unknown' });
  t.true(xs.isOpen, 'a bad error name fails the request, not the connection');
  await done();
});

test('a reply of the wrong type fails that request only', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => peer.send(firstString(f) === '/bad' ? frameBytes(T.DIRECTORY, f.reqId, 0, nul('x')) : frameBytes(T.READ, f.reqId, 0, 'fine'));
  const e = await t.throwsAsync(xs.read('/bad'), { instanceOf: ProtocolError });
  t.is(e?.reason, 'unexpected-reply-type');
  t.is(await xs.readString('/good'), 'fine');
  await done();
});

test('a malformed reply payload is a ProtocolError for that request', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => {
    if (f.type === T.TRANSACTION_START) peer.send(frameBytes(f.type, f.reqId, 0, nul('not-a-number')));
    else if (f.type === T.WRITE) peer.send(frameBytes(f.type, f.reqId, 0, nul('NOPE')));
    else peer.send(frameBytes(f.type, f.reqId, 0, nul('Q')));
  };
  t.like(await t.throwsAsync(xs.transactionStart(), { instanceOf: ProtocolError }), { reason: 'malformed-payload' });
  t.like(await t.throwsAsync(xs.write('/a', 'b'), { instanceOf: ProtocolError }), { reason: 'malformed-payload' });
  t.like(await t.throwsAsync(xs.isDomainIntroduced(1), { instanceOf: ProtocolError }), { reason: 'malformed-payload' });
  t.true(xs.isOpen);
  await done();
});

test('a reply nobody asked for ends the connection with a ProtocolError for everyone waiting', async (t) => {
  const { peer, xs, done } = await setup();
  const pending = xs.read('/x');
  await peer.waitFrames(1);
  peer.send(frameBytes(T.READ, 999_999, 0, 'surprise'));
  const e = await t.throwsAsync(pending, { instanceOf: ProtocolError });
  t.is(e?.reason, 'unsolicited-reply');
  t.true((await xs.closed) instanceof ProtocolError);
  await t.throwsAsync(xs.read('/y'), { instanceOf: ProtocolError });
  await done();
});

test('oversized replies: accepted up to the bound, a connection error beyond it', async (t) => {
  const { peer, xs, done } = await setup();
  const names = Array.from({ length: 400 }, (_, i) => `n${String(i).padStart(24, '0')}`);
  peer.onFrame = (f) => peer.send(frameBytes(T.DIRECTORY, f.reqId, 0, nul(...names)));
  const listed = await xs.directory('/big');
  t.deepEqual(listed, names); // 10400 bytes in one reply, as oxenstored sends

  peer.onFrame = (f) => peer.send(headerBytes(T.DIRECTORY, f.reqId, 0, REPLY_PAYLOAD_BOUND + 1));
  const w = xs.watch('/w');
  const r = xs.directory('/huge');
  const e = await t.throwsAsync(r, { instanceOf: ProtocolError });
  t.is(e?.reason, 'oversized-frame');
  t.true((await xs.closed) instanceof ProtocolError);
  await t.throwsAsync(w.next(), { instanceOf: ProtocolError });
  await done();
});

test('DIRECTORY E2BIG falls back to DIRECTORY_PART and restarts when the generation changes', async (t) => {
  const { peer, xs, done } = await setup();
  const all = Array.from({ length: 10 }, (_, i) => `c${i}`);
  let partCalls = 0;
  let generation = 7;
  peer.onFrame = (f) => {
    if (f.type === T.DIRECTORY) return peer.send(frameBytes(T.ERROR, f.reqId, 0, nul('E2BIG')));
    const [path, off] = f.payload.toString('latin1').split('\0');
    t.is(path, '/d');
    partCalls++;
    if (partCalls === 2) generation = 8; // the directory changed between chunks
    // Chunks of 3 names, offsets in bytes of "cN\0" = 3 bytes each.
    const start = Number(off) / 3;
    const chunk = all.slice(start, start + 3);
    const last = start + 3 >= all.length;
    const body = Buffer.concat([nul(String(generation)), nul(...chunk), last ? Buffer.from([0]) : Buffer.alloc(0)]);
    peer.send(frameBytes(T.DIRECTORY_PART, f.reqId, 0, body));
  };
  t.deepEqual(await xs.directory('/d'), all);
  t.is(partCalls, 2 + 4, 'one restarted pass after the change, then 4 chunks');
  await done();
});

test('watch events are routed by token whatever their req_id/tx_id; unknown tokens are dropped', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => peer.send(ok(f));
  const a = xs.watch('/a', 'ta');
  const b = xs.watch('/b', 'tb');
  await Promise.all([a.ready, b.ready]);
  // Over /dev/xen/xenbus events carry garbage ids: routing must ignore them.
  peer.send(frameBytes(T.WATCH_EVENT, 0xdeadbeef, 0x1234, nul('/b/x', 'tb')));
  peer.send(frameBytes(T.WATCH_EVENT, 0, 0, nul('/z', 'nobody')));
  peer.send(frameBytes(T.WATCH_EVENT, 7, 7, nul('/a/y', 'ta')));
  t.deepEqual(await nextEvent(b), { path: '/b/x', token: 'tb' });
  t.deepEqual(await nextEvent(a), { path: '/a/y', token: 'ta' });
  await a.close();
  const unwatch = peer.frames.find((f) => f.type === T.UNWATCH);
  t.deepEqual(unwatch?.payload, nul('/a', 'ta'));
  await done();
});

test('a watch the daemon refuses ends with its error', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => peer.send(frameBytes(T.ERROR, f.reqId, 0, nul('ENOSPC')));
  const w = xs.watch('/q');
  await t.throwsAsync(w.ready, { instanceOf: XenstoreError, message: /ENOSPC/ });
  const e = await t.throwsAsync(w.next(), { instanceOf: XenstoreError });
  t.is(e?.code, 'ENOSPC');
  t.deepEqual(await w.next(), { value: undefined, done: true }, 'reported once, then finished');
  // The token is free again.
  peer.onFrame = (f) => peer.send(ok(f));
  await t.notThrowsAsync(xs.watch('/q', w.token).ready);
  await done();
});

test('the peer closing rejects every pending request and ends every watch with ConnectionError', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => {
    if (f.type === T.WATCH) peer.send(ok(f));
  };
  const w = xs.watch('/w');
  await w.ready;
  const reads = Array.from({ length: 10 }, (_, i) => xs.read(`/r${i}`));
  const tx = xs.transactionStart();
  await peer.waitFrames(12);
  peer.conn!.destroy();
  for (const r of reads) {
    const e = await t.throwsAsync(r, { instanceOf: ConnectionError });
    t.is(e?.op, 'READ');
    t.is(e?.path, peer.path);
  }
  t.like(await t.throwsAsync(tx, { instanceOf: ConnectionError }), { op: 'TRANSACTION_START' });
  await t.throwsAsync(w.next(), { instanceOf: ConnectionError });
  t.true((await xs.closed) instanceof ConnectionError);
  await done();
});

test('requests over the payload limit are refused with E2BIG before anything is sent', async (t) => {
  const { peer, xs, done } = await setup();
  const e = await t.throwsAsync(xs.write('/v', Buffer.alloc(4096)), { instanceOf: XenstoreError });
  t.like(e, { code: 'E2BIG', source: 'client', op: 'WRITE' });
  await t.throwsAsync(xs.setPerms('/v', Array.from({ length: 1000 }, (_, i) => `r${i}`)), { instanceOf: XenstoreError, message: /E2BIG/ });
  peer.onFrame = (f) => peer.send(frameBytes(T.READ, f.reqId, 0, 'x'));
  t.is(await xs.readString('/v'), 'x');
  t.is(peer.frames.length, 1, 'only the read reached the peer');
  await done();
});

test('transaction helper: retries EAGAIN with backoff, gives up after maxAttempts', async (t) => {
  const { peer, xs, done } = await setup();
  let commits = 0;
  let nextTx = 1;
  let failCommits = 3;
  peer.onFrame = (f) => {
    if (f.type === T.TRANSACTION_START) return peer.send(frameBytes(f.type, f.reqId, 0, nul(String(nextTx++))));
    if (f.type === T.TRANSACTION_END && firstString(f) === 'T') {
      commits++;
      if (commits <= failCommits) return peer.send(frameBytes(T.ERROR, f.reqId, f.txId, nul('EAGAIN')));
    }
    peer.send(ok(f));
  };
  const attempts: number[] = [];
  let runs = 0;
  const r = await xs.transaction(
    async (tx) => {
      runs++;
      await tx.write('/x', String(tx.id));
      return tx.id;
    },
    { onRetry: (n) => attempts.push(n), baseDelayMs: 1, maxDelayMs: 5 },
  );
  t.is(r, 4);
  t.is(runs, 4);
  t.deepEqual(attempts, [1, 2, 3]);
  // Every write carried its own transaction's id.
  t.deepEqual(peer.frames.filter((f) => f.type === T.WRITE).map((f) => f.txId), [1, 2, 3, 4]);

  commits = 0;
  failCommits = 1000;
  const e = await t.throwsAsync(xs.transaction(async (tx) => tx.write('/x', 'y'), { maxAttempts: 5, baseDelayMs: 0 }), { instanceOf: XenstoreError });
  t.is(e?.code, 'EAGAIN');
  t.regex(e?.message ?? '', /5 attempts/);
  t.is(commits, 5);
  await done();
});

test('transaction helper: a throw aborts (sends F) and is not retried', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = (f) => peer.send(f.type === T.TRANSACTION_START ? frameBytes(f.type, f.reqId, 0, nul('9')) : ok(f));
  await t.throwsAsync(
    xs.transaction(async () => {
      throw new RangeError('user bug');
    }),
    { instanceOf: RangeError },
  );
  const ends = peer.frames.filter((f) => f.type === T.TRANSACTION_END);
  t.is(ends.length, 1);
  t.deepEqual(ends[0].payload, nul('F'));
  t.is(ends[0].txId, 9);
  await done();
});

test('close() waits for replies in flight; destroy() does not', async (t) => {
  const { peer, xs, done } = await setup();
  const r = xs.readString('/slow');
  await peer.waitFrames(1);
  const closing = xs.close();
  await t.throwsAsync(xs.read('/later'), { instanceOf: ConnectionError, message: /closing/ });
  peer.send(frameBytes(T.READ, peer.frames[0].reqId, 0, 'late but fine'));
  t.is(await r, 'late but fine');
  await withTimeout(closing, 2000, 'close()');
  t.is(await xs.closed, null);
  await done();

  const second = await setup();
  const r2 = second.xs.read('/never');
  await second.peer.waitFrames(1);
  await second.xs.destroy();
  t.like(await t.throwsAsync(r2, { instanceOf: ConnectionError }), { code: 'ECONNABORTED', op: 'READ' });
  await second.done();
});

test('a request with an empty payload is followed by GET_DOMAIN_PATH 0, whose answer is dropped (oxenstored waits for more bytes)', async (t) => {
  const { peer, xs, done } = await setup();
  const features = xs._request(T.GET_FEATURE, Buffer.alloc(0), 0);
  await peer.waitFrames(2);
  t.deepEqual(
    peer.frames.map((f) => [f.type, f.payload.toString('latin1')]),
    [
      [T.GET_FEATURE, ''],
      [T.GET_DOMAIN_PATH, '0\0'],
    ],
  );
  t.is(xs.inFlight, 2);
  // Answered in reverse order: the nudge's reply goes nowhere, the request gets its own.
  peer.send(frameBytes(T.GET_DOMAIN_PATH, peer.frames[1].reqId, 0, nul('/local/domain/0')));
  peer.send(frameBytes(T.GET_FEATURE, peer.frames[0].reqId, 0, nul('6')));
  t.deepEqual(await features, nul('6'));
  t.is(xs.inFlight, 0);
  // Requests with a payload get no nudge.
  const r = xs.read('/x');
  await peer.waitFrames(3);
  peer.send(frameBytes(T.READ, peer.frames[2].reqId, 0, 'v'));
  t.is((await r).toString(), 'v');
  t.is(peer.frames.length, 3);
  await done();
});

/**
 * A peer answering as docs/misc/xenstore.txt of Xen 4.22 specifies (no real 4.22 daemon runs
 * here): GET_FEATURE gives `features`, WATCH acks and fires, GET/SET_QUOTA on a small table.
 */
function xen422Peer(peer: FakeSocketPeer, features: number): { quotas: Map<string, number> } {
  const quotas = new Map([
    ['nodes', 1000],
    ['watches', 128],
  ]);
  peer.onFrame = (f) => {
    const args = f.payload.length === 0 ? [] : f.payload.toString('latin1').replace(/\0$/, '').split('\0');
    const reply = (body: Buffer | string) => peer.send(frameBytes(f.type, f.reqId, 0, body));
    switch (f.type) {
      case T.GET_FEATURE:
        return reply(nul(String(features)));
      case T.GET_DOMAIN_PATH:
        return reply(nul(`/local/domain/${args[0]}`));
      case T.WATCH:
        reply(nul('OK'));
        return peer.send(frameBytes(T.WATCH_EVENT, 0, 0, nul(args[0], args[1])));
      case T.UNWATCH:
        return reply(nul('OK'));
      case T.GET_QUOTA:
        if (args.length === 0) return reply(nul([...quotas.keys()].join(' ')));
        return reply(nul(String(quotas.get(args[args.length - 1]) ?? 0)));
      case T.SET_QUOTA:
        quotas.set(args[args.length - 2], Number(args[args.length - 1]));
        return reply(nul('OK'));
      default:
        return peer.send(frameBytes(T.ERROR, f.reqId, 0, nul('ENOSYS')));
    }
  };
  return { quotas };
}

test('Xen 4.22 peer: features asked once, depth and per-domain watches sent as specified, deeper events dropped', async (t) => {
  const { peer, xs, done } = await setup();
  xen422Peer(peer, 14); // ERROR | WATCHDEPTH | DOMID_ANY, as C xenstored 4.22 answers
  t.is(await xs.getFeature(), 14);
  t.true(await xs.hasFeature('WATCHDEPTH'));
  t.true(await xs.hasFeature(8));
  t.false(await xs.hasFeature('RECONNECTION'));
  const deep = xs.watch('/w', { depth: 1, token: 'd1' });
  const rel = xs.watchDomainRelease(5, { token: 'r5' });
  t.deepEqual(await nextEvent(deep), { path: '/w', token: 'd1' });
  t.deepEqual(await nextEvent(rel), { path: '@releaseDomain/5', token: 'r5' });
  t.is(deep.depth, 1);
  const watches = peer.frames.filter((f) => f.type === T.WATCH).map((f) => f.payload.toString('latin1'));
  t.deepEqual(watches, ['/w\0d1\x001\0', '@releaseDomain/5\0r5\0']);
  // One GET_FEATURE for getFeature() and one for the cached check shared by both watches.
  t.is(peer.frames.filter((f) => f.type === T.GET_FEATURE).length, 2);
  // /dev/xen/xenbus drops the depth (the kernel registers path and token only): the client
  // applies it to what arrives as well.
  peer.send(frameBytes(T.WATCH_EVENT, 0, 0, nul('/w/a/b', 'd1')));
  peer.send(frameBytes(T.WATCH_EVENT, 0, 0, nul('/w/c', 'd1')));
  t.is((await nextEvent(deep)).path, '/w/c');
  await done();
});

test('Xen 4.22 peer: quotas', async (t) => {
  const { peer, xs, done } = await setup();
  const { quotas } = xen422Peer(peer, 14);
  t.deepEqual(await xs.getQuotaNames(), ['nodes', 'watches']);
  t.is(await xs.getQuota('nodes'), 1000);
  await xs.setQuota('watches', 64, 3);
  await xs.setQuota('nodes', 2000);
  t.is(quotas.get('watches'), 64);
  t.is(await xs.getQuota('nodes', 3), 2000);
  t.deepEqual(
    peer.frames.filter((f) => f.type === T.GET_QUOTA || f.type === T.SET_QUOTA).map((f) => [f.type, f.payload.toString('latin1')]),
    [
      [T.GET_QUOTA, ''],
      [T.GET_QUOTA, 'nodes\0'],
      [T.SET_QUOTA, '3\0watches\x0064\0'],
      [T.SET_QUOTA, 'nodes\x002000\0'],
      [T.GET_QUOTA, '3\0nodes\0'],
    ],
  );
  await done();
});

test('a daemon offering features but not WATCHDEPTH (Xen 4.21): depth and per-domain watches end with ENOSYS, nothing sent', async (t) => {
  const { peer, xs, done } = await setup();
  xen422Peer(peer, 2);
  const w = xs.watch('/w', { depth: 0 });
  const e = await t.throwsAsync(w.ready, { instanceOf: XenstoreError });
  t.like(e, { code: 'ENOSYS', source: 'client', op: 'WATCH', path: '/w' });
  await t.throwsAsync(xs.watchDomainRelease(3).ready, { instanceOf: XenstoreError, message: /WATCHDEPTH/ });
  t.is(peer.frames.filter((f) => f.type === T.WATCH).length, 0);
  // A plain watch still works, with the same token free again.
  const plain = xs.watch('/w', { token: w.token });
  t.is((await nextEvent(plain)).path, '/w');
  await done();
});

test('a depth watch closed, or its connection closed, during the feature check never sends WATCH', async (t) => {
  const { peer, xs, done } = await setup();
  peer.onFrame = () => undefined; // GET_FEATURE stays unanswered for now
  const w = xs.watch('/w', { depth: 2 });
  await peer.waitFrames(1);
  t.is(peer.frames[0].type, T.GET_FEATURE);
  await w.close();
  t.true(w.ended);
  const w2 = xs.watch('/w', { depth: 2, token: w.token });
  xen422Peer(peer, 14);
  peer.send(frameBytes(T.GET_FEATURE, peer.frames[0].reqId, 0, nul('14')));
  t.deepEqual(await nextEvent(w2), { path: '/w', token: w.token });
  t.deepEqual(
    peer.frames.filter((f) => f.type === T.WATCH).map((f) => f.payload.toString('latin1')),
    [`/w\0${w.token}\x002\0`],
    'only the second watch went out',
  );
  await done();
});

test('arguments out of range are typed client errors before anything is sent', async (t) => {
  const { peer, xs, done } = await setup();
  for (const p of [xs.getFeature(-1), xs.setFeature(70000, 1), xs.getQuota('nodes', 1.5), xs.setQuota('nodes', -1), xs.release(-3), xs.getQuota('two words')]) {
    const e = await t.throwsAsync(p, { instanceOf: XenstoreError });
    t.is(e?.code, 'EINVAL');
    t.is(e?.source, 'client');
  }
  for (const bad of [-1, 1.5, 2 ** 31]) {
    t.throws(() => xs.watch('/w', { depth: bad }), { instanceOf: XenstoreError, message: /depth/ });
  }
  t.throws(() => xs.watchDomainRelease(65536), { instanceOf: XenstoreError });
  t.throws(() => xs.watch('@releaseDomain/', 'x'), { instanceOf: XenstoreError });
  t.is(peer.frames.length, 0);
  await done();
});
