/**
 * Typed errors of xenstore-wire. Every error is a value with `kind`, `code` (an errno name)
 * and the path involved, and serialises to plain JSON (for `--json` output and for logs).
 */
import { constants as osConstants } from 'node:os';
import { messageTypeName } from './constants';

export type XenstoreErrorKind = 'xenstore' | 'protocol' | 'connection';

const ERRNO_NUMBERS = osConstants.errno as Readonly<Record<string, number>>;

/** The common base: `instanceof XenstoreWireError` catches every error this package throws. */
export abstract class XenstoreWireError extends Error {
  abstract readonly kind: XenstoreErrorKind;
  /** An errno name: the daemon's for XenstoreError, the socket's for ConnectionError. */
  readonly code: string;
  /** The POSIX number of `code` on this host, when it has one. */
  readonly errno?: number;

  protected constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    // Not enumerable, like Error's own name, so toJSON/inspect show it once.
    Object.defineProperty(this, 'name', { value: new.target.name, configurable: true, writable: true });
    this.code = code;
    const n = ERRNO_NUMBERS[code];
    if (n !== undefined) this.errno = n;
  }

  /** Own enumerable fields (kind, code, op, path ...) plus the message. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, kind: this.kind, code: this.code, message: this.message };
    for (const [k, v] of Object.entries(this)) {
      if (v !== undefined && !(k in out) && k !== 'cause') out[k] = v;
    }
    if (this.cause !== undefined) {
      const c = this.cause as { toJSON?: () => unknown; message?: unknown; code?: unknown };
      out.cause = typeof c?.toJSON === 'function' ? c.toJSON() : { message: c?.message ?? String(this.cause), code: c?.code };
    }
    return out;
  }
}

export interface XenstoreErrorInit {
  /** The request's message type name, e.g. 'READ'. */
  op?: string;
  /** The xenstore path the request named, when it named one. */
  path?: string;
  /** Transaction id the request ran in (0 outside transactions). */
  txId?: number;
  /** 'daemon' when the daemon answered ERROR; 'client' when refused before sending. */
  source?: 'daemon' | 'client';
  detail?: string;
}

/**
 * An error the daemon answered (type ERROR with an errno name from xsd_errors), or one this
 * client raises itself with the same meaning before sending (E2BIG, EINVAL for bad paths).
 */
export class XenstoreError extends XenstoreWireError {
  readonly kind = 'xenstore' as const;
  readonly op?: string;
  readonly path?: string;
  readonly txId?: number;
  readonly source: 'daemon' | 'client';

  constructor(code: string, init: XenstoreErrorInit = {}) {
    const where = [init.op, init.path].filter((s) => s !== undefined && s !== '').join(' ');
    super(code, `${code}${where ? `: ${where}` : ''}${init.detail ? ` (${init.detail})` : ''}`);
    if (init.op !== undefined) this.op = init.op;
    if (init.path !== undefined) this.path = init.path;
    if (init.txId !== undefined && init.txId !== 0) this.txId = init.txId;
    this.source = init.source ?? 'daemon';
  }
}

/** What went wrong with the byte stream, for ProtocolError.reason. */
export type ProtocolErrorReason =
  | 'oversized-frame' // a header announced more than the accepted bound
  | 'unknown-error-name' // ERROR reply with a name outside xsd_errors
  | 'unexpected-reply-type' // reply type differs from the request's
  | 'unsolicited-reply' // reply to a req_id nothing is waiting for
  | 'malformed-payload' // payload does not parse for its type
  | 'unknown-message-type';

/** The peer broke the wire protocol. Code is always EPROTO; `reason` says how. */
export class ProtocolError extends XenstoreWireError {
  readonly kind = 'protocol' as const;
  readonly reason: ProtocolErrorReason;
  readonly op?: string;
  readonly path?: string;
  /** For 'unknown-error-name': the raw name the daemon sent. */
  readonly rawName?: string;

  constructor(reason: ProtocolErrorReason, message: string, extra: { op?: string; path?: string; rawName?: string } = {}) {
    super('EPROTO', message);
    this.reason = reason;
    if (extra.op !== undefined) this.op = extra.op;
    if (extra.path !== undefined) this.path = extra.path;
    if (extra.rawName !== undefined) this.rawName = extra.rawName;
  }
}

/**
 * The connection could not be made, was lost, or was closed while a request or watch was
 * outstanding. `path` is the socket or device path; `op`/`nodePath` name the request it ended.
 */
export class ConnectionError extends XenstoreWireError {
  readonly kind = 'connection' as const;
  readonly path?: string;
  readonly op?: string;
  readonly nodePath?: string;

  constructor(
    code: string,
    message: string,
    extra: { path?: string; op?: string; nodePath?: string; cause?: unknown } = {},
  ) {
    super(code, message, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    if (extra.path !== undefined) this.path = extra.path;
    if (extra.op !== undefined) this.op = extra.op;
    if (extra.nodePath !== undefined) this.nodePath = extra.nodePath;
  }

  /** A copy naming one request, so each rejected promise says which request it was. */
  forRequest(type: number, nodePath?: string): ConnectionError {
    return new ConnectionError(this.code, this.message, {
      path: this.path,
      op: messageTypeName(type),
      nodePath,
      cause: this.cause,
    });
  }
}

/** True for the error a transaction commit gets when it conflicted and must be redone. */
export function isEagain(err: unknown): err is XenstoreError {
  return err instanceof XenstoreError && err.code === 'EAGAIN';
}
