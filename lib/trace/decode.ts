/**
 * Payload decoding for display: fills a TraceRecord's fields from one frame, using the
 * xenstore-wire payload parsers. Never throws on bad input: what does not parse becomes a
 * warning and the raw fields, because a tracer must show misuse, not stop at it.
 */
import { Frame } from '../../xenstore-wire/codec';
import {
  MessageType,
  XENSTORE_PAYLOAD_MAX,
  XenstoreFeature,
  isKnownMessageType,
  messageTypeName,
} from '../../xenstore-wire/constants';
import { ProtocolError } from '../../xenstore-wire/errors';
import { pathProblem } from '../../xenstore-wire/paths';
import {
  parseBool,
  parseDecimal,
  parseDirectory,
  parseDirectoryPart,
  parseErrorName,
  parseGetPerms,
  OK_REPLY_TYPES,
  parseOk,
  parseQuotaNames,
  parseRequest,
  parseString,
  parseTransactionStart,
  parseWatchEvent,
  splitNul,
} from '../../xenstore-wire/payload';
import { TraceRecord, TraceWarning } from './record';


/** A feature bitmap (GET_FEATURE, SET_FEATURE) with the names of its XENSTORE_SERVER_FEATURE_* bits. */
export function featureText(bits: number): string {
  const names = Object.entries(XenstoreFeature)
    .filter(([, b]) => (bits & b) !== 0)
    .map(([n]) => n);
  const known = Object.values(XenstoreFeature).reduce((a, b) => a | b, 0);
  const other = bits & ~known;
  if (other !== 0) names.push(`0x${(other >>> 0).toString(16)}`);
  return `${bits} (${names.length ? names.join('|') : 'none'})`;
}

/** Requests whose payload starts with a path. */
const PATH_FIRST: ReadonlySet<number> = new Set([
  MessageType.DIRECTORY,
  MessageType.DIRECTORY_PART,
  MessageType.READ,
  MessageType.GET_PERMS,
  MessageType.WATCH,
  MessageType.UNWATCH,
  MessageType.WRITE,
  MessageType.MKDIR,
  MessageType.RM,
  MessageType.SET_PERMS,
]);

/** Requests whose path may be a special `@...` name: watches and their permissions. */
const SPECIAL_OK: ReadonlySet<number> = new Set([
  MessageType.WATCH,
  MessageType.UNWATCH,
  MessageType.GET_PERMS,
  MessageType.SET_PERMS,
]);

function warn(rec: TraceRecord, w: TraceWarning): void {
  rec.warnings.push(w);
}

function detail(e: unknown): string {
  if (e instanceof ProtocolError) return e.message;
  const x = e as { message?: string; code?: string };
  return x?.message ?? String(e);
}

/** Header-level checks shared by every message. */
function checkHeader(rec: TraceRecord, frame: Frame, fromClient: boolean): void {
  if (!isKnownMessageType(frame.type)) {
    warn(rec, { code: 'unknown-type', message: `type ${frame.type} is not in xs_wire.h` });
  }
  if (frame.payload.length > XENSTORE_PAYLOAD_MAX) {
    if (fromClient) {
      warn(rec, {
        code: 'payload-over-limit',
        message: `request payload of ${frame.payload.length} bytes is over XENSTORE_PAYLOAD_MAX (${XENSTORE_PAYLOAD_MAX}); C xenstored drops the connection`,
      });
    } else {
      warn(rec, {
        code: 'oversized-reply',
        message: `reply payload of ${frame.payload.length} bytes is over XENSTORE_PAYLOAD_MAX (${XENSTORE_PAYLOAD_MAX}); libxenstore and pyxs reject it`,
      });
    }
  }
}

function checkPath(rec: TraceRecord, path: string, type: number): void {
  const problem = pathProblem(path, { allowSpecial: SPECIAL_OK.has(type) });
  if (problem !== null) warn(rec, { code: 'malformed-path', message: `path ${JSON.stringify(path)}: ${problem}` });
}

