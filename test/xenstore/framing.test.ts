import test from 'ava';
import { FrameDecoder, REPLY_PAYLOAD_BOUND } from '../../xenstore-wire/framing';
import { ProtocolError } from '../../xenstore-wire/errors';
import { Frame } from '../../xenstore-wire/codec';
import { frameBytes, headerBytes, nul } from './helpers/wire';
import { Rng } from './helpers/rng';

const stream: Frame[] = [
  { type: 2, reqId: 1, txId: 0, payload: Buffer.from('value-1') },
  { type: 15, reqId: 0, txId: 0, payload: nul('/a/b', 'tok') },
  { type: 11, reqId: 3, txId: 9, payload: Buffer.alloc(0) },
  { type: 16, reqId: 4, txId: 0, payload: nul('ENOENT') },
  { type: 1, reqId: 5, txId: 0, payload: Buffer.alloc(5000, 0x61) }, // an oversized reply
];
const bytes = Buffer.concat(stream.map((f) => frameBytes(f.type, f.reqId, f.txId, f.payload)));

function norm(fs: Frame[]) {
  return fs.map((f) => ({ ...f, payload: Buffer.from(f.payload).toString('hex') }));
}

test('one chunk holding several frames', (t) => {
  t.deepEqual(norm(new FrameDecoder().push(bytes)), norm(stream));
});

test('the stream split in two at every offset', (t) => {
  for (let i = 0; i <= bytes.length; i++) {
    const d = new FrameDecoder();
    const got = [...d.push(bytes.subarray(0, i)), ...d.push(bytes.subarray(i))];
    t.deepEqual(norm(got), norm(stream), `split at ${i}`);
    t.is(d.pendingBytes, 0);
  }
});

/** Where `got` differs from `stream` (count, a header field, or payload bytes), or null. */
function difference(got: Frame[]): string | null {
  if (got.length !== stream.length) return `${got.length} frames instead of ${stream.length}`;
  for (let k = 0; k < stream.length; k++) {
    const [a, b] = [got[k], stream[k]];
    if (a.type !== b.type || a.reqId !== b.reqId || a.txId !== b.txId) return `frame ${k}: header ${a.type}/${a.reqId}/${a.txId}`;
    if (!Buffer.from(a.payload).equals(b.payload)) return `frame ${k}: payload differs`;
  }
  return null;
}

test('the stream split in three at every pair of offsets (first 300 bytes), every frame intact', (t) => {
  const wrong: string[] = [];
  let cases = 0;
  for (let i = 0; i <= 300; i += 1) {
    for (let j = i; j <= 300; j += 7) {
      const d = new FrameDecoder();
      const got = [...d.push(bytes.subarray(0, i)), ...d.push(bytes.subarray(i, j)), ...d.push(bytes.subarray(j))];
      const diff = difference(got) ?? (d.pendingBytes !== 0 ? `${d.pendingBytes} bytes left over` : null);
      if (diff !== null) wrong.push(`split at ${i},${j}: ${diff}`);
      cases++;
    }
  }
  t.deepEqual(wrong.slice(0, 5), []);
  t.true(cases > 6000, `${cases} cases`);
});

test('byte at a time', (t) => {
  const d = new FrameDecoder();
  const got: Frame[] = [];
  for (let i = 0; i < bytes.length; i++) got.push(...d.push(bytes.subarray(i, i + 1)));
  t.deepEqual(norm(got), norm(stream));
});

test('1000 random splits', (t) => {
  const rng = new Rng(11);
  for (let k = 0; k < 1000; k++) {
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (const piece of rng.split(bytes, 200)) got.push(...d.push(piece));
    if (got.length !== stream.length) t.fail(`seed 11 case ${k}`);
    t.deepEqual(norm(got), norm(stream));
  }
});

test('a header announcing more than the bound throws ProtocolError, then stays failed', (t) => {
  const d = new FrameDecoder({ maxPayload: 4096 });
  t.deepEqual(d.push(frameBytes(2, 1, 0, Buffer.alloc(4096))).length, 1); // exactly the bound is fine
  const err = t.throws(() => d.push(headerBytes(2, 2, 0, 4097)), { instanceOf: ProtocolError });
  t.is(err?.kind, 'protocol');
  t.is(err?.code, 'EPROTO');
  t.is(err?.reason, 'oversized-frame');
  t.is(err?.op, 'READ');
  t.is(d.pendingBytes, 0); // nothing buffered after the failure
  t.throws(() => d.push(frameBytes(2, 3, 0, 'x')), { is: err });
});

test('default bound is REPLY_PAYLOAD_BOUND (1 MiB): accepted at the bound, refused above', (t) => {
  t.is(REPLY_PAYLOAD_BOUND, 1024 * 1024);
  const ok = new FrameDecoder();
  t.is(ok.push(frameBytes(1, 1, 0, Buffer.alloc(REPLY_PAYLOAD_BOUND))).length, 1);
  const bad = new FrameDecoder();
  // Refused from the header alone, before any payload byte is buffered.
  t.throws(() => bad.push(headerBytes(1, 1, 0, REPLY_PAYLOAD_BOUND + 1)), { instanceOf: ProtocolError });
  t.throws(() => new FrameDecoder().push(headerBytes(1, 1, 0, 0xffffffff)), { instanceOf: ProtocolError });
});

test('a truncated stream yields the whole frames and holds the rest', (t) => {
  const d = new FrameDecoder();
  const cut = bytes.length - 10;
  t.is(d.push(bytes.subarray(0, cut)).length, stream.length - 1);
  t.is(d.pendingBytes, 16 + 5000 - 10);
  t.is(d.push(bytes.subarray(cut)).length, 1);
});

test('constructor refuses a nonsense bound', (t) => {
  t.throws(() => new FrameDecoder({ maxPayload: -1 }), { instanceOf: RangeError });
});
