/**
 * Reader for oxenstored's access log (tools/ocaml/xenstored/logging.ml of Xen 4.17, what
 * `xs-trace attach` follows on oxenstored), one line per event:
 *
 *   [20261206T03:23:02.616Z]  A2.1         write     /local/domain/5/x hello
 *    time (UTC, ms)          connection.tx  operation  data
 *
 * The connection is `A<n>` (a socket: dom0's tools) or `D<domid>` (a domain's ring), with
 * `.<tx>` inside a transaction and `r(<n>):` for the replay of a transaction at commit. What the
 * log lacks, compared with the wire (stated by `attach` when it starts):
 * - replies: only errors (`error`, ENOENT ones only with access-log-read-ops) and watch events;
 *   so nothing is paired and there are no latencies;
 * - reads, directory listings and permission reads, unless access-log-read-ops = true;
 * - transaction start and end, unless access-log-transactions-ops = true (their ops carry the
 *   transaction id, and commits and conflicts are logged);
 * - introduce, release, getdomain, is-introduced and resume, unless access-log-special-ops;
 * - request ids and payload lengths; payloads are cut with ".." at access-log-nb-chars
 *   characters per line (180 by default); NUL bytes became spaces, other bytes OCaml escapes;
 * - requests refused before they are processed (a malformed path) are not logged at all.
 * I/O free: bytes in, records out.
 */
import { Frame } from '../../xenstore-wire/codec';
import { MessageType, XS_TYPE_INVALID, messageTypeName } from '../../xenstore-wire/constants';
import { decodeReply, decodeRequest } from './decode';
import { RecordKind, TraceRecord } from './record';
import { elide } from '../elide';
import { MAX_LINE, NOTE_MAX, rebuildPayload } from './tracefile';

/** Operation names as logging.ml prints them (string_of_access_type), longest first. */
const OPS: ReadonlyArray<[string, number | string]> = [
  ['is introduced', MessageType.IS_DOMAIN_INTRODUCED],
  ['reset watches', MessageType.RESET_WATCHES],
  ['w notfired', 'watch-not-fired'],
  ['w event', MessageType.WATCH_EVENT],
  ['t start', MessageType.TRANSACTION_START],
  ['t end', MessageType.TRANSACTION_END],
  ['directory', MessageType.DIRECTORY],
  ['getperms', MessageType.GET_PERMS],
  ['introduce', MessageType.INTRODUCE],
  ['getdomain', MessageType.GET_DOMAIN_PATH],
  ['settarget', MessageType.SET_TARGET],
  ['setperms', MessageType.SET_PERMS],
  ['coalesce', 'coalesce'],
  ['conflict', 'conflict'],
  ['newconn', 'newconn'],
  ['endconn', 'endconn'],
  ['unwatch', MessageType.UNWATCH],
  ['release', MessageType.RELEASE],
  ['invalid', XS_TYPE_INVALID],
  ['resume', MessageType.RESUME],
  ['commit', 'commit'],
  ['watch', MessageType.WATCH],
  ['write', MessageType.WRITE],
  ['mkdir', MessageType.MKDIR],
  ['debug', MessageType.CONTROL],
  ['error', MessageType.ERROR],
  ['read', MessageType.READ],
  ['rm', MessageType.RM],
];

