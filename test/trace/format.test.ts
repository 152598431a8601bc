/**
 * Value escaping, human and JSON formatting, and filters: pure functions on records.
 */
import test from 'ava';
import { renderValue, unescapeValue, quoteValue, renderName } from '../../lib/trace/escape';
import { formatHuman, formatJson, formatClock, isoTime, formatDuration } from '../../lib/trace/format';
import { matches, parseTypeName, pathMatches } from '../../lib/trace/filter';
import { TraceSession } from '../../lib/trace/session';
import { TraceRecord } from '../../lib/trace/record';
import { T, f, nul } from './helpers';

test('values: printable kept, the rest escaped C-style, reversible', (t) => {
  const v = Buffer.from([0x61, 0x00, 0x0a, 0x09, 0x0d, 0x22, 0x5c, 0x7f, 0xff, 0x20]);
  const r = renderValue(v, 0);
  t.is(r.text, 'a\\0\\n\\t\\r\\"\\\\\\x7f\\xff ');
  t.is(r.elided, 0);
  t.deepEqual(unescapeValue(r.text), v);
});

test('values: random bytes round-trip through escaping', (t) => {
  let seed = 7;
  for (let i = 0; i < 200; i++) {
    const len = i % 50;
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      b[j] = seed & 0xff;
    }
    t.deepEqual(unescapeValue(renderValue(b, 0).text), b);
  }
});

test('values: long ones are elided with a byte count', (t) => {
  const r = renderValue(Buffer.alloc(100, 0x78), 10);
  t.is(r.text, 'x'.repeat(10));
  t.is(r.elided, 90);
  t.is(quoteValue(r), `"xxxxxxxxxx"...(+90 of 100 bytes)`);
  t.is(quoteValue(renderValue(Buffer.from('short'), 10)), '"short"');
});

test('names: plain paths as is, odd bytes quoted and escaped', (t) => {
  t.is(renderName('/local/domain/0'), '/local/domain/0');
  t.is(renderName('a b'), '"a b"');
  t.is(renderName('é'), '"\\xc3\\xa9"');
});

test('clock, ISO time and durations', (t) => {
  const us = Date.UTC(2026, 0, 2, 3, 4, 5) * 1000 + 42;
  t.is(formatClock(us, 'us', 'utc'), '03:04:05.000042');
  t.is(formatClock(us, 's', 'utc'), '03:04:05       ');
  t.is(isoTime(us), '2026-01-02T03:04:05.000042Z');
  t.is(formatDuration(87), '87us');
  t.is(formatDuration(1234), '1.234ms');
  t.is(formatDuration(2_500_000), '2.500s');
});

function session(): TraceRecord[] {
  const s = new TraceSession();
  const base = Date.UTC(2026, 0, 1, 12, 0, 0) * 1000;
  const out: TraceRecord[] = [s.connect(1, base)];
  const push = (side: 'client' | 'daemon', fr: ReturnType<typeof f>, dt: number) => out.push(...s.frame(1, side, fr, base + dt));
  push('client', f(T.TRANSACTION_START, 1, 0, nul('')), 0);
  push('daemon', f(T.TRANSACTION_START, 1, 0, nul('5')), 120);
  push('client', f(T.WRITE, 2, 5, Buffer.concat([nul('/vm/a'), Buffer.from('x\0y')])), 200);
  push('daemon', f(T.WRITE, 2, 5, nul('OK')), 260);
  push('client', f(T.TRANSACTION_END, 3, 5, nul('T')), 300);
  push('daemon', f(T.ERROR, 3, 5, nul('EAGAIN')), 1500);
  push('client', f(T.WATCH, 4, 0, nul('/vm', 'tk')), 2000);
  push('daemon', f(T.WATCH, 4, 0, nul('OK')), 2050);
  push('daemon', f(T.WATCH_EVENT, 0, 0, nul('/vm', 'tk')), 2060);
  push('client', f(T.DIRECTORY, 5, 0, nul('/vm')), 2100);
  push('daemon', f(T.DIRECTORY, 5, 0, nul('a', 'b', 'c')), 2150);
  push('client', f(T.READ, 6, 0, nul('/bad//path')), 2200);
  push('daemon', f(T.ERROR, 6, 0, nul('EINVAL')), 2210);
  return out;
}

