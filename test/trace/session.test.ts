/**
 * The I/O-free tracing logic, fed with byte arrays: pairing, transactions, watches, warnings.
 */
import test from 'ava';
import { FrameDecoder } from '../../xenstore-wire/framing';
import { TraceSession } from '../../lib/trace/session';
import { TraceRecord } from '../../lib/trace/record';
import { formatHuman, formatJson } from '../../lib/trace/format';
import { T, f, nul, wire } from './helpers';

const C = 'client' as const;
const D = 'daemon' as const;

function codes(r: TraceRecord): string[] {
  return r.warnings.map((w) => w.code);
}

test('replies pair with their request by req_id, whatever the order, with latency', (t) => {
  const s = new TraceSession();
  s.connect(1, 1000);
  const [a] = s.frame(1, C, f(T.READ, 10, 0, nul('/a')), 1000);
  const [b] = s.frame(1, C, f(T.READ, 11, 0, nul('/b')), 1010);
  const [rb] = s.frame(1, D, f(T.READ, 11, 0, 'B'), 1050);
  const [ra] = s.frame(1, D, f(T.READ, 10, 0, 'A'), 1100);
  t.is(rb.requestSeq, b.seq);
  t.is(rb.path, '/b');
  t.deepEqual(rb.value, Buffer.from('B'));
  t.is(rb.latencyUs, 40);
  t.is(ra.requestSeq, a.seq);
  t.is(ra.path, '/a');
  t.is(ra.latencyUs, 100);
  t.deepEqual([...codes(ra), ...codes(rb)], []);
});

test('clients that always send req_id 0 (libxenstore) are paired by order', (t) => {
  const s = new TraceSession();
  const reqs = ['/x', '/y', '/z'].map((p, i) => s.frame(1, C, f(T.READ, 0, 0, nul(p)), i)[0]);
  const reps = ['1', '2', '3'].map((v, i) => s.frame(1, D, f(T.READ, 0, 0, v), 10 + i)[0]);
  t.deepEqual(
    reps.map((r) => [r.requestSeq, r.path]),
    reqs.map((r) => [r.seq, r.path]),
  );
});

test('an ERROR reply pairs like any reply and keeps the errno name', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.READ, 3, 0, nul('/missing')), 0);
  const [r] = s.frame(1, D, f(T.ERROR, 3, 0, nul('ENOENT')), 5);
  t.is(r.kind, 'reply');
  t.is(r.type, 'ERROR');
  t.is(r.op, 'READ');
  t.is(r.error, 'ENOENT');
  t.is(r.path, '/missing');
});

test('a transaction is followed from start through its operations to commit', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.TRANSACTION_START, 1, 0, nul('')), 0);
  const [started] = s.frame(1, D, f(T.TRANSACTION_START, 1, 0, nul('7')), 10);
  t.deepEqual(started.tx, { id: 7, event: 'start' });
  const [w1] = s.frame(1, C, f(T.WRITE, 2, 7, Buffer.concat([nul('/t/a'), Buffer.from('1')])), 20);
  t.deepEqual(w1.tx, { id: 7, event: 'op', opIndex: 1 });
  const [w1r] = s.frame(1, D, f(T.WRITE, 2, 7, nul('OK')), 25);
  t.deepEqual(w1r.tx, { id: 7, event: 'op', opIndex: 1 });
  s.frame(1, C, f(T.READ, 3, 7, nul('/t/b')), 30);
  s.frame(1, D, f(T.ERROR, 3, 7, nul('ENOENT')), 35);
  const [end] = s.frame(1, C, f(T.TRANSACTION_END, 4, 7, nul('T')), 40);
  t.is(end.result, 'commit');
  t.is(end.tx?.event, 'end');
  t.is(end.tx?.ops, 2);
  const [done] = s.frame(1, D, f(T.TRANSACTION_END, 4, 7, nul('OK')), 50);
  t.deepEqual(done.tx, { id: 7, event: 'commit', ops: 2, startSeq: started.seq, durationUs: 40 });
  // Ended: a further use of tx 7 is an operation on an unknown transaction.
  const [late] = s.frame(1, C, f(T.READ, 5, 7, nul('/t/a')), 60);
  t.deepEqual(codes(late), ['unknown-transaction']);
});

