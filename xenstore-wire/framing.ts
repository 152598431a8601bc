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

export class FrameDecoder {
  readonly maxPayload: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private failure: ProtocolError | null = null;

  constructor(opts: FrameDecoderOptions = {}) {
    this.maxPayload = opts.maxPayload ?? REPLY_PAYLOAD_BOUND;
    if (!Number.isInteger(this.maxPayload) || this.maxPayload < 0) {
      throw new RangeError(`maxPayload must be a non-negative integer, got ${opts.maxPayload}`);
    }
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
    let rest = chunk;
    if (this.buffered === 0 && this.header === null) {
      // Nothing held from earlier chunks (the usual case: a read holding whole replies): take
      // the frames straight from the chunk. What is left over, if anything, goes the long way.
      const at = this.wholeFrames(chunk, out);
      if (at === chunk.length) return out;
      rest = chunk.subarray(at);
    }
    if (rest.length > 0) {
      this.chunks.push(rest);
      this.buffered += rest.length;
    }
    for (;;) {
      if (this.header === null) {
        if (this.buffered < XS_HEADER_SIZE) break;
        const h = decodeHeader(this.take(XS_HEADER_SIZE));
        if (h.len > this.maxPayload) this.oversized(h.type, h.reqId, h.len);
        this.header = h;
      }
      if (this.buffered < this.header.len) break;
      const h = this.header;
      this.header = null;
      out.push({ type: h.type, reqId: h.reqId, txId: h.txId, payload: this.take(h.len) });
    }
    return out;
  }

  /**
   * Appends the whole frames at the start of `chunk` to `out`; returns where the first
   * incomplete one starts (or chunk.length). Headers are read through a DataView, a built-in,
   * rather than Buffer.readUInt32LE(), which runs as interpreted JavaScript in a fresh process.
   * Throws like push() for an oversized frame.
   */
  private wholeFrames(chunk: Buffer, out: Frame[]): number {
    if (chunk.length < XS_HEADER_SIZE) return 0;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
    let at = 0;
    while (chunk.length - at >= XS_HEADER_SIZE) {
      const len = view.getUint32(at + 12, HOST_LITTLE_ENDIAN);
      const type = view.getUint32(at, HOST_LITTLE_ENDIAN);
      const reqId = view.getUint32(at + 4, HOST_LITTLE_ENDIAN);
      if (len > this.maxPayload) this.oversized(type, reqId, len);
      const end = at + XS_HEADER_SIZE + len;
      if (end > chunk.length) break;
      out.push({ type, reqId, txId: view.getUint32(at + 8, HOST_LITTLE_ENDIAN), payload: chunk.subarray(at + XS_HEADER_SIZE, end) });
      at = end;
    }
    return at;
  }

  private oversized(type: number, reqId: number, len: number): never {
    this.failure = new ProtocolError(
      'oversized-frame',
      `${messageTypeName(type)} message (req_id ${reqId}) announces a ${len}-byte payload, over the ${this.maxPayload}-byte bound`,
      { op: messageTypeName(type) },
    );
    this.chunks = [];
    this.buffered = 0;
    this.header = null;
    throw this.failure;
  }

  /** Removes and returns the first n buffered bytes (a view when they lie in one chunk). */
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
