/**
 * `--stats`: counts of what the trace showed, per message type and per path prefix: requests,
 * errors by errno name, latency median and p99 (where the source has them: the proxy; not the
 * daemons' logs, whose clocks tick in seconds or milliseconds with no reply paired), and bytes
 * each way. Fed with the records that passed the filters (the ones printed), so the totals are
 * the counts of requests printed.
 *
 * Memory is bounded whatever the traffic: at most MAX_PREFIXES path prefixes (the rest are
 * counted under "(other)"), and per row at most MAX_SAMPLES latencies: exact quantiles up to
 * that many replies; beyond, every second kept latency is dropped and one in two (then four...)
 * of the next ones kept, an even sample over time.
 */
import Table from 'cli-table3';
import { elide } from '../elide';
import { formatDuration } from './format';
import { TraceRecord } from './record';

export const MAX_PREFIXES = 512;
export const MAX_SAMPLES = 65_536;
export const MAX_ERROR_NAMES = 16;

export interface StatsRow {
  /** Type name (READ, WATCH_EVENT...) or path prefix. */
  key: string;
  requests: number;
  /** Watch events (type WATCH_EVENT, and per path prefix). */
  events: number;
  /** Error replies by errno name. */
  errors: Record<string, number>;
  /** Replies with a latency: how many, median and p99 in microseconds. */
  latency?: { replies: number; medianUs: number; p99Us: number };
  /** Payload bytes sent by clients (requests) and by the daemon (replies and events). */
  bytesIn: number;
  bytesOut: number;
}

export interface StatsSnapshot {
  kind: 'stats';
  /** 'interval' for a table of the last --interval seconds, 'total' for the whole run. */
  scope: 'interval' | 'total';
  /** Microseconds since the epoch: the first and last record counted. */
  fromUs: number | null;
  toUs: number | null;
  totals: StatsRow;
  byType: StatsRow[];
  byPath: StatsRow[];
  /** Which columns the source can fill. */
  source: { latency: boolean; bytes: boolean };
}

class Row {
  requests = 0;
  events = 0;
  errors: Record<string, number> = {};
  bytesIn = 0;
  bytesOut = 0;
  private samples: number[] = [];
  private seen = 0;
  private stride = 1;
  constructor(readonly key: string) {}

  /** Counts an error reply; at most MAX_ERROR_NAMES names per row (a broken daemon may send any). */
  error(name: string): void {
    let key = elide(name, 32);
    if (!(key in this.errors) && Object.keys(this.errors).length >= MAX_ERROR_NAMES) key = '(other)';
    this.errors[key] = (this.errors[key] ?? 0) + 1;
  }

  latency(us: number): void {
    if (this.seen++ % this.stride !== 0) return;
    this.samples.push(us);
    if (this.samples.length >= MAX_SAMPLES) {
      this.samples = this.samples.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
    }
  }

  snapshot(): StatsRow {
    const r: StatsRow = { key: this.key, requests: this.requests, events: this.events, errors: { ...this.errors }, bytesIn: this.bytesIn, bytesOut: this.bytesOut };
    if (this.seen > 0) {
      const s = [...this.samples].sort((a, b) => a - b);
      const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
      r.latency = { replies: this.seen, medianUs: q(0.5), p99Us: q(0.99) };
    }
    return r;
  }
}

export interface StatsOptions {
  /** Path components that make a prefix (default 3: /local/domain/5). */
  pathDepth?: number;
  /** The source pairs replies with microsecond times (the proxy): latency columns. */
  latency?: boolean;
  /** The source knows payload sizes (not oxenstored's access log). */
  bytes?: boolean;
}

/** Longest prefix kept as a row's key (a hostile path of kilobytes is elided). */
const KEY_MAX = 100;

/** The first `depth` components of a path: /local/domain/5/device/vif -> /local/domain/5. */
export function pathPrefix(path: string | undefined, depth: number): string {
  if (path === undefined) return '(no path)';
  return elide(prefixOf(path, depth), KEY_MAX);
}

function prefixOf(path: string, depth: number): string {
  if (path.startsWith('@')) return path.split('/')[0];
  const abs = path.startsWith('/');
  const parts = path.split('/').filter((p) => p !== '');
  const head = parts.slice(0, depth).join('/');
  return abs ? `/${head}` : head === '' ? '(empty)' : head;
}

export class TraceStats {
  private byType = new Map<string, Row>();
  private byPath = new Map<string, Row>();
  private totals: Row;
  private fromUs: number | null = null;
  private toUs: number | null = null;
  private readonly depth: number;

