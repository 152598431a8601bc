/**
 * Reader for the log C xenstored writes: its `-T FILE` trace file, or the file it logs to after
 * CONTROL `logfile FILE` (what `xs-trace attach` follows). Two formats, told apart per line:
 *
 * - Xen 4.17 (tools/xenstore/xenstored_core.c: trace_io(), trace_create(), reopen_log()):
 *     `IN|OUT <conn pointer> YYYYMMDD HH:MM:SS <TYPE> (<payload>)`
 *     `CREATE connection|watch <ptr>`, `DESTROY connection|watch|transaction <ptr>`
 * - Xen 4.18 and later (tools/xenstored/core.c of 4.20): the same with a prefix per kind and
 *   the connection's domain:
 *     `io: IN|OUT|OUT(START)|OUT(END)|OUT(ERR) <ptr> (d<domid>) YYYYMMDD HH:MM:SS <TYPE> (...)`
 *     `obj: CREATE|DESTROY connection|watch|transaction <ptr>`, `wrl: `, `acc: `, `tdb: ` lines.
 *   A reply written in several pieces (always on a socket: header first) is logged twice, as
 *   OUT(START) when it begins and OUT(END) when it is complete; a failed write as OUT(ERR).
 *
 * In both, each message is logged once whole, with every NUL byte of the payload printed as a
 * space and every other byte raw (a value holding a newline continues on the next line). IN is
 * a request as the daemon processes it, OUT a message once written to the client (reply or
 * WATCH_EVENT). There is no req_id, no tx_id and only one-second local time: pairing is by order
 * per connection (C xenstored answers a connection's requests in order), transactions can be
 * followed by their start and end only, and no latency can be measured.
 *
 * Which domain a connection belongs to: 4.18+ prints it on every line. 4.17 does not; it is
 * learnt when the log shows the connection being made for an INTRODUCE (the daemon logs
 * `CREATE connection` between the INTRODUCE request and its reply).
 *
 * The payload is rebuilt per type: paths, tokens, ids and errno names never contain spaces, so
 * spaces there were NULs; a WRITE value and a READ reply are kept as written (their NULs are
 * lost: shown as spaces). Everything is I/O free: bytes in, records out, in pieces (`push`) for
 * a log being followed live, or whole (`readTraceFile`).
 */
import { Frame } from '../../xenstore-wire/codec';
import { MessageType, XS_TYPE_INVALID } from '../../xenstore-wire/constants';
import { elide } from '../elide';
import { TraceRecord } from './record';
import { TraceSession } from './session';

