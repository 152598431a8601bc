/**
 * Formatters: aligned human text (optionally coloured) and JSON lines. Pure functions of a
 * record; collecting records is kept apart from printing them so `--json` costs nothing.
 */
import { DEFAULT_MAX_VALUE_BYTES, quoteValue, renderName, renderValue } from './escape';
import { TraceRecord } from './record';

export interface FormatOptions {
  /** Value bytes shown before eliding; 0 shows everything. */
  maxValue?: number;
  /** ANSI colours (for a terminal). */
  color?: boolean;
  /** Time zone for the wall-clock column: 'local' (default) or 'utc'. */
  timeZone?: 'local' | 'utc';
}

/** Width of the type column: the longest name, IS_DOMAIN_INTRODUCED. */
const TYPE_WIDTH = 20;

const ANSI = {
  dim: '\x1b[2m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
  bold: '\x1b[1m',
  reset: '\x1b[0m',
} as const;

type Paint = (color: keyof typeof ANSI, s: string) => string;

function painter(on: boolean): Paint {
  return on ? (c, s) => (s === '' ? s : ANSI[c] + s + ANSI.reset) : (_c, s) => s;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The last second formatted, per zone: the clock column changes second once per second. */
const clockCache = { local: { sec: NaN, text: '' }, utc: { sec: NaN, text: '' } };

/** HH:MM:SS.uuuuuu (HH:MM:SS and blanks when the source had whole seconds only). */
export function formatClock(tsUs: number, precision: 'us' | 'ms' | 's' | undefined, zone: 'local' | 'utc' = 'local'): string {
  const sec = Math.floor(tsUs / 1_000_000);
  const c = clockCache[zone];
  if (c.sec !== sec) {
    const d = new Date(sec * 1000);
    const [h, m, s] = zone === 'utc' ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()] : [d.getHours(), d.getMinutes(), d.getSeconds()];
    c.sec = sec;
    c.text = `${pad2(h)}:${pad2(m)}:${pad2(s)}`;
  }
  if (precision === 's') return c.text + '       ';
  if (precision === 'ms') return `${c.text}.${String(Math.floor((tsUs - sec * 1_000_000) / 1000)).padStart(3, '0')}   `;
  return `${c.text}.${String(tsUs - sec * 1_000_000).padStart(6, '0')}`;
}

