/**
 * `xs-trace read`: C xenstored trace files (`xenstored -T FILE`), hand-written ones for the
 * corner cases, and one written by a real C xenstored while real clients ran through the
 * proxy: the file read back must show the same messages the proxy saw.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTraceFile, rebuildPayload } from '../../lib/trace/tracefile';
import { TraceRecord } from '../../lib/trace/record';
import { startDaemon } from '../harness/daemons';
import { listenXsTrace, parseJsonLines, runXsTrace, T, tmpDir } from './helpers';
import { ourClient, ourClientBigDirectory, pyxs, testXenstore, xenstoreUtils, xenstoreWatch } from './scenarios';

const SAMPLE = [
  '',
  '***',
  'CREATE connection 0x5600aa',
  'wrl: dom    0      1  msec      10000 credit       -9800 reserve          0 discard',
  'IN 0x5600aa 20260102 03:04:05 TRANSACTION_START ( )',
  'OUT 0x5600aa 20260102 03:04:05 TRANSACTION_START (12 )',
  'IN 0x5600aa 20260102 03:04:05 WRITE (/vm/a first line',
  'second) line)',
  'OUT 0x5600aa 20260102 03:04:05 WRITE (OK )',
  'IN 0x5600aa 20260102 03:04:06 TRANSACTION_END (T )',
  'DESTROY transaction 0x5600bb',
  'OUT 0x5600aa 20260102 03:04:06 TRANSACTION_END (OK )',
  'IN 0x5600aa 20260102 03:04:06 WATCH (/vm my token )',
  'CREATE watch 0x5600cc',
  'OUT 0x5600aa 20260102 03:04:06 WATCH (OK )',
  'OUT 0x5600aa 20260102 03:04:06 WATCH_EVENT (/vm my token )',
  'IN 0x5600aa 20260102 03:04:07 DIRECTORY (/vm )',
  'OUT 0x5600aa 20260102 03:04:07 DIRECTORY (a b )',
  'IN 0x5600aa 20260102 03:04:07 READ (/nope )',
  'OUT 0x5600aa 20260102 03:04:07 ERROR (ENOENT )',
  'IN 0x5600dd 20260102 03:04:07 **UNKNOWN** (0 )',
  'OUT 0x5600dd 20260102 03:04:07 ERROR (ENOSYS )',
  'something xenstored never writes',
  'DESTROY connection 0x5600aa',
  'IN 0x5600ee 20260102 03:04:08 READ (/cut',
].join('\n');

function messages(recs: TraceRecord[]): TraceRecord[] {
  return recs.filter((r) => r.kind === 'request' || r.kind === 'reply' || r.kind === 'event');
}

test('trace file: messages, pairing by order, transactions, watches, unknown lines', (t) => {
  const { records, stats } = readTraceFile(Buffer.from(SAMPLE, 'latin1'), { timeZone: 'utc' });
  t.like(stats, { messages: 16, unknownTypes: 1, objects: 4, logLines: 1, unparsed: 1 });
  const m = messages(records);
  t.is(m.length, 16);
  t.true(m.every((r) => r.reqId === null && r.txId === null && r.tsPrecision === 's' && r.latencyUs === undefined));
  t.is(m[0].tsUs, Date.UTC(2026, 0, 2, 3, 4, 5) * 1000);
  t.deepEqual(m[1].tx, { id: 12, event: 'start' });
  t.is(m[2].path, '/vm/a');
  t.deepEqual(m[2].value, Buffer.from('first line\nsecond) line'));
  t.is(m[3].requestSeq, m[2].seq);
  t.like(m[5], { kind: 'reply', op: 'TRANSACTION_END', result: 'OK' });
  t.like(m[5].tx, { id: 12, event: 'commit' });
  t.like(m[6], { type: 'WATCH', path: '/vm', token: 'my token' });
  t.like(m[8], { kind: 'event', path: '/vm', token: 'my token' });
  t.like(m[8].watch, { event: 'fire', path: '/vm' });
  t.deepEqual(m[10].children, ['a', 'b']);
  t.like(m[12], { kind: 'reply', type: 'ERROR', op: 'READ', error: 'ENOENT', path: '/nope' });
  t.is(m[13].type, '**UNKNOWN**');
  t.is(m[14].error, 'ENOSYS');
  t.deepEqual(m[15].warnings.map((w) => w.code), ['unparsed-line']);
  const unparsed = records.filter((r) => r.kind === 'warning');
  t.is(unparsed.length, 1);
  t.is(unparsed[0].text, 'something xenstored never writes');
  // Connections: numbered in order of appearance, closed by DESTROY.
  t.deepEqual([...new Set(m.map((r) => r.conn))], [1, 2, 3]);
  t.true(records.some((r) => r.kind === 'disconnect' && r.conn === 1));
});

test('trace file: log lines are shown only when asked', (t) => {
  const quiet = readTraceFile(Buffer.from(SAMPLE, 'latin1'));
  const loud = readTraceFile(Buffer.from(SAMPLE, 'latin1'), { logLines: true });
  t.is(loud.records.filter((r) => r.kind === 'note').length - quiet.records.filter((r) => r.kind === 'note').length, 1);
  t.true(loud.records.some((r) => r.text?.startsWith('wrl:')));
});

test('trace file payloads: spaces were NULs except inside values and tokens', (t) => {
  t.deepEqual(rebuildPayload(T.WRITE, false, Buffer.from('/a b c')), Buffer.from('/a\0b c'));
  t.deepEqual(rebuildPayload(T.READ, true, Buffer.from('x y')), Buffer.from('x y'));
  t.deepEqual(rebuildPayload(T.DIRECTORY, true, Buffer.from('a b ')), Buffer.from('a\0b\0'));
  t.deepEqual(rebuildPayload(T.WATCH_EVENT, true, Buffer.from('/p tok en ')), Buffer.from('/p\0tok en\0'));
  t.deepEqual(rebuildPayload(T.SET_PERMS, false, Buffer.from('/p n0 r1 ')), Buffer.from('/p\0n0\0r1\0'));
});

test('xs-trace read: a missing file is a typed error', async (t) => {
  const r = await runXsTrace(['read', '--json', '/nonexistent/trace']);
  t.is(r.code, 1);
  t.is(r.stderr, '');
  const e = JSON.parse(r.stdout) as { ok: boolean; error: { kind: string; code: string; path: string } };
  t.like(e.error, { kind: 'trace', code: 'ENOENT', path: '/nonexistent/trace' });
});

/** What both views must agree on, for one message. NULs of values are spaces in the file. */
function signature(r: Record<string, any>): string {
  const op = r.kind === 'reply' ? r.op : r.type;
  const value = typeof r.value === 'string' ? r.value.replace(/\\0/g, ' ') : '';
  return [r.kind, op, r.path ?? '', r.token ?? '', r.error ?? '', value, (r.children ?? []).join(',')].join('|');
}

