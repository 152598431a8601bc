/**
 * Options shared by every xs-trace mode (filters and output), declared and validated in one
 * place.
 */
import { Command, Option } from 'commander';
import { quoteInput } from '../../elide';
import { usageError } from '../errors';
import { TraceFilter, parseTypeName } from '../filter';
import { Sink, TraceWriter, WriterOptions } from '../output';

export interface CommonOptions {
  json?: boolean;
  color?: boolean;
  output?: string;
  path?: string[];
  type?: string[];
  conn?: string[];
  tx?: string[];
  maxValue?: string;
  utc?: boolean;
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
    .addOption(new Option('--max-value <bytes>', 'value bytes shown before eliding; 0 shows all (default: 64 in text, all in JSON)'))
    .option('--utc', 'show times in UTC instead of local time');
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
  return f;
}

/** Batching of the live modes: decoding (ProxyOptions.decodeDelayMs) and output (WriterOptions.batchMs). */
export const LIVE_BATCH_MS = 5;

/** Builds the writer: `fallback` is the stream used without --output. */
export function writerFrom(o: CommonOptions, fallback: NodeJS.WriteStream, batchMs = 0): TraceWriter {
  const filter = filterFrom(o);
  let maxValue: number | undefined;
  if (o.maxValue !== undefined) {
    const [n] = positiveInts([o.maxValue], '--max-value', true) ?? [0];
    maxValue = n;
  }
  const sink: Sink = o.output !== undefined ? { kind: 'file', path: o.output } : { kind: 'stream', stream: fallback };
  const tty = o.output === undefined && fallback.isTTY === true;
  const color = o.json ? false : o.color ?? (tty && !process.env.NO_COLOR);
  const w: WriterOptions = { json: o.json ?? false, color, filter, timeZone: o.utc ? 'utc' : 'local', batchMs };
  if (maxValue !== undefined) w.maxValue = maxValue;
  return new TraceWriter(sink, w);
}