/** ISO 8601 in UTC with microseconds: 2026-11-24T08:17:24.123456Z. */
export function isoTime(tsUs: number): string {
  const iso = new Date(Math.floor(tsUs / 1000)).toISOString();
  const frac = String(((tsUs % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  return iso.replace(/\.\d{3}Z$/, `.${frac}Z`);
}

/** 87us, 1.234ms, 2.500s. */
export function formatDuration(us: number): string {
  if (us < 1000) return `${us}us`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(3)}ms`;
  return `${(us / 1_000_000).toFixed(3)}s`;
}

function children(list: string[], maxBytes: number): string {
  const shown: string[] = [];
  let used = 0;
  for (const c of list) {
    if (maxBytes > 0 && shown.length > 0 && used + c.length > maxBytes) break;
    shown.push(renderName(c));
    used += c.length + 1;
  }
  const more = list.length - shown.length;
  const n = `${list.length} ${list.length === 1 ? 'child' : 'children'}`;
  if (list.length === 0) return 'no children';
  return `${n}: ${shown.join(' ')}${more > 0 ? ` ...(+${more} more)` : ''}`;
}

/** ': 3 ops' (nothing when the count is unknown). */
function ops(n: number | undefined, sep: string): string {
  return n === undefined ? '' : `${sep}${n} ${n === 1 ? 'op' : 'ops'}`;
}

function txLabel(id: number | null): string {
  return id === null ? 'tx ?' : `tx ${id}`;
}

/** Requests whose `args` are xs-trace's own descriptions of decoded numbers ("port 9"), not wire strings. */
const DESCRIBED: ReadonlySet<string> = new Set(['INTRODUCE', 'SET_TARGET', 'SET_FEATURE', 'SET_QUOTA']);

/** The message-specific part of a human line. */
function detail(r: TraceRecord, maxValue: number): string {
  const parts: string[] = [];
  const path = r.path !== undefined ? renderName(r.path) : undefined;
  const value = () => (r.value !== undefined ? quoteValue(renderValue(r.value, maxValue)) : '');

  if (r.kind === 'event') {
    if (path !== undefined) parts.push(path);
    if (r.token !== undefined) parts.push(`token ${renderName(r.token)}`);
    if (r.watch) parts.push(`[w${r.watch.id} on ${renderName(r.watch.path)}, registered #${r.watch.registeredSeq}]`);
    if (path === undefined && r.args) parts.push(r.args.map(renderName).join(' '));
    return parts.join(' ');
  }

  const op = r.kind === 'reply' ? r.op ?? r.type : r.type;
  if (path !== undefined) parts.push(path);
  if (r.domid !== undefined) parts.push(`domid ${r.domid}`);

  if (r.kind === 'request') {
    if (r.value !== undefined) parts.push('=', value());
    if (r.token !== undefined) parts.push(`token ${renderName(r.token)}`);
    if (r.depth !== undefined) parts.push(`depth ${r.depth}`);
    if (r.perms) parts.push(r.perms.join(' '));
    if (op === 'DIRECTORY_PART' && r.args) parts.push(`offset ${r.args[0]}`);
    else if (r.args && DESCRIBED.has(op ?? '')) parts.push(...r.args);
    else if (r.args) parts.push(...r.args.map(renderName));
    if (r.result !== undefined) parts.push(r.result);
    if (r.watch) parts.push(`[w${r.watch.id ?? '?'}]`);
    if (r.tx) {
      if (r.tx.event === 'op') parts.push(`[${txLabel(r.tx.id)} op ${r.tx.opIndex}]`);
      else if (r.tx.event === 'end') parts.push(`[${txLabel(r.tx.id)}${ops(r.tx.ops, ', ')}]`);
    }
    return parts.join(' ');
  }

  // Replies.
  if (r.error !== undefined) {
    parts.push(`ERROR ${r.error}`);
  } else if (r.value !== undefined) {
    parts.push(op === 'CONTROL' ? '->' : '=', value());
  } else if (r.children) {
    parts.push('->', children(r.children, maxValue));
    if (r.result !== undefined) parts.push(`(${r.result})`);
  } else if (r.perms) {
    parts.push('->', r.perms.join(' '));
  } else if (op === 'TRANSACTION_START' && r.result !== undefined) {
    parts.push(`-> ${txLabel(Number(r.result))} started`);
  } else if (op === 'GET_DOMAIN_PATH' && r.result !== undefined) {
    parts.push('->', renderName(r.result));
  } else if (r.result !== undefined) {
    parts.push(r.result === 'OK' ? 'OK' : `-> ${r.result}`);
  } else if (r.args) {
    parts.push('->', r.args.map(renderName).join(' '));
  }
  if (r.token !== undefined) parts.splice(path !== undefined ? 1 : 0, 0, `token ${renderName(r.token)}`);
  if (r.watch) {
    const w = `w${r.watch.id ?? '?'}`;
    if (r.watch.event === 'registered') parts.push(`[${w} registered]`);
    else if (r.watch.event === 'unregistered') parts.push(`[${w} removed]`);
  }
  if (r.tx) {
    const t = r.tx;
    const dur = t.durationUs !== undefined ? `, ${formatDuration(t.durationUs)}` : '';
    const n = ops(t.ops, ': ');
    switch (t.event) {
      case 'op':
        parts.push(`[${txLabel(t.id)}${t.opIndex !== undefined ? ` op ${t.opIndex}` : ''}]`);
        break;
      case 'commit':
        parts.push(`[${txLabel(t.id)} committed${n}${dur}]`);
        break;
      case 'abort':
        parts.push(`[${txLabel(t.id)} aborted${n}${dur}]`);
        break;
      case 'eagain':
        parts.push(`[${txLabel(t.id)} conflicted (EAGAIN)${n}${dur}, must be redone]`);
        break;
      case 'failed':
        parts.push(`[${txLabel(t.id)} end failed]`);
        break;
      case 'start-failed':
        parts.push('[no transaction]');
        break;
      default:
        break;
    }
  }
  return parts.join(' ');
}

function arrow(r: TraceRecord): string {
  switch (r.kind) {
    case 'request':
      return '->';
    case 'reply':
      return '<-';
    case 'event':
      return '<~';
    case 'warning':
      return '!!';
    default:
      return '--';
  }
}

/** One record as human text: a line, plus one indented line per warning. */
export function formatHuman(r: TraceRecord, opts: FormatOptions = {}): string {
  const paint = painter(opts.color ?? false);
  const maxValue = opts.maxValue ?? DEFAULT_MAX_VALUE_BYTES;
  const time = paint('dim', formatClock(r.tsUs, r.tsPrecision, opts.timeZone));
  const conn = (r.connDomid !== undefined ? `#${r.conn}/d${r.connDomid}` : `#${r.conn}`).padEnd(4);
  const a = arrow(r);
  let line: string;
  if (r.kind === 'request' || r.kind === 'reply' || r.kind === 'event') {
    const typeName = (r.kind === 'reply' ? r.op ?? r.type : r.type) ?? '?';
    const ids = `req=${r.reqId ?? '-'} tx=${r.txId ?? '-'}`.padEnd(15);
    const color = r.kind === 'request' ? 'cyan' : r.kind === 'event' ? 'yellow' : r.error !== undefined ? 'red' : 'green';
    const lat = r.latencyUs !== undefined ? ' ' + paint('blue', `(${formatDuration(r.latencyUs)})`) : '';
    const d = detail(r, maxValue);
    line = `${time} ${conn} ${paint(color, a)} ${paint(color, typeName.padEnd(TYPE_WIDTH))} ${paint('dim', ids)} ${d}${lat}`;
  } else {
    const what = r.kind === 'connect' ? 'connected' : r.kind === 'disconnect' ? 'closed' : r.kind === 'warning' ? 'warning' : 'note';
    const text = r.text !== undefined ? `: ${r.text}` : '';
    line = `${time} ${conn} ${paint(r.kind === 'warning' ? 'magenta' : 'dim', a)} ${what}${text}`;
  }
  line = line.trimEnd();
  const warn = r.kind === 'warning' ? [] : r.warnings;
  // Warnings sit under the message, indented past the time column (15 characters).
  const lines = [line, ...warn.map((w) => `${' '.repeat(16)}${paint('magenta', `! ${w.code}: ${w.message}`)}`)];
  return lines.join('\n');
}

/**
 * One record as a JSON object (one line). Values are escaped text (see escape.ts, reversible
 * with unescapeValue) and, unless maxValue is set, never elided.
 */
export function toJson(r: TraceRecord, opts: { maxValue?: number } = {}): Record<string, unknown> {
  const o: Record<string, unknown> = { seq: r.seq, time: isoTime(r.tsUs), ts: r.tsUs };
  if (r.tsPrecision === 's' || r.tsPrecision === 'ms') o.tsPrecision = r.tsPrecision;
  o.conn = r.conn;
  if (r.connDomid !== undefined) o.connDomid = r.connDomid;
  o.kind = r.kind;
  const copy = ['type', 'typeNum', 'op', 'reqId', 'txId', 'len', 'path'] as const;
  for (const k of copy) if (r[k] !== undefined) o[k] = r[k];
  if (r.value !== undefined) {
    const v = renderValue(r.value, opts.maxValue ?? 0);
    o.value = v.text;
    o.valueBytes = v.bytes;
    if (v.elided > 0) o.valueElided = v.elided;
  }
  const rest = ['token', 'depth', 'children', 'perms', 'args', 'domid', 'error', 'result', 'latencyUs', 'requestSeq', 'tx', 'watch', 'text'] as const;
  for (const k of rest) if (r[k] !== undefined) o[k] = r[k];
  o.warnings = r.warnings;
  return o;
}

export function formatJson(r: TraceRecord, opts: { maxValue?: number } = {}): string {
  return JSON.stringify(toJson(r, opts));
}