test('abort and EAGAIN end a transaction with their own event', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.TRANSACTION_START, 1, 0, nul('')), 0);
  s.frame(1, D, f(T.TRANSACTION_START, 1, 0, nul('1')), 1);
  s.frame(1, C, f(T.TRANSACTION_START, 2, 0, nul('')), 2);
  s.frame(1, D, f(T.TRANSACTION_START, 2, 0, nul('2')), 3);
  s.frame(1, C, f(T.TRANSACTION_END, 3, 1, nul('F')), 4);
  const [aborted] = s.frame(1, D, f(T.TRANSACTION_END, 3, 1, nul('OK')), 5);
  t.is(aborted.tx?.event, 'abort');
  s.frame(1, C, f(T.TRANSACTION_END, 4, 2, nul('T')), 6);
  const [conflict] = s.frame(1, D, f(T.ERROR, 4, 2, nul('EAGAIN')), 7);
  t.is(conflict.tx?.event, 'eagain');
  t.is(conflict.error, 'EAGAIN');
  // Both are gone now.
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 5, 2, nul('/a')), 8)[0]), ['unknown-transaction']);
});

test('transactions are per connection: tx 1 of one connection is unknown on another', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.TRANSACTION_START, 1, 0, nul('')), 0);
  s.frame(1, D, f(T.TRANSACTION_START, 1, 0, nul('1')), 1);
  const [other] = s.frame(2, C, f(T.READ, 1, 1, nul('/a')), 2);
  t.deepEqual(codes(other), ['unknown-transaction']);
  const [same] = s.frame(1, C, f(T.READ, 2, 1, nul('/a')), 3);
  t.deepEqual(codes(same), []);
});

test('watch events are linked to the WATCH that registered them, by token', (t) => {
  const s = new TraceSession();
  const [w] = s.frame(1, C, f(T.WATCH, 1, 0, nul('/dev', 'tokA')), 0);
  s.frame(1, C, f(T.WATCH, 2, 0, nul('/dev/x', 'tokB')), 1);
  // The first event can come before the WATCH reply.
  const [e0] = s.frame(1, D, f(T.WATCH_EVENT, 0, 0, nul('/dev', 'tokA')), 2);
  t.is(e0.kind, 'event');
  t.is(e0.watch?.id, w.watch?.id);
  t.is(e0.watch?.registeredSeq, w.seq);
  const [ok] = s.frame(1, D, f(T.WATCH, 1, 0, nul('OK')), 3);
  t.is(ok.watch?.event, 'registered');
  s.frame(1, D, f(T.WATCH, 2, 0, nul('OK')), 4);
  const [e1] = s.frame(1, D, f(T.WATCH_EVENT, 0, 0, nul('/dev/x/y', 'tokB')), 5);
  t.is(e1.watch?.path, '/dev/x');
  t.is(e1.token, 'tokB');
  s.frame(1, C, f(T.UNWATCH, 3, 0, nul('/dev/x', 'tokB')), 6);
  const [gone] = s.frame(1, D, f(T.UNWATCH, 3, 0, nul('OK')), 7);
  t.is(gone.watch?.event, 'unregistered');
  const [stray] = s.frame(1, D, f(T.WATCH_EVENT, 0, 0, nul('/dev/x', 'tokB')), 8);
  t.deepEqual(codes(stray), ['unknown-watch']);
});

test('warnings: payload over the limit, malformed paths, unknown types', (t) => {
  const s = new TraceSession();
  const big = s.frame(1, C, f(T.WRITE, 1, 0, Buffer.concat([nul('/big'), Buffer.alloc(4100, 0x61)])), 0)[0];
  t.deepEqual(codes(big), ['payload-over-limit']);
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 2, 0, nul('/a//b')), 0)[0]), ['malformed-path']);
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 3, 0, nul('/a b')), 0)[0]), ['malformed-path']);
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 4, 0, nul('/a/')), 0)[0]), ['malformed-path']);
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 5, 0, nul('@releaseDomain')), 0)[0]), ['malformed-path']);
  t.deepEqual(codes(s.frame(1, C, f(T.WATCH, 6, 0, nul('@releaseDomain', 't')), 0)[0]), []);
  t.deepEqual(codes(s.frame(1, C, f(T.READ, 7, 0, nul('/' + 'a'.repeat(3072))), 0)[0]), ['malformed-path']);
  const u = s.frame(1, C, f(20, 8, 0, nul('x')), 0)[0];
  t.is(u.type, 'UNKNOWN(20)');
  t.deepEqual(codes(u), ['unknown-type']);
  t.deepEqual(codes(s.frame(1, C, f(T.WATCH, 9, 0, nul('/only-path')), 0)[0]), ['malformed-payload']);
});