const LINE_RE = /^\[(\d{4})(\d\d)(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z\] +(\S+) +(.*)$/;

/** OCaml's String.escaped undone: \\ \" \n \t \r \b and \ddd (decimal). */
export function unescapeOcaml(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c || i + 1 >= s.length) {
      out.push(c & 0xff);
      continue;
    }
    const n = s[i + 1];
    const simple: Record<string, number> = { '\\': 0x5c, '"': 0x22, "'": 0x27, n: 0x0a, t: 0x09, r: 0x0d, b: 0x08, ' ': 0x20 };
    if (n in simple) {
      out.push(simple[n]);
      i++;
    } else if (/^\d{3}$/.test(s.slice(i + 1, i + 4))) {
      out.push(Number(s.slice(i + 1, i + 4)) & 0xff);
      i += 3;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}

export interface AccessLogOptions {
  /** access-log-nb-chars of the daemon (default 180): lines of that length minus one were cut. */
  lineChars?: number;
}

interface Conn {
  n: number;
  domid: number;
  /** The last request, for the error line that may follow it. */
  last?: { seq: number; type: number; path?: string };
  watches: Array<{ id: number; path: string; token: string; seq: number }>;
}

export class AccessLogParser {
  readonly stats = { lines: 0, messages: 0, unparsed: 0 };
  private seq = 0;
  private nextConn = 1;
  private nextWatch = 1;
  private readonly conns = new Map<string, Conn>();
  private partial = '';
  private skipping = false;

  constructor(private readonly opts: AccessLogOptions = {}) {}

  push(chunk: Buffer): TraceRecord[] {
    let text = chunk.toString('latin1');
    const out: TraceRecord[] = [];
    if (this.skipping) {
      const nl = text.indexOf('\n');
      if (nl < 0) return out;
      this.skipping = false;
      text = text.slice(nl + 1);
    }
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() as string;
    for (const l of lines) this.line(l, out);
    if (this.partial.length > MAX_LINE) {
      // Bounded memory: oxenstored cuts its lines at access-log-nb-chars.
      this.stats.lines++;
      this.stats.unparsed++;
      const r = this.record(null, 0, 'warning');
      r.text = `${this.partial.slice(0, 80)}...`;
      r.warnings.push({ code: 'unparsed-line', message: `line ${this.stats.lines} is longer than ${MAX_LINE} bytes: skipped to its end` });
      out.push(r);
      this.partial = '';
      this.skipping = true;
    }
    return out;
  }

  end(): TraceRecord[] {
    const out: TraceRecord[] = [];
    if (this.partial !== '') this.line(this.partial, out);
    this.partial = '';
    return out;
  }

  private record(conn: Conn | null, tsUs: number, kind: RecordKind): TraceRecord {
    const r: TraceRecord = { seq: ++this.seq, tsUs, tsPrecision: 'ms', conn: conn?.n ?? 0, kind, warnings: [] };
    if (conn) r.connDomid = conn.domid;
    return r;
  }

  /** `A2`, `D5.3`, `r(4):D5.7` -> the connection and the transaction id (0: none). */
  private conn(field: string, tsUs: number, out: TraceRecord[], announce: boolean): { conn: Conn; tx: number; replay: boolean } | null {
    const m = /^(r\(\d+\):)?([AD])(\d+)(?:\.(\d+))?$/.exec(field);
    if (!m) return null;
    const key = `${m[2]}${m[3]}`;
    let c = this.conns.get(key);
    if (!c) {
      c = { n: this.nextConn++, domid: m[2] === 'D' ? Number(m[3]) : 0, watches: [] };
      this.conns.set(key, c);
      if (m[1] === undefined && announce) {
        const r = this.record(c, tsUs, 'connect');
        r.text = `${key} (first seen in the log)`;
        out.push(r);
      }
    }
    return { conn: c, tx: m[4] !== undefined ? Number(m[4]) : 0, replay: m[1] !== undefined };
  }

  private line(raw: string, out: TraceRecord[]): void {
    this.stats.lines++;
    if (raw === '') return;
    const m = LINE_RE.exec(raw);
    if (!m) {
      this.stats.unparsed++;
      const r = this.record(null, 0, 'warning');
      r.text = elide(raw, NOTE_MAX);
      r.warnings.push({ code: 'unparsed-line', message: `line ${this.stats.lines} not understood` });
      out.push(r);
      return;
    }
    const [y, mo, d, h, mi, s, ms] = [1, 2, 3, 4, 5, 6, 7].map((i) => Number(m[i]));
    const tsUs = Date.UTC(y, mo - 1, d, h, mi, s, ms) * 1000;
    const rest = m[9];
    const op = OPS.find(([name]) => rest === name || rest.startsWith(name + ' '));
    if (!op) {
      this.stats.unparsed++;
      const r = this.record(null, tsUs, 'warning');
      r.text = elide(raw, NOTE_MAX);
      r.warnings.push({ code: 'unparsed-line', message: `line ${this.stats.lines}: unknown operation` });
      out.push(r);
      return;
    }
    const data = rest.slice(op[0].length).replace(/^ +/, '');
    const cut = raw.length === (this.opts.lineChars ?? 180) - 1 && raw.endsWith('..');
    if (m[8] === '=======>') {
      // CONTROL `print`: the message itself, written by the daemon.
      const r = this.record(null, tsUs, 'note');
      r.text = `control: ${elide(data, NOTE_MAX)}`;
      out.push(r);
      return;
    }
    // A `newconn` line announces its connection itself.
    const who = this.conn(m[8], tsUs, out, op[1] !== 'newconn');
    if (!who) {
      this.stats.unparsed++;
      const r = this.record(null, tsUs, 'warning');
      r.text = elide(raw, NOTE_MAX);
      r.warnings.push({ code: 'unparsed-line', message: `line ${this.stats.lines}: connection ${JSON.stringify(elide(m[8]))} not understood` });
      out.push(r);
      return;
    }
    const { conn, tx } = who;
    const kind = op[1];
    if (typeof kind === 'string') {
      const r = this.record(conn, tsUs, kind === 'newconn' ? 'connect' : kind === 'endconn' ? 'disconnect' : 'note');
      if (kind === 'commit') r.tx = { id: tx, event: 'commit' };
      else if (kind === 'conflict') r.tx = { id: tx, event: 'eagain' };
      else if (kind === 'coalesce') r.text = `transaction ${tx}: coalesced ${elide(data, NOTE_MAX)}`;
      else if (kind === 'watch-not-fired') r.text = `watch not fired: ${elide(data, NOTE_MAX)}`;
      if (kind === 'endconn') {
        for (const [k, c] of this.conns) if (c === conn) this.conns.delete(k);
      }
      out.push(r);
      return;
    }
    this.stats.messages++;
    const type = kind;
    const text = unescapeOcaml(cut ? data.slice(0, -2) : data);
    if (type === MessageType.ERROR) {
      const r = this.record(conn, tsUs, 'reply');
      r.type = 'ERROR';
      r.typeNum = type;
      r.reqId = null;
      r.txId = tx;
      r.error = text.toString('latin1').trim();
      if (conn.last) {
        r.op = messageTypeName(conn.last.type);
        r.requestSeq = conn.last.seq;
        if (conn.last.path !== undefined) r.path = conn.last.path;
      }
      out.push(r);
      return;
    }
    const isEvent = type === MessageType.WATCH_EVENT;
    const frame: Frame = { type, reqId: 0, txId: tx, payload: rebuildPayload(type, isEvent, text) };
    const r = this.record(conn, tsUs, isEvent ? 'event' : 'request');
    r.type = messageTypeName(type);
    r.typeNum = type;
    r.reqId = null;
    r.txId = tx;
    if (isEvent) decodeReply(r, frame, undefined);
    else decodeRequest(r, frame);
    if (cut) {
      r.warnings.push({ code: 'truncated-line', message: `oxenstored cut this line at ${(this.opts.lineChars ?? 180) - 1} characters (access-log-nb-chars): the payload is incomplete` });
    }
    // Not seen on the wire: decoding warnings about lengths and paths of a cut line are noise.
    if (cut) r.warnings = r.warnings.filter((w) => w.code === 'truncated-line');
    if (!isEvent) {
      if (tx !== 0) r.tx = { id: tx, event: 'op' };
      conn.last = { seq: r.seq, type, ...(r.path !== undefined ? { path: r.path } : {}) };
      if (type === MessageType.WATCH && r.path !== undefined && r.token !== undefined) {
        const w = { id: this.nextWatch++, path: r.path, token: r.token, seq: r.seq };
        conn.watches.push(w);
        r.watch = { id: w.id, path: w.path, token: w.token, event: 'register' };
      } else if (type === MessageType.UNWATCH && r.path !== undefined && r.token !== undefined) {
        const i = conn.watches.findIndex((x) => x.path === r.path && x.token === r.token);
        const w = i >= 0 ? conn.watches.splice(i, 1)[0] : undefined;
        r.watch = { id: w ? w.id : null, path: r.path, token: r.token, event: 'unregister' };
      }
    } else if (r.token !== undefined) {
      const w = conn.watches.find((x) => x.token === r.token);
      if (w) r.watch = { id: w.id, path: w.path, token: w.token, event: 'fire', registeredSeq: w.seq };
    }
    out.push(r);
  }
}
