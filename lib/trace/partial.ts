/**
 * What is left of a message when a connection closes in its middle: the proxy decodes whole
 * messages only (FrameDecoder), so the first bytes of a cut message would vanish without a
 * word. This keeps, per direction, the count of bytes since the last whole message and the
 * first 16 of them (the header), so the close can say "WRITE (req_id 0): 20 of 30 bytes".
 */
import { decodeHeader } from '../../xenstore-wire/codec';
import { XS_HEADER_SIZE } from '../../xenstore-wire/constants';

export interface PartialMessage {
  /** Bytes received of the message being cut. */
  bytes: number;
  /** The header, when all 16 bytes of it arrived. */
  header?: { type: number; reqId: number; txId: number; len: number };
}

export class PartialTracker {
  private head: Buffer = Buffer.alloc(0);
  private pending = 0;

  /**
   * Called after each chunk was fed to the decoder, with the decoder's count of bytes held
   * that do not form a whole message yet (FrameDecoder.pendingBytes).
   */
  update(chunk: Buffer, pendingBytes: number): void {
    if (pendingBytes === 0) {
      this.head = Buffer.alloc(0);
    } else if (pendingBytes <= chunk.length) {
      // The cut message began inside this chunk.
      const start = chunk.length - pendingBytes;
      this.head = Buffer.from(chunk.subarray(start, start + XS_HEADER_SIZE));
    } else if (this.head.length < XS_HEADER_SIZE) {
      // It began earlier: complete its header from this chunk.
      const need = XS_HEADER_SIZE - this.head.length;
      this.head = Buffer.concat([this.head, chunk.subarray(0, need)]);
    }
    this.pending = pendingBytes;
  }

  /** The message cut short, or null when the stream ended on a message boundary. */
  current(): PartialMessage | null {
    if (this.pending === 0) return null;
    const p: PartialMessage = { bytes: this.pending };
    if (this.head.length >= XS_HEADER_SIZE) p.header = decodeHeader(this.head);
    return p;
  }
}