test('warnings: reply to an unknown request, reply of the wrong type, unknown error name', (t) => {
  const s = new TraceSession();
  const [orphan] = s.frame(1, D, f(T.READ, 99, 0, 'x'), 0);
  t.is(orphan.kind, 'reply');
  t.deepEqual(codes(orphan), ['unknown-request']);
  s.frame(1, C, f(T.READ, 1, 0, nul('/a')), 0);
  t.deepEqual(codes(s.frame(1, D, f(T.WRITE, 1, 0, nul('OK')), 0)[0]), ['reply-type-mismatch']);
  s.frame(1, C, f(T.READ, 2, 0, nul('/a')), 0);
  const [odd] = s.frame(1, D, f(T.ERROR, 2, 0, nul('EWEIRD')), 0);
  t.deepEqual(codes(odd), ['unknown-error-name']);
  t.is(odd.error, 'EWEIRD');
});

test('an oversized reply is pointed out (oxenstored big DIRECTORY)', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.DIRECTORY, 1, 0, nul('/big')), 0);
  const names = Array.from({ length: 300 }, (_, i) => `child-with-a-long-name-${String(i).padStart(3, '0')}`);
  const [r] = s.frame(1, D, f(T.DIRECTORY, 1, 0, nul(...names)), 1);
  t.deepEqual(codes(r), ['oversized-reply']);
  t.is(r.children?.length, 300);
});

test('disconnect reports unanswered requests and abandoned transactions', (t) => {
  const s = new TraceSession();
  s.frame(1, C, f(T.TRANSACTION_START, 1, 0, nul('')), 0);
  s.frame(1, D, f(T.TRANSACTION_START, 1, 0, nul('3')), 1);
  s.frame(1, C, f(T.READ, 2, 3, nul('/pending')), 2);
  const out = s.disconnect(1, 10);
  t.is(out[0].kind, 'disconnect');
  t.deepEqual(codes(out[0]), ['unanswered-request']);
  t.regex(out[0].warnings[0].message, /READ \/pending/);
  t.is(out[1].tx?.event, 'abandoned');
  t.is(out[1].tx?.id, 3);
});

test('every request type decodes its fields', (t) => {
  const s = new TraceSession();
  const one = (type: number, payload: Buffer) => s.frame(1, C, f(type, 1, 0, payload), 0)[0];
  t.like(one(T.WRITE, Buffer.concat([nul('/v'), Buffer.from([0, 1, 0xff])])), { path: '/v', value: Buffer.from([0, 1, 0xff]) });
  t.like(one(T.SET_PERMS, nul('/p', 'n0', 'r5')), { path: '/p', perms: ['n0', 'r5'] });
  t.like(one(T.GET_DOMAIN_PATH, nul('3')), { domid: 3 });
  t.like(one(T.INTRODUCE, nul('4', '12345', '9')), { domid: 4, args: ['mfn 12345', 'port 9'] });
  t.like(one(T.SET_TARGET, nul('5', '6')), { domid: 5, args: ['target 6'] });
  t.like(one(T.DIRECTORY_PART, nul('/d', '100')), { path: '/d', args: ['100'] });
  t.like(one(T.CONTROL, nul('log', 'on')), { args: ['log', 'on'] });
  t.like(one(T.TRANSACTION_END, nul('F')), { result: 'abort' });
});