  constructor(private readonly opts: StatsOptions = {}) {
    this.depth = opts.pathDepth ?? 3;
    this.totals = new Row('total');
  }

  private row(map: Map<string, Row>, key: string, bound: boolean): Row {
    let r = map.get(key);
    if (!r) {
      if (bound && map.size >= MAX_PREFIXES) key = '(other)';
      r = map.get(key);
      if (!r) {
        r = new Row(key);
        map.set(key, r);
      }
    }
    return r;
  }

  /** Counts one record (call it for each record printed). */
  add(r: TraceRecord): void {
    if (r.kind !== 'request' && r.kind !== 'reply' && r.kind !== 'event') return;
    this.fromUs ??= r.tsUs;
    this.toUs = r.tsUs;
    const typeKey = r.kind === 'reply' ? r.op ?? r.type ?? '?' : r.type ?? '?';
    const rows = [this.totals, this.row(this.byType, typeKey, false), this.row(this.byPath, pathPrefix(r.path, this.depth), true)];
    for (const row of rows) {
      if (r.kind === 'request') {
        row.requests++;
        row.bytesIn += r.len ?? 0;
      } else {
        if (r.kind === 'event') row.events++;
        if (r.error !== undefined) row.error(r.error);
        row.bytesOut += r.len ?? 0;
        if (r.kind === 'reply' && r.latencyUs !== undefined) row.latency(r.latencyUs);
      }
    }
  }

  snapshot(scope: 'interval' | 'total'): StatsSnapshot {
    const sorted = (m: Map<string, Row>) => [...m.values()].map((x) => x.snapshot()).sort((a, b) => b.requests + b.events - (a.requests + a.events) || a.key.localeCompare(b.key));
    return {
      kind: 'stats',
      scope,
      fromUs: this.fromUs,
      toUs: this.toUs,
      totals: this.totals.snapshot(),
      byType: sorted(this.byType),
      byPath: sorted(this.byPath),
      source: { latency: this.opts.latency ?? false, bytes: this.opts.bytes ?? true },
    };
  }

  /** Starts counting afresh (for the next --interval). */
  reset(): void {
    this.byType = new Map();
    this.byPath = new Map();
    this.totals = new Row('total');
    this.fromUs = null;
    this.toUs = null;
  }
}

function errorsText(e: Record<string, number>): string {
  const parts = Object.entries(e)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : '-';
}

/** Rows shown per table in text (JSON has them all). */
const TEXT_ROWS = 30;

/** The snapshot as text tables (cli-table3): one per type, one per path prefix. */
export function formatStats(s: StatsSnapshot): string {
  const head = ['', 'requests', 'events', 'errors', ...(s.source.latency ? ['median', 'p99'] : []), ...(s.source.bytes ? ['bytes in', 'bytes out'] : [])];
  const line = (r: StatsRow): string[] => [
    r.key,
    String(r.requests),
    String(r.events),
    errorsText(r.errors),
    ...(s.source.latency ? [r.latency ? formatDuration(r.latency.medianUs) : '-', r.latency ? formatDuration(r.latency.p99Us) : '-'] : []),
    ...(s.source.bytes ? [String(r.bytesIn), String(r.bytesOut)] : []),
  ];
  const table = (title: string, rows: StatsRow[]): string => {
    const t = new Table({ head: [title, ...head.slice(1)], style: { head: [], border: [], compact: true } });
    for (const r of rows.slice(0, TEXT_ROWS)) t.push(line(r));
    if (rows.length > TEXT_ROWS) t.push([`(${rows.length - TEXT_ROWS} more)`, ...head.slice(1).map(() => '')]);
    t.push(line({ ...s.totals, key: 'total' }));
    return t.toString();
  };
  const span = s.fromUs !== null && s.toUs !== null ? ` over ${formatDuration(Math.max(0, s.toUs - s.fromUs))}` : '';
  const what = s.scope === 'interval' ? 'last interval' : 'whole trace';
  const missing = [s.source.latency ? '' : 'no latencies (the source has no paired microsecond times)', s.source.bytes ? '' : 'no byte counts (the source cuts payloads)'].filter(Boolean);
  return [
    `xs-trace stats (${what}${span}): ${s.totals.requests} requests, ${s.totals.events} watch events, ${Object.values(s.totals.errors).reduce((a, b) => a + b, 0)} errors${missing.length ? `; ${missing.join(', ')}` : ''}`,
    table('type', s.byType),
    table('path prefix', s.byPath),
  ].join('\n');
}
