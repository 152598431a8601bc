/**
 * Payloads per message type: request builders, reply parsers, and request parsers (for
 * servers and tracers). No I/O. Conventions from docs/misc/xenstore.txt and FACTS.md 1:
 * paths and tokens are NUL-terminated strings; a READ reply and a WRITE value are raw bytes
 * with no trailing NUL; acks are "OK\0"; errors are "<ERRNO NAME>\0".
 */
import { MessageType, messageTypeName, isXsErrnoName, XS_ERRNO_NAMES } from './constants';
import { ProtocolError, XenstoreError } from './errors';
import { DOMID_MAX, Permission, PermissionLike, formatPerms, parsePerm } from './perms';

const NUL = Buffer.from([0]);

/** One string and its NUL: the payload of every request that names only a path. */
function nulTerminated(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

/** Each part followed by a NUL: joinNul('a', 'b') = "a\0b\0". */
export function joinNul(...parts: (string | Buffer)[]): Buffer {
  if (parts.length === 0) return Buffer.alloc(0);
  // The usual case, all strings: one allocation instead of one per part plus a concat.
  if (parts.every((p) => typeof p === 'string')) return Buffer.from(parts.join('\0') + '\0', 'utf8');
  const bufs: Buffer[] = [];
  for (const p of parts) {
    bufs.push(typeof p === 'string' ? Buffer.from(p, 'utf8') : p, NUL);
  }
  return Buffer.concat(bufs);
}

/** NUL-separated strings; one trailing empty string (from a final NUL) is dropped. */
export function splitNul(buf: Buffer): string[] {
  if (buf.length === 0) return [];
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const i = buf.indexOf(0, start);
    if (i < 0) {
      out.push(buf.toString('utf8', start));
      break;
    }
    out.push(buf.toString('utf8', start, i));
    start = i + 1;
    if (start === buf.length) break; // the trailing NUL: no empty string after it
  }
  return out;
}

function malformed(type: number, detail: string, path?: string): ProtocolError {
  return new ProtocolError('malformed-payload', `malformed ${messageTypeName(type)} payload: ${detail}`, {
    op: messageTypeName(type),
    path,
  });
}

