/**
 * Reader for the trace file C xenstored writes with `-T FILE` (Xen 4.17,
 * tools/xenstore/xenstored_core.c: trace_io(), trace_create(), trace_destroy(), reopen_log()).
 *
 * What the daemon writes, and what that means for reading it back:
 * - Each message, once whole:  `IN|OUT <conn pointer> YYYYMMDD HH:MM:SS <TYPE> (<payload>)`
 *   with every NUL byte of the payload printed as a space and every other byte raw (a value
 *   holding a newline continues on the next line). IN is a request read from a client, OUT a
 *   message written to it (reply or WATCH_EVENT). There is no req_id, no tx_id and only
 *   one-second local time: pairing is by order per connection (C xenstored answers a
 *   connection's requests in order), transactions can be followed only by their start and end.
 * - `CREATE connection|watch <ptr>` and `DESTROY connection|watch|transaction <ptr>`.
 * - `\n***\n` when the file is (re)opened (start-up, SIGHUP), and free-form log lines.
 *
 * The payload is rebuilt per type: paths, tokens, ids and errno names never contain spaces, so
 * spaces there were NULs; a WRITE value and a READ reply are kept as written (their NULs are
 * lost: shown as spaces). Everything is I/O free: bytes in, records out.
 */
import { Frame } from '../../xenstore-wire/codec';
import { MessageType, XS_TYPE_INVALID } from '../../xenstore-wire/constants';
import { TraceRecord } from './record';
import { TraceSession } from './session';