const IO_RE = /^(?:(IN|OUT) |io: (IN|OUT|OUT\(START\)|OUT\(END\)|OUT\(ERR\)) )(0x[0-9a-fA-F]+|\(nil\)) (?:\(d(\d+)\) )?(\d{4})(\d\d)(\d\d) (\d\d):(\d\d):(\d\d) (\S+) \(/;
const OBJ_RE = /^(?:obj: )?(CREATE|DESTROY) (\S+) (0x[0-9a-fA-F]+|\(nil\))$/;
/** Other lines xenstored 4.17-4.20 writes to its log (trace(), log(), xprintf() when forked). */
const LOG_RE =
  /^(\*\*\*$|wrl: |acc: |tdb: |CONN |Delaying transaction start |Stalling connection |orphaned node |watch event path |dropping duplicate watch |TDB: |control: |Got message |Writing msg |\[ERR\] |FATAL: |Checking store|check_store: |clean_store: |corruption detected |live-update: |talloc failure |treewalk: |error when |Node |special node |Correct accounting )/;

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
  /** IN/OUT lines (OUT(START) lines, the first half of a reply logged twice, excluded). */
  messages: number;
  /** IN/OUT lines whose type name is not one of xs_wire.h. */
  unknownTypes: number;
  /** CREATE/DESTROY lines. */
  objects: number;
  /** Known log lines of the daemon (OUT(START) lines included). */
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
/** Longest line kept (C xenstored's longest: a header and a 4096-byte payload). */
export const MAX_LINE = 64 * 1024;
/** Longest message kept across continuation lines. */
const MAX_MESSAGE = 64 * 1024;
/** Characters of a line not understood (or of a daemon's own line) shown in its note. */
export const NOTE_MAX = 400;
const NEWLINE = 0x0a;
const CLOSE = 0x29; // ')'

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

/** A message line waiting for its possible continuation lines. */
interface Pending {
  io: RegExpExecArray;
  lines: Line[];
  /** Bytes of its lines so far. */
  bytes: number;
  /** OUT(START): the first half of a reply logged twice; its text is consumed, not shown. */
  discard: boolean;
}

function isStart(s: string): boolean {
  return s === '' || IO_RE.test(s) || OBJ_RE.test(s) || LOG_RE.test(s);
}

/**
 * The C xenstored log as a stream: `push` bytes as they are written, get records back.
 * A message line is held until the next line shows it has no continuation (or `flush` is
 * called after a quiet moment), because a value may hold newlines.
 */
export class CLogParser {
  readonly stats: TraceFileStats = { lines: 0, messages: 0, unknownTypes: 0, objects: 0, logLines: 0, unparsed: 0 };
  /** '4.17' or '4.18+' once a line showed which format the daemon writes. */
  format: '4.17' | '4.18+' | undefined;
  private readonly session = new TraceSession({ idsVisible: false, tsPrecision: 's' });
  private readonly connOf = new Map<string, number>();
  /** Domain of each connection number, when the daemon told it. */
  private readonly domidOf = new Map<number, number>();
  private nextConn = 1;
  private lastUs = 0;
  private lineNo = 0;
  private partial: Buffer = Buffer.alloc(0);
  /** Dropping the rest of an over-long line. */
  private skipping = false;
  private pending: Pending | null = null;
  /** 4.17: an INTRODUCE being processed; the connection created meanwhile is that domain's. */
  private introducing: { conn: number; domid: number } | null = null;
  private out: TraceRecord[] = [];
  /** Records made before the first timestamped line: they get its time. */
  private early: TraceRecord[] = [];
  /** 4.18+: connections created, not yet announced (their first message names the domain). */
  private readonly heldCreate = new Map<number, { ptr: string; tsUs: number }>();

  constructor(private readonly opts: TraceFileOptions = {}) {}

  /** The domain of connection `conn`, when known. */
  domidOfConn(conn: number): number | undefined {
    return this.domidOf.get(conn);
  }

  /** Feeds bytes of the log; returns the records they completed. */
  push(chunk: Buffer): TraceRecord[] {
    let data = chunk;
    if (this.skipping) {
      // The rest of a line too long to keep: dropped up to its end.
      const nl = data.indexOf(NEWLINE);
      if (nl < 0) return this.take();
      this.skipping = false;
      data = data.subarray(nl + 1);
    }
    if (this.partial.length) data = Buffer.concat([this.partial, data]);
    let start = 0;
    for (;;) {
      const i = data.indexOf(NEWLINE, start);
      if (i < 0) break;
      this.line({ text: data.subarray(start, i), no: ++this.lineNo });
      start = i + 1;
    }
    if (data.length - start > MAX_LINE) {
      // Bounded memory for a hostile or broken file: no line of C xenstored's is this long.
      this.lineNo++;
      this.stats.unparsed++;
      this.emit(this.session.note(0, this.lastUs, `${data.subarray(start, start + 80).toString('latin1')}...`, { code: 'unparsed-line', message: `line ${this.lineNo} is longer than ${MAX_LINE} bytes: skipped to its end` }));
      this.partial = Buffer.alloc(0);
      this.skipping = true;
      return this.take();
    }
    // Copy: the caller may reuse its buffer.
    this.partial = Buffer.from(data.subarray(start));
    return this.take();
  }

  /**
   * Emits a held message whose last line is complete (ends with ')'): for a log followed live,
   * after a quiet moment, so a message is not held until the next one is logged.
   */
  flush(): TraceRecord[] {
    const p = this.pending;
    if (p && p.lines[p.lines.length - 1].text[p.lines[p.lines.length - 1].text.length - 1] === CLOSE) this.finish();
    return this.take();
  }

  /** The end of the log: the unterminated last line and any held message. */
  end(): TraceRecord[] {
    if (this.partial.length > 0) {
      const text = this.partial;
      this.partial = Buffer.alloc(0);
      this.line({ text, no: ++this.lineNo });
    }
    if (this.pending) this.finish();
    for (const n of [...this.heldCreate.keys()]) this.announce(n);
    this.out.unshift(...this.early);
    this.early = [];
    return this.take();
  }

  private take(): TraceRecord[] {
    const r = this.out;
    this.out = [];
    return r;
  }

  private emit(r: TraceRecord): void {
    const d = this.domidOf.get(r.conn);
    if (d !== undefined && r.conn !== 0) r.connDomid = d;
    if (this.lastUs === 0) this.early.push(r);
    else this.out.push(r);
  }

  private toUs(m: RegExpExecArray): number {
    const [y, mo, d, h, mi, s] = [5, 6, 7, 8, 9, 10].map((i) => Number(m[i]));
    const ms = this.opts.timeZone === 'utc' ? Date.UTC(y, mo - 1, d, h, mi, s) : new Date(y, mo - 1, d, h, mi, s).getTime();
    return ms * 1000;
  }

  /**
   * The connection number of pointer `ptr`, with its domain when the line tells it (4.18+). A
   * connection made before the log began is numbered now; one whose CREATE line was held (4.18+:
   * that line has no domain, the connection's first message has) is announced now.
   */
  private conn(ptr: string, tsUs: number, domid: number | undefined): number {
    let n = this.connOf.get(ptr);
    if (n === undefined) {
      n = this.nextConn++;
      this.connOf.set(ptr, n);
      if (domid !== undefined) this.domidOf.set(n, domid);
      this.emit(this.session.connect(n, tsUs, `${ptr} (first seen in the log)`));
      return n;
    }
    if (domid !== undefined) this.domidOf.set(n, domid);
    this.announce(n);
    return n;
  }

  /** Emits the held CREATE of connection `n`, if any. */
  private announce(n: number): void {
    const held = this.heldCreate.get(n);
    if (!held) return;
    this.heldCreate.delete(n);
    // Created before the first timestamped line: it takes that line's time, as the others do.
    this.emit(this.session.connect(n, held.tsUs === 0 ? this.lastUs : held.tsUs, held.ptr));
  }

  private line(line: Line): void {
    this.stats.lines++;
    const s = line.text.toString('latin1');
    if (this.pending) {
      if (!isStart(s)) {
        this.pending.bytes += line.text.length + 1;
        this.pending.lines.push(line);
        // A payload is at most XENSTORE_PAYLOAD_MAX bytes: more continuation lines than that
        // are not its own. The message ends here; the lines after it show as not understood.
        if (this.pending.bytes > MAX_MESSAGE) this.finish();
        return;
      }
      this.finish();
    }
    const io = IO_RE.exec(s);
    if (io) {
      this.format ??= io[2] !== undefined ? '4.18+' : '4.17';
      // Lines before the first message (the "***" of an opening) take the first message's time.
      if (this.lastUs === 0) {
        this.lastUs = this.toUs(io);
        for (const r of this.early) r.tsUs = this.lastUs;
        this.out.unshift(...this.early);
        this.early = [];
      }
      this.pending = { io, lines: [line], bytes: line.text.length, discard: io[2] === 'OUT(START)' };
      return;
    }
    const obj = OBJ_RE.exec(s);
    if (obj) {
      this.stats.objects++;
      if (s.startsWith('obj: ')) this.format ??= '4.18+';
      if (obj[2] !== 'connection') return; // watch/transaction objects: shown through their messages
      if (obj[1] === 'CREATE') {
        const n = this.nextConn++;
        this.connOf.set(obj[3], n);
        if (this.introducing) this.domidOf.set(n, this.introducing.domid);
        if (s.startsWith('obj: ')) this.heldCreate.set(n, { ptr: obj[3], tsUs: this.lastUs });
        else this.emit(this.session.connect(n, this.lastUs, obj[3]));
      } else {
        const n = this.connOf.get(obj[3]);
        if (n !== undefined) {
          this.announce(n);
          this.connOf.delete(obj[3]);
          for (const r of this.session.disconnect(n, this.lastUs, obj[3])) this.emit(r);
          this.domidOf.delete(n);
        }
      }
      return;
    }
    if (s === '') return;
    if (s === '***') {
      this.emit(this.session.note(0, this.lastUs, 'log file opened'));
      return;
    }
    if (LOG_RE.test(s)) {
      this.stats.logLines++;
      if (this.opts.logLines) this.emit(this.session.note(0, this.lastUs, elide(s, NOTE_MAX)));
      return;
    }
    this.stats.unparsed++;
    this.emit(this.session.note(0, this.lastUs, elide(s, NOTE_MAX), { code: 'unparsed-line', message: `line ${line.no} not understood` }));
  }

  /** The held message is complete: its lines up to the last ending with ')' are its text. */
  private finish(): void {
    const p = this.pending as Pending;
    this.pending = null;
    const { io, lines } = p;
    let last = lines.length - 1;
    while (last > 0 && lines[last].text[lines[last].text.length - 1] !== CLOSE) last--;
    const tsUs = this.toUs(io);
    this.lastUs = tsUs;
    if (p.discard) {
      this.stats.logLines++;
    } else {
      const bodyStart = io[0].length;
      const parts = [lines[0].text.subarray(bodyStart)];
      for (let k = 1; k <= last; k++) parts.push(Buffer.from([NEWLINE]), lines[k].text);
      let body = Buffer.concat(parts);
      const closed = body.length > 0 && body[body.length - 1] === CLOSE;
      if (closed) body = body.subarray(0, body.length - 1);
      const dir = io[1] ?? io[2];
      const out = dir !== 'IN';
      const typeName = io[11];
      const type = typeNumber(typeName);
      if (type === XS_TYPE_INVALID) this.stats.unknownTypes++;
      this.stats.messages++;
      const frame: Frame = { type, reqId: 0, txId: 0, payload: rebuildPayload(type, out, body) };
      const n = this.conn(io[3], tsUs, io[4] !== undefined ? Number(io[4]) : undefined);
      for (const r of this.session.frame(n, out ? 'daemon' : 'client', frame, tsUs)) {
        if (type === XS_TYPE_INVALID) r.type = typeName;
        if (!closed) r.warnings.push({ code: 'unparsed-line', message: `line ${lines[0].no}: message not closed by ")" (file cut short?)` });
        if (dir === 'OUT(ERR)') r.warnings.push({ code: 'send-failed', message: 'the daemon could not write this message to the client (its connection failed)' });
        this.emit(r);
        this.follow(n, r);
      }
    }
    for (let k = last + 1; k < lines.length; k++) {
      this.stats.unparsed++;
      this.emit(this.session.note(0, tsUs, elide(lines[k].text.toString('latin1'), NOTE_MAX), { code: 'unparsed-line', message: `line ${lines[k].no} not understood` }));
    }
  }

  /** 4.17: remembers an INTRODUCE in progress, to name the connection it creates. */
  private follow(conn: number, r: TraceRecord): void {
    if (r.kind === 'request' && r.type === 'INTRODUCE' && r.domid !== undefined) this.introducing = { conn, domid: r.domid };
    else if (r.kind === 'reply' && r.op === 'INTRODUCE' && this.introducing?.conn === conn) this.introducing = null;
  }
}

/** Parses a whole trace file into display records. */
export function readTraceFile(content: Buffer, opts: TraceFileOptions = {}): TraceFileResult {
  const parser = new CLogParser(opts);
  const records = [...parser.push(content), ...parser.end()];
  return { records, stats: parser.stats };
}