/** Bytes of a value: strings are UTF-8. */
export function valueBytes(value: string | Uint8Array): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function u32String(what: string, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be a uint32, got ${n}`);
  return String(n);
}

/** docs/misc/xenstore.txt: "<domid> Integer domid, represented as decimal number 0..65535". */
function domidString(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > DOMID_MAX) throw new RangeError(`domid must be an integer in 0..${DOMID_MAX}, got ${n}`);
  return String(n);
}

/** C xenstored reads the watch depth with atoi() into an int and refuses negatives. */
const WATCH_DEPTH_MAX = 0x7fffffff;

function depthString(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > WATCH_DEPTH_MAX) throw new RangeError(`watch depth must be an integer in 0..${WATCH_DEPTH_MAX}, got ${n}`);
  return String(n);
}

/**
 * A quota name travels as a NUL-terminated string, and GET_QUOTA's list separates names with
 * blanks: refuse NUL, blanks and the empty name before anything is sent.
 */
function quotaName(name: string, op: string): string {
  if (typeof name !== 'string' || !/^[^\0\s]+$/.test(name)) {
    throw new XenstoreError('EINVAL', { op, source: 'client', detail: `quota name ${JSON.stringify(name)}: a non-empty name without NUL or blanks` });
  }
  return name;
}

function u64String(what: string, n: number | bigint): string {
  const b = typeof n === 'bigint' ? n : Number.isInteger(n) && n >= 0 ? BigInt(n) : -1n;
  if (b < 0n || b > 0xffffffffffffffffn) throw new RangeError(`${what} must be a uint64, got ${n}`);
  return b.toString();
}

// ----------------------------------------------------------------------------------------
// Request builders: each returns the payload for its message type.

export const request = {
  directory: (path: string) => nulTerminated(path),
  /** `offset` is the byte offset into the listing to continue from. */
  directoryPart: (path: string, offset: number) => joinNul(path, u32String('offset', offset)),
  read: (path: string) => nulTerminated(path),
  getPerms: (path: string) => nulTerminated(path),
  /**
   * `depth` (Xen 4.22, XENSTORE_SERVER_FEATURE_WATCHDEPTH): how many levels below `path` still
   * fire; 0 = the node itself only. Without it every descendant fires.
   */
  watch: (path: string, token: string, depth?: number) =>
    depth === undefined ? joinNul(path, token) : joinNul(path, token, depthString(depth)),
  unwatch: (path: string, token: string) => joinNul(path, token),
  /** An empty string: a single NUL. */
  transactionStart: () => joinNul(''),
  transactionEnd: (commit: boolean) => joinNul(commit ? 'T' : 'F'),
  introduce: (domid: number, mfn: number | bigint, port: number) =>
    joinNul(u32String('domid', domid), u64String('mfn', mfn), u32String('port', port)),
  release: (domid: number) => joinNul(u32String('domid', domid)),
  getDomainPath: (domid: number) => joinNul(u32String('domid', domid)),
  /** path NUL then the value bytes, with no trailing NUL. */
  write: (path: string, value: string | Uint8Array) => Buffer.concat([Buffer.from(path, 'utf8'), NUL, valueBytes(value)]),
  mkdir: (path: string) => nulTerminated(path),
  rm: (path: string) => nulTerminated(path),
  setPerms: (path: string, perms: readonly PermissionLike[]) => joinNul(path, ...formatPerms(perms)),
  isDomainIntroduced: (domid: number) => joinNul(u32String('domid', domid)),
  resume: (domid: number) => joinNul(u32String('domid', domid)),
  setTarget: (domid: number, target: number) => joinNul(u32String('domid', domid), u32String('target', target)),
  resetWatches: () => joinNul(''),
  /** CONTROL: the command and its arguments, each NUL-terminated (as xenstore-control sends). */
  control: (command: string, ...args: (string | Buffer)[]) => joinNul(command, ...args),
  /**
   * GET_FEATURE `[<domid>|]`: without a domid, the features of the asking connection. That is
   * an empty payload (as libxenstore sends it): a lone NUL would be an empty domid, which
   * C xenstored's strtoul() reads as domain 0.
   */
  getFeature: (domid?: number) => (domid === undefined ? Buffer.alloc(0) : joinNul(domidString(domid))),
  /** SET_FEATURE `<domid>|<value>|`: the feature bitmap as a decimal number. */
  setFeature: (domid: number, features: number) => joinNul(domidString(domid), u32String('features', features)),
  /**
   * GET_QUOTA `[[<domid>|]<quota>|]`: nothing = the list of quota names; a name alone = the
   * global (default) value; domid and name = that domain's value. A domid needs a name.
   */
  getQuota: (domid?: number, quota?: string) => {
    if (quota === undefined) {
      if (domid !== undefined) throw new RangeError('GET_QUOTA with a domid needs a quota name');
      return Buffer.alloc(0);
    }
    const name = quotaName(quota, 'GET_QUOTA');
    return domid === undefined ? joinNul(name) : joinNul(domidString(domid), name);
  },
  /** SET_QUOTA `[<domid>|]<quota>|<value>|`: without a domid, the global (default) value. */
  setQuota: (domid: number | undefined, quota: string, value: number) => {
    const name = quotaName(quota, 'SET_QUOTA');
    const v = u32String('quota value', value);
    return domid === undefined ? joinNul(name, v) : joinNul(domidString(domid), name, v);
  },
} as const;

// ----------------------------------------------------------------------------------------
// Reply parsers. Each throws ProtocolError('malformed-payload') on a payload its type forbids.

/** The acknowledgement "OK\0" (accepted without the NUL too). */
export function parseOk(payload: Buffer, type: number = MessageType.WRITE): void {
  const s = payload.toString('latin1');
  if (s !== 'OK\0' && s !== 'OK') throw malformed(type, `expected "OK", got ${JSON.stringify(s.slice(0, 40))}`);
}

/** A single NUL-terminated string (GET_DOMAIN_PATH, CONTROL replies); NUL optional. */
export function parseString(payload: Buffer): string {
  const end = payload.length > 0 && payload[payload.length - 1] === 0 ? payload.length - 1 : payload.length;
  return payload.toString('utf8', 0, end);
}

/** DIRECTORY: children names, each NUL-terminated. */
export function parseDirectory(payload: Buffer): string[] {
  return splitNul(payload);
}

export interface DirectoryPartReply {
  /** Node generation count; a change between chunks means "start over". */
  generation: string;
  children: string[];
  /** True for the final chunk (it ends in an empty name: a double NUL). */
  done: boolean;
  /** Bytes of children this chunk covered: add to the offset for the next request. */
  consumed: number;
}

/** DIRECTORY_PART: `generation\0child\0child\0...`, the last chunk ending in `\0\0`. */
export function parseDirectoryPart(payload: Buffer): DirectoryPartReply {
  const g = payload.indexOf(0);
  if (g < 0) throw malformed(MessageType.DIRECTORY_PART, 'no generation');
  const generation = payload.toString('latin1', 0, g);
  if (!/^\d+$/.test(generation)) throw malformed(MessageType.DIRECTORY_PART, `generation ${JSON.stringify(generation)} is not a number`);
  const rest = payload.subarray(g + 1);
  // The final chunk is marked by an empty child: the listing ends in a double NUL (C xenstored
  // sends "gen\0\0" for an empty remainder).
  const done = rest.length === 0 || (rest.length >= 1 && rest[rest.length - 1] === 0 && (rest.length === 1 || rest[rest.length - 2] === 0));
  const children = splitNul(rest);
  if (done && children.length > 0 && children[children.length - 1] === '') children.pop();
  const consumed = done ? 0 : rest.length;
  return { generation, children, done, consumed };
}

/** TRANSACTION_START: the decimal id, NUL-terminated. */
export function parseTransactionStart(payload: Buffer): number {
  const s = parseString(payload);
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0xffffffff || Number(s) === 0) {
    throw malformed(MessageType.TRANSACTION_START, `transaction id ${JSON.stringify(s.slice(0, 20))}`);
  }
  return Number(s);
}

/** IS_DOMAIN_INTRODUCED: "T" or "F". */
export function parseBool(payload: Buffer, type: number = MessageType.IS_DOMAIN_INTRODUCED): boolean {
  const s = parseString(payload);
  if (s === 'T') return true;
  if (s === 'F') return false;
  throw malformed(type, `expected "T" or "F", got ${JSON.stringify(s.slice(0, 20))}`);
}

/**
 * GET_FEATURE (the feature bitmap) and GET_QUOTA of one quota (its value): an unsigned
 * decimal number, NUL-terminated.
 */
export function parseDecimal(payload: Buffer, type: number): number {
  const s = parseString(payload);
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0xffffffff) throw malformed(type, `expected an unsigned decimal number, got ${JSON.stringify(s.slice(0, 20))}`);
  return Number(s);
}

/** GET_QUOTA with no argument: the quota names the daemon knows, separated by blanks. */
export function parseQuotaNames(payload: Buffer): string[] {
  const s = parseString(payload);
  if (s.includes('\0')) throw malformed(MessageType.GET_QUOTA, 'NUL inside the list of quota names');
  return s.split(' ').filter((n) => n !== '');
}

/** GET_PERMS: permission strings, each NUL-terminated. */
export function parseGetPerms(payload: Buffer, path?: string): Permission[] {
  const list = splitNul(payload);
  if (list.length === 0) throw malformed(MessageType.GET_PERMS, 'empty permission list', path);
  try {
    return list.map(parsePerm);
  } catch (e) {
    throw malformed(MessageType.GET_PERMS, (e as Error).message, path);
  }
}

export interface WatchEvent {
  path: string;
  token: string;
}

/** WATCH_EVENT: `path\0token\0`. */
export function parseWatchEvent(payload: Buffer): WatchEvent {
  const parts = splitNul(payload);
  if (parts.length < 2) throw malformed(MessageType.WATCH_EVENT, `expected path and token, got ${parts.length} field(s)`);
  return { path: parts[0], token: parts[1] };
}

/**
 * ERROR: the errno name, NUL-terminated. Returns the name; throws ProtocolError
 * ('unknown-error-name', keeping the raw name) for a name outside xsd_errors.
 */
export function parseErrorName(payload: Buffer, op?: string, path?: string): string {
  const name = parseString(payload);
  if (!isXsErrnoName(name)) {
    throw new ProtocolError('unknown-error-name', `daemon answered ERROR ${JSON.stringify(name.slice(0, 40))}, not one of ${XS_ERRNO_NAMES.join(' ')}`, {
      op,
      path,
      rawName: name,
    });
  }
  return name;
}

// ----------------------------------------------------------------------------------------
// Request parsers, for servers and tracers: what a client asked, by type.

export type DecodedRequest =
  | { type: MessageType.DIRECTORY | MessageType.READ | MessageType.GET_PERMS | MessageType.MKDIR | MessageType.RM; path: string }
  | { type: MessageType.DIRECTORY_PART; path: string; offset: number }
  | { type: MessageType.WATCH; path: string; token: string; depth?: number }
  | { type: MessageType.UNWATCH; path: string; token: string }
  | { type: MessageType.TRANSACTION_START | MessageType.RESET_WATCHES }
  | { type: MessageType.TRANSACTION_END; commit: boolean }
  | { type: MessageType.INTRODUCE; domid: number; mfn: bigint; port: number }
  | { type: MessageType.RELEASE | MessageType.GET_DOMAIN_PATH | MessageType.IS_DOMAIN_INTRODUCED | MessageType.RESUME; domid: number }
  | { type: MessageType.WRITE; path: string; value: Buffer }
  | { type: MessageType.SET_PERMS; path: string; perms: Permission[] }
  | { type: MessageType.SET_TARGET; domid: number; target: number }
  | { type: MessageType.CONTROL; args: string[] }
  // Types 23-26 keep `args` (their raw strings) beside the decoded fields.
  | { type: MessageType.GET_FEATURE; args: string[]; domid?: number }
  | { type: MessageType.SET_FEATURE; args: string[]; domid: number; features: number }
  | { type: MessageType.GET_QUOTA; args: string[]; domid?: number; quota?: string }
  | { type: MessageType.SET_QUOTA; args: string[]; domid?: number; quota: string; value: number };

function decimal(type: number, what: string, s: string | undefined, max: number): number {
  if (s === undefined || !/^\d{1,10}$/.test(s) || Number(s) > max) throw malformed(type, `${what} ${JSON.stringify(s ?? '(missing)')}`);
  return Number(s);
}

function requestQuotaName(type: number, s: string): string {
  if (s === '' || /\s/.test(s)) throw malformed(type, `quota name ${JSON.stringify(s.slice(0, 40))}`);
  return s;
}

/**
 * Parses a request payload for `type`. Throws ProtocolError ('malformed-payload') when the
 * fields are missing or not numbers, ('unknown-message-type') for types no request uses.
 * Path validity is not checked here (see paths.ts): a server answers EINVAL for those.
 */
export function parseRequest(type: number, payload: Buffer): DecodedRequest {
  switch (type) {
    case MessageType.DIRECTORY:
    case MessageType.READ:
    case MessageType.GET_PERMS:
    case MessageType.MKDIR:
    case MessageType.RM: {
      const [path] = splitNul(payload);
      if (path === undefined) throw malformed(type, 'missing path');
      return { type, path };
    }
    case MessageType.DIRECTORY_PART: {
      const [path, off] = splitNul(payload);
      if (path === undefined) throw malformed(type, 'missing path');
      return { type, path, offset: decimal(type, 'offset', off, 0xffffffff) };
    }
    case MessageType.WATCH: {
      // `<wpath>|<token>|[<depth>|]`: the depth exists from Xen 4.22 on.
      const parts = splitNul(payload);
      const [path, token, depth] = parts;
      if (path === undefined || token === undefined) throw malformed(type, 'expected path and token');
      if (parts.length > 3) throw malformed(type, `expected path, token and an optional depth, got ${parts.length} fields`);
      if (depth === undefined) return { type, path, token };
      return { type, path, token, depth: decimal(type, 'depth', depth, WATCH_DEPTH_MAX) };
    }
    case MessageType.UNWATCH: {
      const [path, token] = splitNul(payload);
      if (path === undefined || token === undefined) throw malformed(type, 'expected path and token');
      return { type, path, token };
    }
    case MessageType.TRANSACTION_START:
    case MessageType.RESET_WATCHES:
      return { type };
    case MessageType.TRANSACTION_END: {
      const s = parseString(payload);
      if (s !== 'T' && s !== 'F') throw malformed(type, `expected "T" or "F", got ${JSON.stringify(s.slice(0, 20))}`);
      return { type, commit: s === 'T' };
    }
    case MessageType.INTRODUCE: {
      const [d, m, p] = splitNul(payload);
      if (m === undefined || !/^\d{1,20}$/.test(m)) throw malformed(type, `mfn ${JSON.stringify(m ?? '(missing)')}`);
      return { type, domid: decimal(type, 'domid', d, 0xffff), mfn: BigInt(m), port: decimal(type, 'port', p, 0xffffffff) };
    }
    case MessageType.RELEASE:
    case MessageType.GET_DOMAIN_PATH:
    case MessageType.IS_DOMAIN_INTRODUCED:
    case MessageType.RESUME: {
      const [d] = splitNul(payload);
      return { type, domid: decimal(type, 'domid', d, 0xffff) };
    }
    case MessageType.WRITE: {
      const i = payload.indexOf(0);
      if (i < 0) throw malformed(type, 'no NUL after the path');
      return { type, path: payload.toString('utf8', 0, i), value: payload.subarray(i + 1) };
    }
    case MessageType.SET_PERMS: {
      const [path, ...list] = splitNul(payload);
      if (path === undefined || list.length === 0) throw malformed(type, 'expected path and at least one permission');
      try {
        return { type, path, perms: list.map(parsePerm) };
      } catch (e) {
        throw malformed(type, (e as Error).message, path);
      }
    }
    case MessageType.SET_TARGET: {
      const [d, tgt] = splitNul(payload);
      return { type, domid: decimal(type, 'domid', d, 0xffff), target: decimal(type, 'target', tgt, 0xffff) };
    }
    case MessageType.CONTROL:
      return { type, args: splitNul(payload) };
    case MessageType.GET_FEATURE: {
      const args = splitNul(payload);
      if (args.length > 1) throw malformed(type, `expected at most a domid, got ${args.length} fields`);
      return args.length === 0 ? { type, args } : { type, args, domid: decimal(type, 'domid', args[0], DOMID_MAX) };
    }
    case MessageType.SET_FEATURE: {
      const args = splitNul(payload);
      if (args.length !== 2) throw malformed(type, `expected domid and value, got ${args.length} field(s)`);
      return { type, args, domid: decimal(type, 'domid', args[0], DOMID_MAX), features: decimal(type, 'features', args[1], 0xffffffff) };
    }
    case MessageType.GET_QUOTA: {
      const args = splitNul(payload);
      if (args.length === 0) return { type, args };
      if (args.length === 1) return { type, args, quota: requestQuotaName(type, args[0]) };
      if (args.length === 2) return { type, args, domid: decimal(type, 'domid', args[0], DOMID_MAX), quota: requestQuotaName(type, args[1]) };
      throw malformed(type, `expected at most domid and quota, got ${args.length} fields`);
    }
    case MessageType.SET_QUOTA: {
      const args = splitNul(payload);
      if (args.length === 2) return { type, args, quota: requestQuotaName(type, args[0]), value: decimal(type, 'value', args[1], 0xffffffff) };
      if (args.length === 3) {
        return { type, args, domid: decimal(type, 'domid', args[0], DOMID_MAX), quota: requestQuotaName(type, args[1]), value: decimal(type, 'value', args[2], 0xffffffff) };
      }
      throw malformed(type, `expected [domid] quota value, got ${args.length} field(s)`);
    }
    default:
      throw new ProtocolError('unknown-message-type', `${messageTypeName(type)} is not a request type`, { op: messageTypeName(type) });
  }
}

// ----------------------------------------------------------------------------------------
// Replies by type, for tools (tracers, proxies): what the daemon answered.

/** Request types whose success reply is "OK" (docs/misc/xenstore.txt: no reply format given). */
export const OK_REPLY_TYPES: ReadonlySet<number> = new Set([
  MessageType.WATCH,
  MessageType.UNWATCH,
  MessageType.TRANSACTION_END,
  MessageType.INTRODUCE,
  MessageType.RELEASE,
  MessageType.WRITE,
  MessageType.MKDIR,
  MessageType.RM,
  MessageType.SET_PERMS,
  MessageType.RESUME,
  MessageType.SET_TARGET,
  MessageType.RESET_WATCHES,
  MessageType.SET_FEATURE,
  MessageType.SET_QUOTA,
]);

type OkReplyType =
  | MessageType.WATCH
  | MessageType.UNWATCH
  | MessageType.TRANSACTION_END
  | MessageType.INTRODUCE
  | MessageType.RELEASE
  | MessageType.WRITE
  | MessageType.MKDIR
  | MessageType.RM
  | MessageType.SET_PERMS
  | MessageType.RESUME
  | MessageType.SET_TARGET
  | MessageType.RESET_WATCHES
  | MessageType.SET_FEATURE
  | MessageType.SET_QUOTA;

export type DecodedReply =
  | { type: OkReplyType }
  | { type: MessageType.READ; value: Buffer }
  | { type: MessageType.DIRECTORY; children: string[] }
  | ({ type: MessageType.DIRECTORY_PART } & DirectoryPartReply)
  | { type: MessageType.GET_PERMS; perms: Permission[] }
  | { type: MessageType.TRANSACTION_START; txId: number }
  | { type: MessageType.GET_DOMAIN_PATH; path: string }
  | { type: MessageType.IS_DOMAIN_INTRODUCED; introduced: boolean }
  | { type: MessageType.CONTROL; text: string }
  | { type: MessageType.WATCH_EVENT; path: string; token: string }
  | { type: MessageType.ERROR; error: string }
  | { type: MessageType.GET_FEATURE; features: number }
  /** A decimal answers GET_QUOTA of one quota (`value`); anything else is the list of names. */
  | { type: MessageType.GET_QUOTA; value: number }
  | { type: MessageType.GET_QUOTA; names: string[] };

/**
 * Parses a daemon -> client payload of `type` (a reply has its request's type; events and
 * errors their own). Throws ProtocolError: 'malformed-payload' for a payload its type forbids,
 * 'unknown-error-name' for an ERROR outside xsd_errors, 'unknown-message-type' otherwise.
 */
export function parseReply(type: number, payload: Buffer): DecodedReply {
  if (OK_REPLY_TYPES.has(type)) {
    parseOk(payload, type);
    return { type: type as OkReplyType };
  }
  switch (type) {
    case MessageType.READ:
      return { type, value: payload };
    case MessageType.DIRECTORY:
      return { type, children: parseDirectory(payload) };
    case MessageType.DIRECTORY_PART:
      return { type, ...parseDirectoryPart(payload) };
    case MessageType.GET_PERMS:
      return { type, perms: parseGetPerms(payload) };
    case MessageType.TRANSACTION_START:
      return { type, txId: parseTransactionStart(payload) };
    case MessageType.GET_DOMAIN_PATH:
      return { type, path: parseString(payload) };
    case MessageType.IS_DOMAIN_INTRODUCED:
      return { type, introduced: parseBool(payload, type) };
    case MessageType.CONTROL:
      return { type, text: parseString(payload) };
    case MessageType.WATCH_EVENT:
      return { type, ...parseWatchEvent(payload) };
    case MessageType.ERROR:
      return { type, error: parseErrorName(payload) };
    case MessageType.GET_FEATURE:
      return { type, features: parseDecimal(payload, type) };
    case MessageType.GET_QUOTA:
      return /^\d+\0?$/.test(payload.toString('latin1')) ? { type, value: parseDecimal(payload, type) } : { type, names: parseQuotaNames(payload) };
    default:
      throw new ProtocolError('unknown-message-type', `${messageTypeName(type)} is not a reply type`, { op: messageTypeName(type) });
  }
}
