/**
 * `xs-trace read` of trace files written by the real C xenstored of each release (`-T FILE`):
 * 4.17's plain `IN/OUT <ptr> DATE TIME TYPE (...)` lines and 4.20's `io: IN <ptr> (d0) ...`,
 * `io: OUT(START)`/`io: OUT(END)` (every reply logged twice) and `obj: CREATE ...` lines.
 *
 * The golden session (golden-client.js, fixed frames) runs straight against a harness daemon
 * started with `trace`; its file, with pointers and times normalised and the write-rate-limit lines
 * dropped, must equal the checked-in fixture (fixtures/trace/cxenstored-<release>-T.log), so
 * the fixture stays what that daemon really writes. The fixture is then read back and must decode
 * to the checked-in records (…-T.jsonl). XS_TRACE_UPDATE_GOLDEN=1 rewrites both.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { toJson } from '../../lib/trace/format';
import { readTraceFile } from '../../lib/trace/tracefile';
import { startDaemon } from '../harness/daemons';
import { XEN_RELEASES, type XenRelease } from '../harness/releases';
import { FIXTURES, parseJsonLines, runXsTrace } from './helpers';

const CLIENT = path.join(__dirname, 'golden-client.js');
const update = process.env.XS_TRACE_UPDATE_GOLDEN === '1';
const logFixture = (r: XenRelease): string => path.join(FIXTURES, `cxenstored-${r}-T.log`);
const jsonFixture = (r: XenRelease): string => path.join(FIXTURES, `cxenstored-${r}-T.jsonl`);

/**
 * What varies from run to run in a trace file: object pointers (numbered by first appearance,
 * so a reused pointer stays one), the second-resolution time, and 4.17's `wrl:` lines (dropped:
 * the write-rate limiter logs its credit as time passes, so their number and figures vary).
 */
export function normaliseLog(text: string): string {
  const ptrs = new Map<string, string>();
  return text
    .split('\n')
    .filter((l) => !l.startsWith('wrl: '))
    .join('\n')
    .replace(/0x[0-9a-f]{6,}/g, (p) => {
      if (!ptrs.has(p)) ptrs.set(p, `0x5600${(0xa0 + ptrs.size).toString(16)}`);
      return ptrs.get(p)!;
    })
    .replace(/\b\d{8} \d\d:\d\d:\d\d\b/g, '20260102 03:04:05');
}

/** A real daemon of `release`, its trace file, after the golden session ran against it. */
async function record(release: XenRelease): Promise<string> {
  const daemon = await startDaemon('cxenstored', { trace: true, release });
  try {
    await promisify(execFile)(process.execPath, [CLIENT], { env: { ...process.env, XENSTORED_PATH: daemon.socketPath } });
    return fs.readFileSync(daemon.tracePath!, 'latin1');
  } finally {
    await daemon.stop();
  }
}

for (const release of XEN_RELEASES) {
  test(`C xenstored ${release} -T: the golden session's trace file is the fixture`, async (t) => {
    const got = normaliseLog(await record(release));
    if (update) fs.writeFileSync(logFixture(release), got, 'latin1');
    t.is(got, fs.readFileSync(logFixture(release), 'latin1'));
    if (release === '4.17') t.regex(got, /^IN 0x5600[0-9a-f]+ 20260102 03:04:05 WRITE \(/m);
    else {
      t.regex(got, /^io: IN 0x5600[0-9a-f]+ \(d0\) 20260102 03:04:05 WRITE \(/m);
      t.regex(got, /^io: OUT\(START\) /m);
      t.regex(got, /^obj: CREATE connection /m);
    }
  });

  test(`C xenstored ${release} -T: the fixture decodes to the golden records, every line understood`, async (t) => {
    const file = logFixture(release);
    const r = await runXsTrace(['read', '--json', '--utc', file]);
    t.is(r.code, 0, r.stderr);
    if (update) fs.writeFileSync(jsonFixture(release), r.stdout);
    t.deepEqual(parseJsonLines(r.stdout), parseJsonLines(fs.readFileSync(jsonFixture(release), 'utf8')));

    const text = fs.readFileSync(file);
    const { records, stats } = readTraceFile(text, { timeZone: 'utc' });
    const lines = text.toString('latin1').split('\n');
    // The session's own oddities are all that is flagged: types C logs as **UNKNOWN** (23-26 and
    // a made-up one) and its malformed paths; no line left over, no reply unpaired.
    const codes = records.flatMap((x) => x.warnings.map((w) => w.code));
    t.deepEqual([...new Set(codes)].sort(), ['malformed-path', 'unknown-type']);
    t.is(codes.filter((c) => c === 'unknown-type').length, lines.filter((l) => /^(io: )?IN .* \*\*UNKNOWN\*\* \(/.test(l)).length);
    t.is(stats.unparsed, 0);
    const ins = lines.filter((l) => /^(io: )?IN /.test(l)).length;
    // 4.20 logs a reply when it begins (OUT(START)) and when it is written (OUT(END)): one record.
    const outs = lines.filter((l) => (release === '4.17' ? /^OUT / : /^io: OUT(\(END\))? /).test(l)).length;
    const json = records.map((x) => toJson(x) as Record<string, any>);
    t.is(json.filter((x) => x.kind === 'request').length, ins, 'one request per IN line');
    t.is(json.filter((x) => x.kind === 'reply' || x.kind === 'event').length, outs, 'one reply or event per written OUT line');
    t.true(json.every((x) => x.time === '2026-01-02T03:04:05.000000Z'), 'every record at the log\'s time, those before its first message too');
    if (release !== '4.17') t.true(json.filter((x) => x.kind === 'request').every((x) => x.connDomid === 0), '4.20 names the domain on every line');
  });
}

test('the golden session reads the same from 4.17\'s and 4.20\'s trace files, message by message', (t) => {
  const conversation = (release: XenRelease): string[] =>
    readTraceFile(fs.readFileSync(logFixture(release)), { timeZone: 'utc' }).records
      .map((x) => toJson(x) as Record<string, any>)
      .filter((x) => x.kind === 'request' || x.kind === 'reply' || x.kind === 'event')
      .map((x) => [x.kind, x.type, x.path ?? '', x.value ?? '', x.error ?? '', (x.children ?? []).join(','), x.token ?? ''].join('|'));
  const [a, b] = [conversation('4.17'), conversation('4.20')];
  t.true(a.length > 50, `${a.length} messages`);
  t.deepEqual(b, a);
});