test('Xen 4.21-4.22 types: GET/SET_FEATURE, GET/SET_QUOTA, WATCH with a depth, per-domain @releaseDomain', (t) => {
  const s = new TraceSession();
  let id = 200;
  const pair = (type: number, req: Buffer, rep: Buffer) => {
    id++;
    const q = s.frame(1, C, f(type, id, 0, req), 0)[0];
    return [q, s.frame(1, D, f(type, id, 0, rep), 1)[0]];
  };
  let [q, r] = pair(T.GET_FEATURE, Buffer.alloc(0), nul('5'));
  t.like(q, { type: 'GET_FEATURE', typeNum: 23, warnings: [] });
  t.is(q.domid, undefined);
  t.like(r, { op: 'GET_FEATURE', result: '5 (RECONNECTION|WATCHDEPTH)', warnings: [] });
  [q, r] = pair(T.GET_FEATURE, nul('7'), nul('17'));
  t.like(q, { domid: 7 });
  t.like(r, { result: '17 (RECONNECTION|0x10)', domid: 7 });
  [q, r] = pair(T.SET_FEATURE, nul('7', '4'), nul('OK'));
  t.like(q, { type: 'SET_FEATURE', domid: 7, args: ['features 4 (WATCHDEPTH)'] });
  t.like(r, { result: 'OK' });
  [q, r] = pair(T.GET_QUOTA, Buffer.alloc(0), nul('nodes watches transactions node-size permissions'));
  t.like(r, { args: ['nodes', 'watches', 'transactions', 'node-size', 'permissions'], warnings: [] });
  [q, r] = pair(T.GET_QUOTA, nul('3', 'nodes'), nul('1000'));
  t.like(q, { domid: 3, args: ['nodes'] });
  t.like(r, { result: 'nodes = 1000', domid: 3 });
  [q, r] = pair(T.GET_QUOTA, nul('watches'), nul('128'));
  t.like(r, { result: 'watches = 128' });
  [q, r] = pair(T.SET_QUOTA, nul('3', 'nodes', '2000'), nul('OK'));
  t.like(q, { domid: 3, args: ['nodes = 2000'] });
  [q, r] = pair(T.SET_QUOTA, nul('nodes', '2000'), nul('EACCES'));
  t.like(q, { args: ['nodes = 2000'] });
  [q, r] = pair(T.GET_QUOTA, nul('nodes'), Buffer.concat([nul('ENOSYS')]));
  t.like(r, { result: undefined });
  t.is(formatHuman(q, { timeZone: 'utc' }).slice(16), '#1   -> GET_QUOTA            req=209 tx=0    nodes');
  [q, r] = pair(T.WATCH, nul('/w', 'tk', '1'), nul('OK'));
  t.like(q, { path: '/w', token: 'tk', depth: 1, watch: { event: 'register' } });
  t.like(r, { watch: { event: 'registered' } });
  t.regex(formatHuman(q, { timeZone: 'utc' }), /-> WATCH +req=210 tx=0 +\/w token tk depth 1 \[w\d+\]$/);
  t.like(JSON.parse(formatJson(q)), { depth: 1, token: 'tk' });
  [q, r] = pair(T.WATCH, nul('@releaseDomain/5', 'rel'), nul('OK'));
  t.deepEqual(q.warnings, [], '@releaseDomain/<domid> is a valid watch path');
  // Malformed: a quota name with a blank, a SET_FEATURE without its value.
  t.deepEqual(codes(s.frame(1, C, f(T.GET_QUOTA, 300, 0, nul('no des')), 0)[0]), ['malformed-payload']);
  t.deepEqual(codes(s.frame(1, C, f(T.SET_FEATURE, 301, 0, nul('7')), 0)[0]), ['malformed-payload']);
});

