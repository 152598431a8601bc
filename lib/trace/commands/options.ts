/**
 * Options shared by every xs-trace mode (filters and output), declared and validated in one
 * place.
 */
import { Command, Option } from 'commander';
import { quoteInput } from '../../elide';
import { usageError } from '../errors';
import { TraceFilter, parseTypeName } from '../filter';
import { DOMID_FIRST_RESERVED, isDomid } from '../../vocabulary';
import { Sink, TraceWriter, WriterOptions } from '../output';
import { TraceRecord } from '../record';
import { TraceStats, formatStats } from '../stats';

export interface CommonOptions {
  json?: boolean;
  color?: boolean;
  output?: string;
  path?: string[];
  type?: string[];
  conn?: string[];
  tx?: string[];
  domain?: string[];
  maxValue?: string;
  utc?: boolean;
  stats?: boolean;
  interval?: string;
  quiet?: boolean;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** Adds the filter and output options to `cmd`. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'one JSON object per line instead of aligned text')
    .option('--color', 'colour the text output (default: when writing to a terminal, unless NO_COLOR is set)')
    .option('--no-color', 'never colour the output')
    .option('-o, --output <file>', 'write the trace to FILE')
    .option('--path <prefix>', 'only messages on this path or below it (repeatable)', collect)
    .option('--type <types>', 'only these message types, e.g. READ,WRITE (repeatable)', collect)
    .option('--conn <n>', 'only connection N (repeatable)', collect)
    .option('--tx <id>', 'only transaction ID (repeatable)', collect)
    .option('--domain <domid>', 'only connections of domain DOMID, where the source tells it (attach, read; repeatable)', collect)
    .addOption(new Option('--max-value <bytes>', 'value bytes shown before eliding; 0 shows all (default: 64 in text, all in JSON)'))
    .option('--utc', 'show times in UTC instead of local time')
    .option('--stats', 'at the end, a table per message type and per path prefix: requests, events, errors by name, latency median and p99 (proxy), bytes')
    .option('--interval <seconds>', 'with --stats: also a table of each interval while tracing (live modes)')
    .option('-q, --quiet', 'with --stats: print the tables only, not each message');
}

function positiveInts(list: string[] | undefined, option: string, allowZero = false): number[] | undefined {
  if (!list?.length) return undefined;
  return list
    .flatMap((s) => s.split(','))
    .map((s) => {
      const t = s.trim();
      if (!/^\d+$/.test(t) || (!allowZero && Number(t) === 0) || Number(t) > 0xffffffff) {
        throw usageError(`${option} expects ${allowZero ? 'a non-negative' : 'a positive'} integer, got ${quoteInput(s)}`, option);
      }
      return Number(t);
    });
}

export function filterFrom(o: CommonOptions): TraceFilter {
  const f: TraceFilter = {};
  if (o.path?.length) {
    for (const p of o.path) {
      if (p === '') throw usageError('--path expects a non-empty path prefix', '--path');
    }
    f.paths = o.path;
  }
  if (o.type?.length) f.types = o.type.flatMap((s) => s.split(',')).filter((s) => s.trim() !== '').map(parseTypeName);
  const conns = positiveInts(o.conn, '--conn');
  if (conns) f.conns = conns;
  const txs = positiveInts(o.tx, '--tx');
  if (txs) f.txs = txs;
  const domids = positiveInts(o.domain, '--domain', true);
  if (domids) {
    for (const d of domids) if (!isDomid(d)) throw usageError(`--domain expects a domid 0..${DOMID_FIRST_RESERVED - 1}, got ${d}`, '--domain');
    f.domids = domids;
  }
  return f;
}

/** Batching of the live modes: decoding (ProxyOptions.decodeDelayMs) and output (WriterOptions.batchMs). */
export const LIVE_BATCH_MS = 5;

/** A writer with the --stats tables: `close()` prints the whole run's table. */
export interface TraceOutput {
  write(r: TraceRecord): void;
  /** Stops the interval tables, prints the final one (with --stats), flushes. */
  close(): Promise<void>;
  writer: TraceWriter;
  /** The whole run's counts, with --stats. */
  stats: TraceStats | null;
}

/**
 * The writer and, with --stats, the counting of what it prints: the whole run's table at the
 * end, and with --interval one per interval. `caps`: which columns the source can fill.
 */
export function outputFrom(o: CommonOptions, fallback: NodeJS.WriteStream, batchMs: number, caps: { latency: boolean; bytes: boolean }, live: boolean): TraceOutput {
  if (!o.stats && (o.interval !== undefined || o.quiet)) throw usageError(`${o.interval !== undefined ? '--interval' : '--quiet'} goes with --stats`, o.interval !== undefined ? '--interval' : '--quiet');
  let seconds: number | undefined;
  if (o.interval !== undefined) {
    if (!live) throw usageError('--interval is for live tracing (run, --listen, attach); a file is counted at the end', '--interval');
    seconds = Number(o.interval);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw usageError(`--interval expects seconds (0 < s <= 86400), got ${quoteInput(o.interval)}`, '--interval');
  }
  const total = o.stats ? new TraceStats(caps) : null;
  const part = o.stats && seconds !== undefined ? new TraceStats(caps) : null;
  const writer = writerFrom(o, fallback, batchMs, {
    onPassed: (r) => {
      total?.add(r);
      part?.add(r);
    },
    quiet: o.quiet ?? false,
  });
  const print = (s: TraceStats, scope: 'interval' | 'total'): void => {
    const snap = s.snapshot(scope);
    writer.writeText(o.json ? JSON.stringify(snap) : formatStats(snap));
  };
  let timer: NodeJS.Timeout | undefined;
  if (part && seconds !== undefined) {
    timer = setInterval(() => {
      writer.flush();
      print(part, 'interval');
      part.reset();
    }, seconds * 1000);
    timer.unref();
  }
  return {
    write: (r) => writer.write(r),
    writer,
    stats: total,
    async close() {
      if (timer) clearInterval(timer);
      writer.flush();
      if (total) print(total, 'total');
      await writer.close();
    },
  };
}

/** Builds the writer: `fallback` is the stream used without --output. */
export function writerFrom(o: CommonOptions, fallback: NodeJS.WriteStream, batchMs = 0, extra: Pick<WriterOptions, 'onPassed' | 'quiet'> = {}): TraceWriter {
  const filter = filterFrom(o);
  let maxValue: number | undefined;
  if (o.maxValue !== undefined) {
    const [n] = positiveInts([o.maxValue], '--max-value', true) ?? [0];
    maxValue = n;
  }
  const sink: Sink = o.output !== undefined ? { kind: 'file', path: o.output } : { kind: 'stream', stream: fallback };
  const tty = o.output === undefined && fallback.isTTY === true;
  const color = o.json ? false : o.color ?? (tty && !process.env.NO_COLOR);
  const w: WriterOptions = { json: o.json ?? false, color, filter, timeZone: o.utc ? 'utc' : 'local', batchMs, ...extra };
  if (maxValue !== undefined) w.maxValue = maxValue;
  return new TraceWriter(sink, w);
}
