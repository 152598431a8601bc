/**
 * Transports carry whole encoded messages to xenstored and bytes back. The client owns one;
 * the codec and framing never see a transport.
 *
 * Discovery follows libxenstore's xs_open() order (FACTS.md section 2): XENSTORED_PATH if set,
 * else `$XENSTORED_RUNDIR/socket` (default /var/run/xenstored/socket), then /dev/xen/xenbus.
 * Each candidate is stat()ed: a Unix socket gets the socket transport, anything else (the
 * character device) the xenbus transport. /proc/xen/xenbus is never used (it deadlocks on some
 * kernels).
 */
import { stat as statCallback } from 'node:fs';
import { ConnectionError } from './errors';

export type TransportKind = 'socket' | 'xenbus';

/** What a transport reports to its owner. */
export interface TransportSink {
  /** Bytes as they arrive, in order, split anywhere. */
  onData(chunk: Buffer): void;
  /**
   * Optional, preferred by a transport that reads into a buffer it reuses: the bytes are
   * `buf[0..length)`, valid only during the call (the sink copies what it keeps). Saves a copy
   * and an allocation per read.
   */
  onBytes?(buf: Uint8Array, length: number): void;
  /**
   * The message sent for `reqId` could not be delivered, but the connection is still usable
   * (the xenbus driver refuses a single write and resets its buffer). Socket write errors are
   * connection errors and come through onClose instead.
   */
  onSendError(reqId: number, err: NodeJS.ErrnoException): void;
  /** The connection ended: `err` is null when close() ended it. Called once. */
  onClose(err: ConnectionError | null): void;
}

export interface Transport {
  readonly kind: TransportKind;
  /** The socket or device path, for error messages. */
  readonly path: string;
  /** Largest request payload this transport can carry (4096 socket, 4080 device). */
  readonly maxPayload: number;
  /**
   * True when watch events carry req_id 0 / tx_id 0. Over /dev/xen/xenbus they carry garbage;
   * the client recognises events by type on every transport anyway.
   */
  readonly eventIdsMeaningful: boolean;
  start(sink: TransportSink): void;
  /** Queues one whole encoded message (header + payload). */
  send(message: Buffer, reqId: number): void;
  /**
   * Optional fast path: queues a request whose payload is `path` and a NUL (READ, DIRECTORY
   * ...), encoded straight into the transport's output, as send() of the same frame would.
   * `path` is a valid xenstore path (ASCII) no longer than maxPayload - 1.
   */
  sendPath?(type: number, reqId: number, txId: number, path: string): void;
  /** Ends the connection; resolves when every resource is released. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_RUNDIR = '/var/run/xenstored';
export const XENBUS_DEVICE = '/dev/xen/xenbus';

/** Paths to try, in libxenstore's order. */
export function discoveryCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.XENSTORED_PATH) return [env.XENSTORED_PATH];
  return [`${env.XENSTORED_RUNDIR || DEFAULT_RUNDIR}/socket`, XENBUS_DEVICE];
}

export interface ResolvedEndpoint {
  path: string;
  kind: TransportKind;
}

/** Which transport a path needs: a Unix socket -> 'socket', anything else -> 'xenbus'. */
export function endpointKind(path: string): Promise<TransportKind> {
  // node:fs, not node:fs/promises: loading the promise API costs a fresh process ~1.5 ms.
  return new Promise((resolve, reject) => statCallback(path, (err, st) => (err ? reject(err) : resolve(st.isSocket() ? 'socket' : 'xenbus'))));
}

/**
 * The first candidate that exists. Throws ConnectionError ENOENT listing what was tried, or
 * the stat error (e.g. EACCES) of an XENSTORED_PATH that exists but cannot be used.
 */
export async function discoverEndpoint(env: NodeJS.ProcessEnv = process.env): Promise<ResolvedEndpoint> {
  const tried: string[] = [];
  for (const path of discoveryCandidates(env)) {
    try {
      return { path, kind: await endpointKind(path) };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      tried.push(`${path} (${err.code ?? err.message})`);
      if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') {
        throw new ConnectionError(err.code ?? 'EIO', `cannot use ${path}: ${err.message}`, { path, cause: err });
      }
    }
  }
  throw new ConnectionError('ENOENT', `no xenstore found; tried ${tried.join(', ')}`, { path: tried.length === 1 ? discoveryCandidates(env)[0] : undefined });
}