/**
 * Per connection, what the client sent and what the daemon sent, each in order. The two
 * directions are kept apart: the proxy sees pipelined requests when they are sent, the
 * daemon logs each one when it processes it, between its replies.
 */
function byConnection(recs: Array<Record<string, any>>): Array<{ sent: string[]; received: string[] }> {
  const m = new Map<number, { sent: string[]; received: string[] }>();
  for (const r of recs) {
    if (r.kind !== 'request' && r.kind !== 'reply' && r.kind !== 'event') continue;
    if (!m.has(r.conn)) m.set(r.conn, { sent: [], received: [] });
    const c = m.get(r.conn)!;
    (r.kind === 'request' ? c.sent : c.received).push(signature(r));
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

test('a trace file written by C xenstored reads back with every message recognised, as the proxy saw it', async (t) => {
  const daemon = await startDaemon('cxenstored', { trace: true });
  const dir = tmpDir('xs-trace-file-');
  try {
    const proxyTrace = path.join(dir, 'proxy.jsonl');
    const proxy = await listenXsTrace(path.join(dir, 'proxy'), ['--upstream', daemon.socketPath, '--json', '-o', proxyTrace]);
    const s = proxy.socketPath;
    for (const o of [
      await xenstoreUtils(s, '/xs-trace-file/utils'),
      await pyxs(s, '/xs-trace-file/pyxs'),
      await ourClient(s, '/xs-trace-file/ours'),
      await ourClientBigDirectory(s, '/xs-trace-file/big'),
      await xenstoreWatch(s, '/xs-trace-file/watch'),
      await testXenstore(s),
    ]) {
      t.true(o.ok, o.detail);
    }
    const stopped = await proxy.stop();
    t.is(stopped.code, 0, stopped.stderr);

    const file = daemon.tracePath!;
    const text = fs.readFileSync(file, 'latin1');
    const ioLines = text.split('\n').filter((l) => /^(IN|OUT) (0x[0-9a-f]+|\(nil\)) \d{8} /.test(l)).length;
    t.true(ioLines > 500, `${ioLines} IN/OUT lines`);

    const r = await runXsTrace(['read', '--json', file]);
    t.is(r.code, 0, r.stderr);
    const recs = parseJsonLines(r.stdout);
    const msgs = recs.filter((x) => x.kind === 'request' || x.kind === 'reply' || x.kind === 'event');
    t.is(msgs.length, ioLines, 'one record per IN/OUT line');
    t.deepEqual(msgs.filter((x) => /UNKNOWN/.test(x.type)), [], 'every type recognised');
    t.deepEqual(recs.flatMap((x) => x.warnings), [], 'no warning: every line understood, every reply paired');
    t.is(msgs.filter((x) => x.kind === 'reply').length, msgs.filter((x) => x.kind === 'request').length);
    const types = new Set(msgs.map((x) => x.type));
    for (const ty of ['READ', 'WRITE', 'DIRECTORY', 'DIRECTORY_PART', 'GET_PERMS', 'SET_PERMS', 'MKDIR', 'RM', 'WATCH', 'UNWATCH', 'WATCH_EVENT', 'TRANSACTION_START', 'TRANSACTION_END', 'ERROR', 'GET_DOMAIN_PATH', 'IS_DOMAIN_INTRODUCED']) {
      t.true(types.has(ty), `${ty} in the file`);
    }
    const txEvents = new Set(msgs.filter((x) => x.tx).map((x) => x.tx.event));
    for (const e of ['start', 'commit', 'abort', 'eagain']) t.true(txEvents.has(e), `transaction ${e}`);

    // The same conversations, connection by connection. The file also holds the harness's
    // start-up probe (its first connection with traffic), made before the proxy existed.
    const fromFile = byConnection(recs).slice(1);
    const fromProxy = byConnection(parseJsonLines(fs.readFileSync(proxyTrace, 'utf8')));
    t.is(fromFile.length, fromProxy.length);
    for (let i = 0; i < fromProxy.length; i++) t.deepEqual(fromFile[i], fromProxy[i], `connection ${i + 1}`);

    const human = await runXsTrace(['read', file]);
    t.is(human.code, 0);
    t.is(human.stdout.split('\n').filter((l) => / (->|<-|<~) /.test(l)).length, ioLines);
  } finally {
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
