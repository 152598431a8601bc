/**
 * Test fixtures for the wire format, written independently of xenstore-wire/codec.ts so the
 * codec is checked against a second reading of xs_wire.h rather than against itself:
 * four little-endian uint32 (type, req_id, tx_id, len) then the payload.
 */
export function frameBytes(type: number, reqId: number, txId: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const dv = new DataView(new ArrayBuffer(16));
  dv.setUint32(0, type, true);
  dv.setUint32(4, reqId, true);
  dv.setUint32(8, txId, true);
  dv.setUint32(12, body.length, true);
  return Buffer.concat([Buffer.from(dv.buffer), body]);
}

/** A header alone, announcing `len` bytes that may never come. */
export function headerBytes(type: number, reqId: number, txId: number, len: number): Buffer {
  const dv = new DataView(new ArrayBuffer(16));
  dv.setUint32(0, type, true);
  dv.setUint32(4, reqId, true);
  dv.setUint32(8, txId, true);
  dv.setUint32(12, len, true);
  return Buffer.from(dv.buffer);
}

/** "a\0b\0" from ['a', 'b'] (latin1). */
export function nul(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => p + '\0').join(''), 'latin1');
}
