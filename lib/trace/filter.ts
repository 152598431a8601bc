/**
 * Record filters: by path prefix, message type, connection and transaction. Each given
 * criterion must match (AND); several values for one criterion are alternatives (OR).
 */
import { MessageType, isKnownMessageType } from '../../xenstore-wire/constants';
import { TraceRecord } from './record';
import { quoteInput } from '../elide';
import { usageError } from './errors';

export interface TraceFilter {
  /** Path prefixes, matched on whole components: /local/domain matches /local/domain/0. */
  paths?: string[];
  /** Type names as in xs_wire.h without XS_ (READ, TRANSACTION_START...). */
  types?: string[];
  conns?: number[];
  /** Domains of the connections (sources that tell it: daemon logs). */
  domids?: number[];
  /** Transaction ids (as returned by TRANSACTION_START). */
  txs?: number[];
}

/**
 * Normalises a type given on the command line: 'read', 'XS_READ' and '2' all mean READ.
 * Throws TraceError EINVAL for anything else.
 */
export function parseTypeName(s: string): string {
  const t = s.trim().toUpperCase().replace(/^XS_/, '');
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (isKnownMessageType(n)) return MessageType[n];
  } else if (t in MessageType && isKnownMessageType((MessageType as unknown as Record<string, number>)[t])) {
    return t;
  }
  throw usageError(`unknown message type ${quoteInput(s)} (expected a name from xs_wire.h such as READ, WRITE, TRANSACTION_START)`, '--type');
}

export function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || prefix === '') return path.startsWith('/');
  if (path === prefix) return true;
  return path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
}

export function isEmptyFilter(f: TraceFilter): boolean {
  return !f.paths?.length && !f.types?.length && !f.conns?.length && !f.txs?.length && !f.domids?.length;
}

/** Does `r` pass the filter? */
export function matches(f: TraceFilter, r: TraceRecord): boolean {
  if (f.conns?.length && !f.conns.includes(r.conn)) return false;
  if (f.domids?.length && (r.connDomid === undefined || !f.domids.includes(r.connDomid))) return false;
  const message = r.kind === 'request' || r.kind === 'reply' || r.kind === 'event';
  if (!message) {
    // Stream-level warnings always matter for their connection; connect/close lines and
    // notes only show when nothing but the connection (or its domain) is selected.
    if (r.kind === 'warning') return true;
    return !f.paths?.length && !f.types?.length && !f.txs?.length;
  }
  if (f.types?.length) {
    if (!f.types.includes(r.type ?? '') && !(r.op !== undefined && f.types.includes(r.op))) return false;
  }
  if (f.paths?.length) {
    const p = r.path;
    if (p === undefined || !f.paths.some((prefix) => pathMatches(prefix, p))) return false;
  }
  if (f.txs?.length) {
    const ids = [r.txId, r.tx?.id];
    if (!ids.some((id) => typeof id === 'number' && id !== 0 && f.txs?.includes(id))) return false;
  }
  return true;
}
