/**
 * Display records: what xs-trace shows for each message, whatever its source (the live proxy
 * or a C xenstored trace file). Produced by the I/O-free session logic (session.ts), consumed
 * by filters and formatters. Field names follow Xen's vocabulary: req_id -> reqId,
 * tx_id -> txId, a "connection" is one client socket.
 */

/** Problems xs-trace points out inline; the stream is forwarded unchanged regardless. */
export type WarningCode =
  /** Request payload over XENSTORE_PAYLOAD_MAX (the C daemon drops such a connection). */
  | 'payload-over-limit'
  /** Reply payload over XENSTORE_PAYLOAD_MAX (oxenstored's oversized DIRECTORY listings). */
  | 'oversized-reply'
  /** A path breaking the rules of docs/misc/xenstore.txt (characters, //, length...). */
  | 'malformed-path'
  /** Payload fields missing or not what the type requires. */
  | 'malformed-payload'
  /** A daemon message with no request waiting for it (req_id not outstanding). */
  | 'unknown-request'
  /** A request naming a tx_id this connection never got from TRANSACTION_START. */
  | 'unknown-transaction'
  /** Reply type neither the request's type nor ERROR. */
  | 'reply-type-mismatch'
  /** A type number outside xs_wire.h. */
  | 'unknown-type'
  /** ERROR reply with a name outside xsd_errors. */
  | 'unknown-error-name'
  /** A watch event whose token matches no registered watch. */
  | 'unknown-watch'
  /** Connection closed while requests were outstanding. */
  | 'unanswered-request'
  /** The byte stream cannot be split into messages any more; bytes are still forwarded. */
  | 'undecodable-stream'
  /** The proxy could not connect to the daemon: the client's connection is closed. */
  | 'daemon-unreachable'
  /** A trace-file line that could not be understood. */
  | 'unparsed-line'
  /** The connection closed in the middle of a message: its first bytes only were sent. */
  | 'truncated-message'
  /** C xenstored logged that it could not write this message to the client (OUT(ERR)). */
  | 'send-failed'
  /** A log line the daemon cut short (oxenstored's access-log-nb-chars): the payload is incomplete. */
  | 'truncated-line';

export interface TraceWarning {
  code: WarningCode;
  message: string;
}

export type RecordKind =
  /** Client -> daemon message. */
  | 'request'
  /** Daemon -> client message answering a request. */
  | 'reply'
  /** Daemon -> client message nobody asked for (WATCH_EVENT). */
  | 'event'
  | 'connect'
  | 'disconnect'
  /** A warning not attached to a message (e.g. stream no longer decodable). */
  | 'warning'
  /** Other lines (trace-file log lines, proxy notes). */
  | 'note';

export type TxEvent =
  | 'start' // TRANSACTION_START answered with an id
  | 'start-failed' // TRANSACTION_START answered with an ERROR
  | 'op' // an operation inside the transaction
  | 'end' // TRANSACTION_END request (commit or abort asked)
  | 'commit' // committed
  | 'abort' // aborted on request
  | 'eagain' // commit conflicted: the whole transaction must be redone
  | 'failed' // TRANSACTION_END answered with another error
  | 'abandoned'; // connection closed with the transaction open (the daemon drops it)

export interface TxInfo {
  /** null when the id is not visible (C trace files carry no tx_id). */
  id: number | null;
  event: TxEvent;
  /** For 'op': the operation's 1-based index inside the transaction. */
  opIndex?: number;
  /** For end events: operations the transaction carried. */
  ops?: number;
  /** For end events: time from TRANSACTION_START to this reply. */
  durationUs?: number;
  /** For end events: seq of the record that started it. */
  startSeq?: number;
}

export type WatchEventKind = 'register' | 'registered' | 'unregister' | 'unregistered' | 'fire';

export interface WatchInfo {
  /** Numbered per trace, in registration order: w1, w2 ... */
  id: number | null;
  path: string;
  token: string;
  event: WatchEventKind;
  /** For 'fire': seq of the WATCH request that registered it. */
  registeredSeq?: number;
}

export interface TraceRecord {
  /** Position in the trace, from 1. */
  seq: number;
  /** Microseconds since the Unix epoch. */
  tsUs: number;
  /** 's' when the source only had whole seconds (C xenstored logs), 'ms' milliseconds (oxenstored's). */
  tsPrecision?: 'us' | 'ms' | 's';
  /** Connection number, from 1, in order of appearance. */
  conn: number;
  /** The domain the connection belongs to, when the source tells it (daemon logs). */
  connDomid?: number;
  kind: RecordKind;
  /** Message type on the wire, xs_wire.h name without XS_ ('READ', 'ERROR', 'UNKNOWN(20)'). */
  type?: string;
  typeNum?: number;
  /** For replies: the type of the request answered (differs from `type` for ERROR). */
  op?: string;
  /** null: not visible in the source. */
  reqId?: number | null;
  txId?: number | null;
  /** Payload length in bytes. */
  len?: number;
  path?: string;
  /** WRITE value, READ reply, CONTROL output; raw bytes, rendered by the formatter. */
  value?: Buffer;
  token?: string;
  /** WATCH with a depth (Xen 4.22): levels below the path that still fire. */
  depth?: number;
  children?: string[];
  perms?: string[];
  /** Other string fields (CONTROL arguments, unknown types). */
  args?: string[];
  domid?: number;
  /** ERROR reply: the errno name sent by the daemon. */
  error?: string;
  /** Short reply result: 'OK', a transaction id, a domain path, 'T'/'F'. */
  result?: string;
  /** For replies: microseconds since the paired request. */
  latencyUs?: number;
  /** For replies: seq of the paired request. */
  requestSeq?: number;
  tx?: TxInfo;
  watch?: WatchInfo;
  warnings: TraceWarning[];
  /** connect/disconnect/note/warning records: free text. */
  text?: string;
}