/** Fills `rec` from a client -> daemon frame. */
export function decodeRequest(rec: TraceRecord, frame: Frame): void {
  checkHeader(rec, frame, true);
  if (!isKnownMessageType(frame.type)) {
    rec.args = splitNul(frame.payload);
    return;
  }
  let r;
  try {
    r = parseRequest(frame.type, frame.payload);
  } catch (e) {
    warn(rec, { code: 'malformed-payload', message: detail(e) });
    rec.args = splitNul(frame.payload);
    // The path still says what the request was about (and its reply and --path use it).
    if (PATH_FIRST.has(frame.type) && rec.args.length > 0) rec.path = rec.args.shift();
    return;
  }
  switch (r.type) {
    case MessageType.DIRECTORY:
    case MessageType.READ:
    case MessageType.GET_PERMS:
    case MessageType.MKDIR:
    case MessageType.RM:
      rec.path = r.path;
      break;
    case MessageType.DIRECTORY_PART:
      rec.path = r.path;
      rec.args = [String(r.offset)];
      break;
    case MessageType.WATCH:
      rec.path = r.path;
      rec.token = r.token;
      if (r.depth !== undefined) rec.depth = r.depth;
      break;
    case MessageType.UNWATCH:
      rec.path = r.path;
      rec.token = r.token;
      break;
    case MessageType.GET_FEATURE:
      if (r.domid !== undefined) rec.domid = r.domid;
      break;
    case MessageType.SET_FEATURE:
      rec.domid = r.domid;
      rec.args = [`features ${featureText(r.features)}`];
      break;
    case MessageType.GET_QUOTA:
      if (r.domid !== undefined) rec.domid = r.domid;
      if (r.quota !== undefined) rec.args = [r.quota];
      break;
    case MessageType.SET_QUOTA:
      if (r.domid !== undefined) rec.domid = r.domid;
      rec.args = [`${r.quota} = ${r.value}`];
      break;
    case MessageType.TRANSACTION_START:
    case MessageType.RESET_WATCHES:
      break;
    case MessageType.TRANSACTION_END:
      rec.result = r.commit ? 'T' : 'F';
      break;
    case MessageType.INTRODUCE:
      rec.domid = r.domid;
      rec.args = [`mfn ${r.mfn}`, `port ${r.port}`];
      break;
    case MessageType.RELEASE:
    case MessageType.GET_DOMAIN_PATH:
    case MessageType.IS_DOMAIN_INTRODUCED:
    case MessageType.RESUME:
      rec.domid = r.domid;
      break;
    case MessageType.WRITE:
      rec.path = r.path;
      rec.value = r.value;
      break;
    case MessageType.SET_PERMS:
      rec.path = r.path;
      rec.perms = r.perms.map((p) => `${p.access}${p.domid}`);
      break;
    case MessageType.SET_TARGET:
      rec.domid = r.domid;
      rec.args = [`target ${r.target}`];
      break;
    default:
      rec.args = r.args;
  }
  if (rec.path !== undefined) checkPath(rec, rec.path, frame.type);
}

/**
 * Fills `rec` from a daemon -> client frame answering a request of type `reqType`
 * (undefined when no request was found: the frame is decoded by its own type). `quotaAsked`:
 * the GET_QUOTA request named a quota (the reply is its value, not the list of names).
 */
export function decodeReply(rec: TraceRecord, frame: Frame, reqType: number | undefined, quotaAsked = false): void {
  checkHeader(rec, frame, false);
  const p = frame.payload;
  if (frame.type === MessageType.ERROR) {
    try {
      rec.error = parseErrorName(p);
    } catch (e) {
      rec.error = parseString(p);
      warn(rec, { code: 'unknown-error-name', message: detail(e) });
    }
    return;
  }
  const as = reqType ?? frame.type;
  if (reqType !== undefined && frame.type !== reqType) {
    warn(rec, {
      code: 'reply-type-mismatch',
      message: `${messageTypeName(frame.type)} reply to a ${messageTypeName(reqType)} request`,
    });
    rec.args = splitNul(p);
    return;
  }
  try {
    switch (as) {
      case MessageType.READ:
      case MessageType.CONTROL:
        rec.value = p;
        break;
      case MessageType.DIRECTORY:
        rec.children = parseDirectory(p);
        break;
      case MessageType.DIRECTORY_PART: {
        const d = parseDirectoryPart(p);
        rec.children = d.children;
        rec.result = `generation ${d.generation}${d.done ? ', last chunk' : ''}`;
        break;
      }
      case MessageType.GET_PERMS:
        parseGetPerms(p);
        rec.perms = splitNul(p);
        break;
      case MessageType.TRANSACTION_START:
        rec.result = String(parseTransactionStart(p));
        break;
      case MessageType.GET_DOMAIN_PATH:
        rec.result = parseString(p);
        break;
      case MessageType.IS_DOMAIN_INTRODUCED:
        rec.result = parseBool(p) ? 'T' : 'F';
        break;
      case MessageType.GET_FEATURE:
        rec.result = featureText(parseDecimal(p, MessageType.GET_FEATURE));
        break;
      case MessageType.GET_QUOTA:
        // The names when none was asked for, else one value (quota set at the request).
        if (quotaAsked) rec.result = String(parseDecimal(p, MessageType.GET_QUOTA));
        else rec.args = parseQuotaNames(p);
        break;
      case MessageType.WATCH_EVENT: {
        const ev = parseWatchEvent(p);
        rec.path = ev.path;
        rec.token = ev.token;
        break;
      }
      default:
        if (OK_REPLY_TYPES.has(as)) {
          parseOk(p, as);
          rec.result = 'OK';
        } else {
          rec.args = splitNul(p);
        }
    }
  } catch (e) {
    warn(rec, { code: 'malformed-payload', message: detail(e) });
    rec.args = splitNul(p);
  }
}
