/**
 * Stream -> whole messages. A small state machine (waiting for a header, then for `len`
 * payload bytes) fed with whatever chunks the transport delivers, split anywhere.
 */
import { Frame, decodeHeader, FrameHeader, HOST_LITTLE_ENDIAN } from './codec';
import { XS_HEADER_SIZE, XENSTORE_PAYLOAD_MAX, messageTypeName } from './constants';
import { ProtocolError } from './errors';

/**
 * The largest reply payload a client accepts: 1 MiB.
 *
 * Requests never exceed XENSTORE_PAYLOAD_MAX (4096), but replies can: oxenstored 4.17 answers
 * DIRECTORY of a large directory with the whole listing in one payload (FACTS.md section 3),
 * which libxenstore and pyxs both reject. 1 MiB holds a listing of about 40000 children with
 * 25-character names, far more than any real dom0 has, while a corrupt or hostile length field
 * can make us buffer at most this much before the connection is declared broken.
 */
export const REPLY_PAYLOAD_BOUND = 1024 * 1024;

export interface FrameDecoderOptions {
  /** Largest accepted payload; a header announcing more is a ProtocolError. */
  maxPayload?: number;
}

/** The error for a header announcing more than `max` payload bytes (the stream is then lost). */
export function oversizedFrameError(type: number, reqId: number, len: number, max: number): ProtocolError {
  return new ProtocolError('oversized-frame', `${messageTypeName(type)} message (req_id ${reqId}) announces a ${len}-byte payload, over the ${max}-byte bound`, {
    op: messageTypeName(type),
  });
}

/** Throws RangeError unless `max` is a valid payload bound. */
export function checkPayloadBound(max: number): void {
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxPayload must be a non-negative integer, got ${max}`);
}

export class FrameDecoder {
  readonly maxPayload: number;
  /** Bytes of the frame in progress (its header, then its payload), held across chunks. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private failure: ProtocolError | null = null;

  constructor(opts: FrameDecoderOptions = {}) {
    this.maxPayload = opts.maxPayload ?? REPLY_PAYLOAD_BOUND;
    checkPayloadBound(this.maxPayload);
  }

  /** Bytes held that do not yet form a whole frame. */
  get pendingBytes(): number {
    return this.buffered + (this.header ? XS_HEADER_SIZE : 0);
  }

  /**
   * Feeds a chunk and returns every frame it completed, in stream order.
   *
   * Throws ProtocolError ('oversized-frame') as soon as a header announces more than
   * maxPayload; the buffered bytes are dropped and every later push throws the same error,
   * because after a bad length there is no way to find the next frame boundary. Frames
   * completed earlier in the same chunk are not returned in that case: the connection is
   * being torn down anyway and their requests fail with it.
   */
  push(chunk: Buffer): Frame[] {
    if (this.failure) throw this.failure;
    const out: Frame[] = [];
    // First finish the frame held from earlier chunks, if any; then take the whole frames
    // straight from the chunk, and hold what is left of it.
    const at = this.header !== null || this.buffered > 0 ? this.finishHeld(chunk, out) : 0;
    if (at === chunk.length) return out;
    const end = this.wholeFrames(chunk, at, out);
    if (end < chunk.length) this.hold(chunk.subarray(end));
    return out;
  }

  /**
   * Appends the whole frames of `chunk` from `at` on to `out`; returns where the first
   * incomplete one starts (or chunk.length). Headers are read through a DataView, a built-in,
   * rather than Buffer.readUInt32LE(), which runs as interpreted JavaScript in a fresh process.
   * Throws like push() for an oversized frame.
   */
  private wholeFrames(chunk: Buffer, at: number, out: Frame[]): number {
    if (chunk.length - at < XS_HEADER_SIZE) return at;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
    while (chunk.length - at >= XS_HEADER_SIZE) {
      const len = view.getUint32(at + 12, HOST_LITTLE_ENDIAN);
      if (len > this.maxPayload) this.oversized(view.getUint32(at, HOST_LITTLE_ENDIAN), view.getUint32(at + 4, HOST_LITTLE_ENDIAN), len);
      const end = at + XS_HEADER_SIZE + len;
      if (end > chunk.length) break;
      out.push({
        type: view.getUint32(at, HOST_LITTLE_ENDIAN),
        reqId: view.getUint32(at + 4, HOST_LITTLE_ENDIAN),
        txId: view.getUint32(at + 8, HOST_LITTLE_ENDIAN),
        payload: chunk.subarray(at + XS_HEADER_SIZE, end),
      });
      at = end;
    }
    return at;
  }

  /**
   * Takes from `chunk` what the held frame still lacks: the rest of its header, then of its
   * payload. Returns how much of the chunk it took (all of it while the frame is incomplete).
   */
  private finishHeld(chunk: Buffer, out: Frame[]): number {
    let at = 0;
    if (this.header === null) {
      // What is held may already include the whole header and part of the payload.
      if (this.buffered < XS_HEADER_SIZE) {
        at = Math.min(XS_HEADER_SIZE - this.buffered, chunk.length);
        this.hold(chunk.subarray(0, at));
        if (this.buffered < XS_HEADER_SIZE) return at;
      }
      const h = decodeHeader(this.take(XS_HEADER_SIZE));
      if (h.len > this.maxPayload) this.oversized(h.type, h.reqId, h.len);
      this.header = h;
    }
    const want = Math.min(this.header.len - this.buffered, chunk.length - at);
    this.hold(chunk.subarray(at, at + want));
    at += want;
    if (this.buffered < this.header.len) return at;
    const h = this.header;
    this.header = null;
    out.push({ type: h.type, reqId: h.reqId, txId: h.txId, payload: this.take(h.len) });
    return at;
  }

  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.buffered += bytes.length;
  }

  private oversized(type: number, reqId: number, len: number): never {
    this.failure = oversizedFrameError(type, reqId, len, this.maxPayload);
    this.chunks = [];
    this.buffered = 0;
    this.header = null;
    throw this.failure;
  }

  /** Removes and returns the first n held bytes (a view when they lie in one chunk). */
  private take(n: number): Buffer {
    this.buffered -= n;
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const want = n - got;
      if (c.length <= want) {
        c.copy(out, got);
        got += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, got, 0, want);
        this.chunks[0] = c.subarray(want);
        got = n;
      }
    }
    return out;
  }
}

/** The request-side bound, for servers decoding what clients send. */
export const REQUEST_PAYLOAD_BOUND = XENSTORE_PAYLOAD_MAX;