test('human lines: aligned columns, decoded fields, latency, transaction and watch context', (t) => {
  const lines = session().map((r) => formatHuman(r, { timeZone: 'utc' }));
  t.deepEqual(lines, [
    '12:00:00.000000 #1   -- connected',
    '12:00:00.000000 #1   -> TRANSACTION_START    req=1 tx=0',
    '12:00:00.000120 #1   <- TRANSACTION_START    req=1 tx=0      -> tx 5 started (120us)',
    '12:00:00.000200 #1   -> WRITE                req=2 tx=5      /vm/a = "x\\0y" [tx 5 op 1]',
    '12:00:00.000260 #1   <- WRITE                req=2 tx=5      /vm/a OK [tx 5 op 1] (60us)',
    '12:00:00.000300 #1   -> TRANSACTION_END      req=3 tx=5      commit [tx 5, 1 op]',
    '12:00:00.001500 #1   <- TRANSACTION_END      req=3 tx=5      ERROR EAGAIN [tx 5 conflicted (EAGAIN): 1 op, 1.380ms, must be redone] (1.200ms)',
    '12:00:00.002000 #1   -> WATCH                req=4 tx=0      /vm token tk [w1]',
    '12:00:00.002050 #1   <- WATCH                req=4 tx=0      /vm token tk OK [w1 registered] (50us)',
    '12:00:00.002060 #1   <~ WATCH_EVENT          req=0 tx=0      /vm token tk [w1 on /vm, registered #8]',
    '12:00:00.002100 #1   -> DIRECTORY            req=5 tx=0      /vm',
    '12:00:00.002150 #1   <- DIRECTORY            req=5 tx=0      /vm -> 3 children: a b c (50us)',
    '12:00:00.002200 #1   -> READ                 req=6 tx=0      /bad//path\n' +
      '                ! malformed-path: path "/bad//path": contains //',
    '12:00:00.002210 #1   <- READ                 req=6 tx=0      /bad//path ERROR EINVAL (10us)',
  ]);
});

test('colour only when asked', (t) => {
  const r = session()[2];
  t.notRegex(formatHuman(r, { color: false }), /\x1b\[/);
  t.regex(formatHuman(r, { color: true }), /\x1b\[32m<-/);
});

test('JSON lines: one object per record, values escaped and whole', (t) => {
  const recs = session();
  const w = JSON.parse(formatJson(recs[3])) as Record<string, unknown>;
  t.deepEqual(w, {
    seq: 4,
    time: '2026-01-01T12:00:00.000200Z',
    ts: Date.UTC(2026, 0, 1, 12, 0, 0) * 1000 + 200,
    conn: 1,
    kind: 'request',
    type: 'WRITE',
    typeNum: 11,
    reqId: 2,
    txId: 5,
    len: 9,
    path: '/vm/a',
    value: 'x\\0y',
    valueBytes: 3,
    tx: { id: 5, event: 'op', opIndex: 1 },
    warnings: [],
  });
  const big = new TraceSession().frame(1, 'client', f(T.WRITE, 1, 0, Buffer.concat([nul('/b'), Buffer.alloc(500, 0x41)])), 0)[0];
  t.is((JSON.parse(formatJson(big)) as { value: string }).value.length, 500);
  t.is((JSON.parse(formatJson(big, { maxValue: 8 })) as { valueElided: number }).valueElided, 492);
});

test('filters: path prefix on whole components, type (request or reply), connection, transaction', (t) => {
  const recs = session();
  const pick = (flt: Parameters<typeof matches>[0]) => recs.filter((r) => matches(flt, r)).map((r) => r.seq);
  t.true(pathMatches('/vm', '/vm/a'));
  t.true(pathMatches('/vm', '/vm'));
  t.false(pathMatches('/vm', '/vmx'));
  t.true(pathMatches('/', '/anything'));
  t.deepEqual(pick({ paths: ['/vm/a'] }), [4, 5]);
  t.deepEqual(pick({ types: ['TRANSACTION_END'] }), [6, 7]);
  t.deepEqual(pick({ types: ['ERROR'] }), [7, 14]);
  t.deepEqual(pick({ txs: [5] }), [3, 4, 5, 6, 7]);
  t.deepEqual(pick({ conns: [2] }), []);
  t.is(pick({ conns: [1] }).length, recs.length);
  t.deepEqual(pick({ paths: ['/vm'], types: ['WATCH_EVENT'] }), [10]);
});

test('type names: xs_wire.h names, with or without XS_, any case, or numbers', (t) => {
  t.is(parseTypeName('read'), 'READ');
  t.is(parseTypeName('XS_TRANSACTION_START'), 'TRANSACTION_START');
  t.is(parseTypeName('11'), 'WRITE');
  const e = t.throws(() => parseTypeName('FROB')) as unknown as { kind: string; code: string; option: string };
  t.is(e.kind, 'trace');
  t.is(e.code, 'EINVAL');
  t.is(e.option, '--type');
  t.throws(() => parseTypeName('20'));
});