const IO_RE = /^(IN|OUT) (0x[0-9a-fA-F]+|\(nil\)) (\d{4})(\d\d)(\d\d) (\d\d):(\d\d):(\d\d) (\S+) \(/;
const OBJ_RE = /^(CREATE|DESTROY) (\S+) (0x[0-9a-fA-F]+|\(nil\))$/;
/** Other lines xenstored 4.17 writes to the trace (trace(), log(), xprintf() when forked). */
const LOG_RE =
  /^(\*\*\*$|wrl: |CONN |Delaying transaction start |Stalling connection |orphaned node |watch event path |dropping duplicate watch |TDB: |control: |Got message |Writing msg |\[ERR\] |FATAL: |Checking store|check_store: |clean_store: |corruption detected |live-update: |talloc failure |treewalk: |error when |Node ")/;

export interface TraceFileOptions {
  /** Zone the daemon's timestamps are in: its localtime(). Default 'local'. */
  timeZone?: 'local' | 'utc';
  /**
   * Show the daemon's own log lines (write-rate-limit "wrl:" statistics, "CONN ... ignored",
   * store checks) as notes. Off by default: C xenstored writes several per message.
   */
  logLines?: boolean;
}

export interface TraceFileStats {
  lines: number;
  /** IN/OUT lines. */
  messages: number;
  /** IN/OUT lines whose type name is not one of xs_wire.h. */
  unknownTypes: number;
  /** CREATE/DESTROY lines. */
  objects: number;
  /** Known log lines of the daemon. */
  logLines: number;
  /** Lines not understood (reported as warnings). */
  unparsed: number;
}

export interface TraceFileResult {
  records: TraceRecord[];
  stats: TraceFileStats;
}

/** Types whose reply payload is raw bytes (no NUL-separated fields). */
const RAW_REPLY: ReadonlySet<number> = new Set([MessageType.READ, MessageType.CONTROL]);

function typeNumber(name: string): number {
  const n = (MessageType as unknown as Record<string, number | undefined>)[name];
  return typeof n === 'number' ? n : XS_TYPE_INVALID;
}

const SPACE = 0x20;

function spacesToNul(b: Buffer, from = 0, to = b.length): void {
  for (let i = from; i < to; i++) if (b[i] === SPACE) b[i] = 0;
}

/** Rebuilds the payload bytes from the printed text (NULs were printed as spaces). */
export function rebuildPayload(type: number, out: boolean, text: Buffer): Buffer {
  const b = Buffer.from(text);
  const first = b.indexOf(SPACE);
  if (!out && type === MessageType.WRITE) {
    // path NUL value: only the first space was a NUL; the value is kept as printed.
    if (first >= 0) b[first] = 0;
    return b;
  }
  if (out && RAW_REPLY.has(type)) return b;
  if (type === MessageType.WATCH || type === MessageType.UNWATCH || type === MessageType.WATCH_EVENT) {
    // path NUL token NUL: a token may hold spaces, so only the first and the last are NULs.
    if (first >= 0) b[first] = 0;
    if (b.length > 0 && b[b.length - 1] === SPACE) b[b.length - 1] = 0;
    return b;
  }
  spacesToNul(b);
  return b;
}

interface Line {
  text: Buffer;
  no: number;
}

function splitLines(content: Buffer): Line[] {
  const out: Line[] = [];
  let start = 0;
  let no = 1;
  while (start < content.length) {
    const i = content.indexOf(0x0a, start);
    const end = i < 0 ? content.length : i;
    out.push({ text: content.subarray(start, end), no: no++ });
    if (i < 0) break;
    start = i + 1;
  }
  return out;
}

function isStart(s: string): boolean {
  return s === '' || IO_RE.test(s) || OBJ_RE.test(s) || LOG_RE.test(s);
}

/** Parses a whole trace file into display records. */
export function readTraceFile(content: Buffer, opts: TraceFileOptions = {}): TraceFileResult {
  const session = new TraceSession({ idsVisible: false, tsPrecision: 's' });
  const stats: TraceFileStats = { lines: 0, messages: 0, unknownTypes: 0, objects: 0, logLines: 0, unparsed: 0 };
  const records: TraceRecord[] = [];
  const connOf = new Map<string, number>();
  let nextConn = 1;
  let lastUs = 0;
  const toUs = (m: RegExpExecArray): number => {
    const [y, mo, d, h, mi, s] = [3, 4, 5, 6, 7, 8].map((i) => Number(m[i]));
    const ms = opts.timeZone === 'utc' ? Date.UTC(y, mo - 1, d, h, mi, s) : new Date(y, mo - 1, d, h, mi, s).getTime();
    return ms * 1000;
  };

  const lines = splitLines(content);
  stats.lines = lines.length;
  // Lines before the first message (the "***" of start-up) take the first message's time.
  for (const l of lines) {
    const m = IO_RE.exec(l.text.toString('latin1'));
    if (m) {
      lastUs = toUs(m);
      break;
    }
  }

  const conn = (ptr: string, tsUs: number): number => {
    let n = connOf.get(ptr);
    if (n === undefined) {
      // A connection made before the trace started (or before a reopen): number it now.
      n = nextConn++;
      connOf.set(ptr, n);
      records.push(session.connect(n, tsUs, `${ptr} (first seen in the trace)`));
    }
    return n;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const s = line.text.toString('latin1');
    const io = IO_RE.exec(s);
    if (io) {
      // Gather continuation lines (a payload holding newlines), up to the next known line;
      // the message ends at the last of them that ends with ')'.
      let j = i + 1;
      while (j < lines.length && !isStart(lines[j].text.toString('latin1'))) j++;
      let last = j - 1;
      while (last > i && lines[last].text[lines[last].text.length - 1] !== 0x29) last--;
      const bodyStart = io[0].length;
      const parts = [line.text.subarray(bodyStart)];
      for (let k = i + 1; k <= last; k++) parts.push(Buffer.from([0x0a]), lines[k].text);
      let body = Buffer.concat(parts);
      const closed = body.length > 0 && body[body.length - 1] === 0x29;
      if (closed) body = body.subarray(0, body.length - 1);
      const tsUs = toUs(io);
      lastUs = tsUs;
      const out = io[1] === 'OUT';
      const type = typeNumber(io[9]);
      if (type === XS_TYPE_INVALID) stats.unknownTypes++;
      stats.messages++;
      const frame: Frame = { type, reqId: 0, txId: 0, payload: rebuildPayload(type, out, body) };
      const n = conn(io[2], tsUs);
      const recs = session.frame(n, out ? 'daemon' : 'client', frame, tsUs);
      for (const r of recs) {
        if (type === XS_TYPE_INVALID) r.type = io[9];
        if (!closed) r.warnings.push({ code: 'unparsed-line', message: `line ${line.no}: message not closed by ")" (file cut short?)` });
        records.push(r);
      }
      for (let k = last + 1; k < j; k++) {
        stats.unparsed++;
        records.push(session.note(n, tsUs, lines[k].text.toString('latin1'), { code: 'unparsed-line', message: `line ${lines[k].no} not understood` }));
      }
      i = j - 1;
      continue;
    }
    const obj = OBJ_RE.exec(s);
    if (obj) {
      stats.objects++;
      if (obj[2] !== 'connection') continue; // watch/transaction objects: shown through their messages
      if (obj[1] === 'CREATE') {
        const n = nextConn++;
        connOf.set(obj[3], n);
        records.push(session.connect(n, lastUs, obj[3]));
      } else {
        const n = connOf.get(obj[3]);
        if (n !== undefined) {
          connOf.delete(obj[3]);
          records.push(...session.disconnect(n, lastUs, obj[3]));
        }
      }
      continue;
    }
    if (s === '') continue;
    if (s === '***') {
      records.push(session.note(0, lastUs, 'trace file opened'));
      continue;
    }
    if (LOG_RE.test(s)) {
      stats.logLines++;
      if (opts.logLines) records.push(session.note(0, lastUs, s));
      continue;
    }
    stats.unparsed++;
    records.push(session.note(0, lastUs, s, { code: 'unparsed-line', message: `line ${line.no} not understood` }));
  }
  return { records, stats };
}
