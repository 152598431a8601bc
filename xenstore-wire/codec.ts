/**
 * The xenstore message header (xs_wire.h `struct xsd_sockmsg`): no I/O here, bytes in and out.
 *
 *   uint32_t type;   XS_??? (MessageType)
 *   uint32_t req_id; echoed in the reply, for matching
 *   uint32_t tx_id;  transaction id, 0 outside transactions
 *   uint32_t len;    payload bytes that follow
 *
 * The integers are in the host's byte order (xenstored and the kernel driver run on the same
 * machine as the client): little endian on x86_64 and arm64.
 */
import { endianness } from 'node:os';
import { XS_HEADER_SIZE } from './constants';

export interface Frame {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export interface FrameHeader {
  type: number;
  reqId: number;
  txId: number;
  len: number;
}

/** Host byte order of the header fields. */
export const HOST_LITTLE_ENDIAN = endianness() === 'LE';

const UINT32_MAX = 0xffffffff;

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) {
    throw new RangeError(`xenstore header field ${name} must be a uint32, got ${v}`);
  }
}

/**
 * The header is assembled in a Uint32Array, whose elements are in the host's byte order: the
 * order the protocol uses. Copying its 16 bytes with TypedArray.set() is a built-in, where four
 * Buffer.writeUInt32LE() calls run as interpreted JavaScript in a fresh process (the client's
 * first requests; see docs/notes/xenstore-client-wave2.md).
 */
const headerWords = new Uint32Array(4);
const headerBytes = new Uint8Array(headerWords.buffer);

/**
 * @internal One frame of `type`, header and payload in one new buffer. The fields are trusted
 * to be uint32 (encodeFrame checks them for callers from outside).
 */
export function frameOf(type: number, reqId: number, txId: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(XS_HEADER_SIZE + payload.length);
  headerWords[0] = type;
  headerWords[1] = reqId;
  headerWords[2] = txId;
  headerWords[3] = payload.length;
  out.set(headerBytes, 0);
  out.set(payload, XS_HEADER_SIZE);
  return out;
}

/** Node's native latin1 writer (a method of every Buffer since Node 0.x, not in @types/node). */
type Latin1Writer = { latin1Write(s: string, offset: number): number };
const NATIVE_LATIN1 = typeof (Buffer.prototype as unknown as Partial<Latin1Writer>).latin1Write === 'function';

/** Bytes one path request occupies: header, path, NUL. */
export const pathFrameSize = (function pathFrameSize(path: string): number {
  return XS_HEADER_SIZE + path.length + 1;
});

/**
 * @internal Writes one frame whose payload is `path` and its NUL (READ, DIRECTORY, ...) into
 * `dst` at `at`, which must have pathFrameSize(path) bytes free; returns where it ends. `path`
 * must be a valid xenstore path: ASCII only (paths.ts), so latin1 is its UTF-8. Builds the
 * request in place, without an intermediate payload buffer. Parenthesized (here and in
 * pathFrameSize): V8 compiles it when the module loads, not inside the first request.
 */
export const writePathFrame = (function writePathFrame(dst: Buffer, at: number, type: number, reqId: number, txId: number, path: string): number {
  headerWords[0] = type;
  headerWords[1] = reqId;
  headerWords[2] = txId;
  headerWords[3] = path.length + 1;
  dst.set(headerBytes, at);
  const p = at + XS_HEADER_SIZE;
  if (NATIVE_LATIN1) (dst as unknown as Latin1Writer).latin1Write(path, p);
  else dst.write(path, p, 'latin1');
  const end = p + path.length;
  dst[end] = 0;
  return end + 1;
});

/** Header then payload; `len` is filled from the payload, last, as in the wire struct. */
export function encodeFrame(frame: Frame): Buffer {
  checkU32('type', frame.type);
  checkU32('reqId', frame.reqId);
  checkU32('txId', frame.txId);
  return frameOf(frame.type, frame.reqId, frame.txId, frame.payload);
}

/** Reads the 16-byte header at `offset`; throws RangeError if fewer than 16 bytes remain. */
export function decodeHeader(buf: Buffer, offset = 0): FrameHeader {
  if (offset < 0 || buf.length - offset < XS_HEADER_SIZE) {
    throw new RangeError(`a xenstore header needs ${XS_HEADER_SIZE} bytes, ${Math.max(0, buf.length - offset)} available`);
  }
  // Plain reads rather than binary-parser: this runs once per message, and a generated
  // binary-parser parse (a DataView and an object per call) measured 12 % of the client's CPU
  // in a pipelined-read profile, for four integers.
  if (HOST_LITTLE_ENDIAN) {
    return {
      type: buf.readUInt32LE(offset),
      reqId: buf.readUInt32LE(offset + 4),
      txId: buf.readUInt32LE(offset + 8),
      len: buf.readUInt32LE(offset + 12),
    };
  }
  return {
    type: buf.readUInt32BE(offset),
    reqId: buf.readUInt32BE(offset + 4),
    txId: buf.readUInt32BE(offset + 8),
    len: buf.readUInt32BE(offset + 12),
  };
}
