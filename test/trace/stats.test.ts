/**
 * `--stats`: per type and per path prefix counts of what was printed (requests, events, errors
 * by name, latency median and p99 where the source has them, bytes), at the end and every
 * --interval; in text and JSON; the same totals as the requests printed. Against a real C
 * xenstored through the proxy, and on a C xenstored trace file.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '../../xenstore-wire/client';
import { MAX_PREFIXES, TraceStats, pathPrefix } from '../../lib/trace/stats';
import { TraceRecord } from '../../lib/trace/record';
import { RunningDaemon, startDaemon } from '../harness/daemons';
import { listenXsTrace, parseJsonLines, runXsTrace, tmpDir } from './helpers';

let daemon: RunningDaemon;
let dir: string;

test.before(async () => {
  daemon = await startDaemon('cxenstored', { trace: true });
  dir = tmpDir('xs-trace-stats-');
});

test.after.always(async () => {
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// The tools' own complaints go to /dev/null: the trace shares their stderr.
const SCRIPT = 'exec 2>/dev/null; xenstore-write /stats/a 1 /stats/b 22 && xenstore-read /stats/a && xenstore-read /stats/b && xenstore-ls /stats; xenstore-read /stats/missing; xenstore-read /other/missing; true';

test.serial('run mode --stats --json: totals are the requests printed; errors by name; latency and bytes per type and prefix', async (t) => {
  const r = await runXsTrace(['--json', '--stats', '--upstream', daemon.socketPath, '--', 'sh', '-c', SCRIPT]);
  t.is(r.code, 0, r.stderr);
  const recs = parseJsonLines(r.stderr);
  const stats = recs.filter((x) => x.kind === 'stats');
  t.is(stats.length, 1);
  const s = stats[0];
  const printed = recs.filter((x) => x.kind !== 'stats');
  const requests = printed.filter((x) => x.kind === 'request');
  const replies = printed.filter((x) => x.kind === 'reply');
  t.is(s.totals.requests, requests.length);
  t.deepEqual(s.totals.errors, { ENOENT: 2 });
  t.is(s.totals.bytesIn, requests.reduce((n, x) => n + x.len, 0));
  t.is(s.totals.bytesOut, replies.reduce((n, x) => n + x.len, 0));
  t.deepEqual(s.source, { latency: true, bytes: true });
  const read = s.byType.find((x: { key: string }) => x.key === 'READ');
  t.is(read.requests, requests.filter((x) => x.type === 'READ').length);
  t.deepEqual(read.errors, { ENOENT: 2 });
  t.is(read.latency.replies, read.requests);
  t.true(read.latency.medianUs > 0 && read.latency.p99Us >= read.latency.medianUs);
  const lat = replies.filter((x) => x.op === 'READ').map((x) => x.latencyUs).sort((a, b) => a - b);
  t.is(read.latency.medianUs, lat[Math.ceil(lat.length / 2) - 1], 'exact median');
  const prefixes = Object.fromEntries(s.byPath.map((x: { key: string; requests: number }) => [x.key, x.requests]));
  t.is(prefixes['/stats/missing'], 1);
  t.is(prefixes['/other/missing'], 1);
  t.is(prefixes['(no path)'], requests.filter((x) => x.path === undefined).length);
  t.is(s.byPath.reduce((n: number, x: { requests: number }) => n + x.requests, 0), requests.length);
});

test.serial('--stats text tables, --quiet prints only them, --path filters what is counted', async (t) => {
  const r = await runXsTrace(['--stats', '--quiet', '--path', '/stats', '--upstream', daemon.socketPath, '--', 'sh', '-c', SCRIPT]);
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stderr, /-> READ/);
  t.regex(r.stderr, /^xs-trace stats \(whole trace over [\d.]+m?s\): \d+ requests, 0 watch events, 1 errors$/m);
  t.regex(r.stderr, /│ type +│ requests │ events │ errors +│ median +│ p99 +│ bytes in │ bytes out │/);
  t.regex(r.stderr, /│ READ +│ \d+ +│ 0 +│ ENOENT 1 +│/);
  t.regex(r.stderr, /│ path prefix +│/);
  t.regex(r.stderr, /│ \/stats\/missing +│ 1 +│/);
  t.notRegex(r.stderr, /\/other/, 'only what passed --path is counted');
  const bad = await runXsTrace(['--quiet', '--upstream', daemon.socketPath, '--', 'true']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--quiet goes with --stats/);
});

test.serial('--interval: a table per interval while tracing (listen mode), then the whole run', async (t) => {
  const proxy = await listenXsTrace(path.join(dir, 'p.sock'), ['--upstream', daemon.socketPath, '--json', '--stats', '--interval', '0.3', '--quiet']);
  const xs = await connect({ path: proxy.socketPath });
  for (let i = 0; i < 20; i++) {
    await xs.write(`/interval/${i}`, 'x');
    await new Promise((r) => setTimeout(r, 50));
  }
  await xs.close();
  await new Promise((r) => setTimeout(r, 400));
  const r = await proxy.stop();
  const tables = parseJsonLines(r.stdout);
  t.true(tables.every((x) => x.kind === 'stats'), 'quiet: tables only');
  const intervals = tables.filter((x) => x.scope === 'interval');
  const total = tables.filter((x) => x.scope === 'total');
  t.true(intervals.length >= 2, `${intervals.length} interval tables`);
  t.is(total.length, 1);
  t.is(total[0].totals.requests, 20);
  t.is(intervals.reduce((n, x) => n + x.totals.requests, 0), 20, 'the intervals add up to the whole');
});

test.serial('read --stats on a C xenstored trace file: no latency column (whole seconds), same totals', async (t) => {
  const xs = await connect({ path: daemon.socketPath });
  await xs.write('/stats-file/a', 'v');
  await xs.read('/stats-file/a');
  await xs.close();
  const r = await runXsTrace(['read', '--json', '--stats', daemon.tracePath!]);
  t.is(r.code, 0, r.stderr);
  const recs = parseJsonLines(r.stdout);
  const s = recs.pop()!;
  t.like(s, { kind: 'stats', scope: 'total', source: { latency: false, bytes: true } });
  t.is(s.totals.requests, recs.filter((x) => x.kind === 'request').length);
  t.true(s.byType.every((x: { latency?: unknown }) => x.latency === undefined));
  const bad = await runXsTrace(['read', '--stats', '--interval', '1', daemon.tracePath!]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--interval is for live tracing/);
});

test('stats stay bounded: at most MAX_PREFIXES prefixes, the rest under (other)', (t) => {
  const s = new TraceStats({ pathDepth: 2 });
  let seq = 0;
  const rec = (p: string): TraceRecord => ({ seq: ++seq, tsUs: seq, conn: 1, kind: 'request', type: 'READ', path: p, len: p.length + 1, warnings: [] });
  for (let i = 0; i < 3 * MAX_PREFIXES; i++) s.add(rec(`/p${i}/x`));
  const snap = s.snapshot('total');
  t.is(snap.byPath.length, MAX_PREFIXES + 1);
  t.is(snap.byPath.find((x) => x.key === '(other)')?.requests, 2 * MAX_PREFIXES);
  t.is(snap.totals.requests, 3 * MAX_PREFIXES);
  t.is(pathPrefix('/local/domain/5/device/vif/0', 3), '/local/domain/5');
  t.is(pathPrefix('device/vif/0/state', 2), 'device/vif');
  t.is(pathPrefix('@releaseDomain', 3), '@releaseDomain');
  t.is(pathPrefix('/', 3), '/');
  t.is(pathPrefix(undefined, 3), '(no path)');
});
