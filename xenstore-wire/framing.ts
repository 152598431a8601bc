/**
 * Stream -> whole messages. A small state machine (waiting for a header, then for `len`
 * payload bytes) fed with whatever chunks the transport delivers, split anywhere.
 */
import { Frame, decodeHeader, FrameHeader } from './codec';
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
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.header === null) {
        if (this.buffered < XS_HEADER_SIZE) break;
        const h = decodeHeader(this.take(XS_HEADER_SIZE));
        if (h.len > this.maxPayload) {
          this.failure = new ProtocolError(
            'oversized-frame',
            `${messageTypeName(h.type)} message (req_id ${h.reqId}) announces a ${h.len}-byte payload, over the ${this.maxPayload}-byte bound`,
            { op: messageTypeName(h.type) },
          );
          this.chunks = [];
          this.buffered = 0;
          throw this.failure;
        }
        this.header = h;
      }
      if (this.buffered < this.header.len) break;
      const h = this.header;
      this.header = null;
      out.push({ type: h.type, reqId: h.reqId, txId: h.txId, payload: this.take(h.len) });
    }
    return out;
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