test('every reply type decodes its fields', (t) => {
  const s = new TraceSession();
  let id = 100;
  const pair = (type: number, req: Buffer, rep: Buffer) => {
    id++;
    s.frame(1, C, f(type, id, 0, req), 0);
    return s.frame(1, D, f(type, id, 0, rep), 1)[0];
  };
  t.like(pair(T.DIRECTORY, nul('/d'), nul('a', 'b')), { children: ['a', 'b'] });
  t.like(pair(T.DIRECTORY, nul('/d'), Buffer.alloc(0)), { children: [] });
  t.like(pair(T.GET_PERMS, nul('/d'), nul('n0', 'r1')), { perms: ['n0', 'r1'] });
  t.like(pair(T.GET_DOMAIN_PATH, nul('0'), nul('/local/domain/0')), { result: '/local/domain/0' });
  t.like(pair(T.IS_DOMAIN_INTRODUCED, nul('0'), nul('T')), { result: 'T' });
  t.like(pair(T.DIRECTORY_PART, nul('/d', '0'), Buffer.concat([nul('12', 'x', 'y'), Buffer.from([0])])), {
    children: ['x', 'y'],
    result: 'generation 12, last chunk',
  });
  t.like(pair(T.CONTROL, nul('help'), Buffer.from('commands: ...\0')), { value: Buffer.from('commands: ...\0') });
  t.like(pair(T.MKDIR, nul('/m'), nul('OK')), { result: 'OK', path: '/m' });
  const bad = pair(T.MKDIR, nul('/m'), nul('NOPE'));
  t.deepEqual(codes(bad), ['malformed-payload']);
});

/** Records without seq and times, to compare two decodings of the same traffic. */
function shape(rs: TraceRecord[]): unknown[] {
  return rs.map((r) => ({ ...r, seq: 0, tsUs: 0, requestSeq: r.requestSeq === undefined ? undefined : 1, latencyUs: undefined }));
}

test('the same records come out whatever the split of the byte stream (every offset)', (t) => {
  const conversation: Array<['client' | 'daemon', Buffer]> = [
    [C, wire(f(T.TRANSACTION_START, 1, 0, nul('')))],
    [D, wire(f(T.TRANSACTION_START, 1, 0, nul('9')))],
    [C, Buffer.concat([wire(f(T.WRITE, 2, 9, Buffer.concat([nul('/s/a'), Buffer.from('v\0\n')]))), wire(f(T.WATCH, 3, 0, nul('/s', 'k')))])],
    [D, Buffer.concat([wire(f(T.WRITE, 2, 9, nul('OK'))), wire(f(T.WATCH, 3, 0, nul('OK'))), wire(f(T.WATCH_EVENT, 0, 0, nul('/s', 'k')))])],
  ];
  const run = (split: number): TraceRecord[] => {
    const s = new TraceSession();
    const dec = { client: new FrameDecoder(), daemon: new FrameDecoder() };
    const out: TraceRecord[] = [];
    for (const [side, bytes] of conversation) {
      const cut = Math.min(split, bytes.length);
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        for (const fr of dec[side].push(part)) out.push(...s.frame(1, side, fr, 0));
      }
    }
    return out;
  };
  const whole = shape(run(Number.MAX_SAFE_INTEGER));
  t.is(whole.length, 7);
  const longest = Math.max(...conversation.map(([, b]) => b.length));
  for (let split = 0; split <= longest; split++) t.deepEqual(shape(run(split)), whole, `split at ${split}`);
});

test('random bytes never make the session throw', (t) => {
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const s = new TraceSession();
  let n = 0;
  for (let i = 0; i < 3000; i++) {
    const len = rnd() % 40;
    const payload = Buffer.alloc(len);
    for (let j = 0; j < len; j++) payload[j] = rnd() % 4 === 0 ? 0 : rnd() & 0xff;
    const side = rnd() % 2 === 0 ? C : D;
    n += s.frame(1 + (rnd() % 3), side, f(rnd() % 30, rnd() % 4, rnd() % 3, payload), i).length;
  }
  t.is(n, 3000);
});

test('with hidden ids (trace files) transactions still start and end', (t) => {
  const s = new TraceSession({ idsVisible: false, tsPrecision: 's' });
  s.frame(1, C, f(T.TRANSACTION_START, 0, 0, nul('')), 0);
  const [st] = s.frame(1, D, f(T.TRANSACTION_START, 0, 0, nul('4')), 0);
  t.deepEqual(st.tx, { id: 4, event: 'start' });
  t.is(st.reqId, null);
  t.is(st.latencyUs, undefined);
  s.frame(1, C, f(T.TRANSACTION_END, 0, 0, nul('T')), 0);
  const [end] = s.frame(1, D, f(T.TRANSACTION_END, 0, 0, nul('OK')), 0);
  t.deepEqual(end.tx, { id: 4, event: 'commit', startSeq: st.seq });
});
