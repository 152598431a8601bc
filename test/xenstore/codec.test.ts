import test from 'ava';
import {
  MessageType,
  messageTypeName,
  isKnownMessageType,
  XS_HEADER_SIZE,
  XENSTORE_PAYLOAD_MAX,
  XENBUS_DEV_PAYLOAD_MAX,
  XENSTORE_ABS_PATH_MAX,
  XENSTORE_REL_PATH_MAX,
  XS_ERRNO_NAMES,
  XS_TYPE_INVALID,
} from '../../xenstore-wire/constants';
import { encodeFrame, decodeHeader } from '../../xenstore-wire/codec';
import { frameBytes } from './helpers/wire';
import { Rng } from './helpers/rng';

test('message type numbers follow xs_wire.h', (t) => {
  const expected: [string, number][] = [
    ['CONTROL', 0], ['DIRECTORY', 1], ['READ', 2], ['GET_PERMS', 3], ['WATCH', 4], ['UNWATCH', 5],
    ['TRANSACTION_START', 6], ['TRANSACTION_END', 7], ['INTRODUCE', 8], ['RELEASE', 9],
    ['GET_DOMAIN_PATH', 10], ['WRITE', 11], ['MKDIR', 12], ['RM', 13], ['SET_PERMS', 14],
    ['WATCH_EVENT', 15], ['ERROR', 16], ['IS_DOMAIN_INTRODUCED', 17], ['RESUME', 18],
    ['SET_TARGET', 19], ['RESET_WATCHES', 21], ['DIRECTORY_PART', 22], ['GET_FEATURE', 23],
    ['SET_FEATURE', 24], ['GET_QUOTA', 25], ['SET_QUOTA', 26],
  ];
  for (const [name, n] of expected) {
    t.is((MessageType as unknown as Record<string, number>)[name], n, name);
    t.is(messageTypeName(n), name);
    t.true(isKnownMessageType(n));
  }
  // 20 was XS_RESTRICT (removed); 0xffff is guaranteed invalid.
  for (const n of [20, 27, 100, XS_TYPE_INVALID, -1, 1.5]) {
    t.false(isKnownMessageType(n), String(n));
  }
  t.is(messageTypeName(20), 'UNKNOWN(20)');
  t.is(messageTypeName(0xffff), 'UNKNOWN(65535)');
});

test('limits and the error table', (t) => {
  t.is(XS_HEADER_SIZE, 16);
  t.is(XENSTORE_PAYLOAD_MAX, 4096);
  t.is(XENBUS_DEV_PAYLOAD_MAX, 4080);
  t.is(XENSTORE_ABS_PATH_MAX, 3072);
  t.is(XENSTORE_REL_PATH_MAX, 2048);
  t.deepEqual(
    [...XS_ERRNO_NAMES],
    'EINVAL EACCES EEXIST EISDIR ENOENT ENOMEM ENOSPC EIO ENOTEMPTY ENOSYS EROFS EBUSY EAGAIN EISCONN E2BIG EPERM'.split(' '),
  );
});

test('encodeFrame writes the header in host (little endian) order, len last from the payload', (t) => {
  const got = encodeFrame({ type: MessageType.READ, reqId: 0x01020304, txId: 7, payload: Buffer.from('/a\0') });
  t.is(got.toString('hex'), '02000000' + '04030201' + '07000000' + '03000000' + '2f6100');
  t.deepEqual(got, frameBytes(2, 0x01020304, 7, '/a\0'));
});

test('encodeFrame of an empty payload is the bare header', (t) => {
  const got = encodeFrame({ type: MessageType.TRANSACTION_START, reqId: 0, txId: 0, payload: Buffer.alloc(0) });
  t.is(got.length, 16);
  t.deepEqual(decodeHeader(got), { type: 6, reqId: 0, txId: 0, len: 0 });
});

test('encodeFrame refuses header fields that are not uint32', (t) => {
  for (const bad of [-1, 2 ** 32, 1.5, NaN]) {
    t.throws(() => encodeFrame({ type: 2, reqId: bad, txId: 0, payload: Buffer.alloc(0) }), { instanceOf: RangeError });
    t.throws(() => encodeFrame({ type: bad, reqId: 0, txId: 0, payload: Buffer.alloc(0) }), { instanceOf: RangeError });
    t.throws(() => encodeFrame({ type: 2, reqId: 0, txId: bad, payload: Buffer.alloc(0) }), { instanceOf: RangeError });
  }
});

test('decodeHeader reads the fixture, at an offset too', (t) => {
  const f = frameBytes(16, 0xffffffff, 0x80000000, 'ENOENT\0');
  t.deepEqual(decodeHeader(f), { type: 16, reqId: 0xffffffff, txId: 0x80000000, len: 7 });
  const shifted = Buffer.concat([Buffer.from('xyz'), f]);
  t.deepEqual(decodeHeader(shifted, 3), { type: 16, reqId: 0xffffffff, txId: 0x80000000, len: 7 });
  t.throws(() => decodeHeader(f.subarray(0, 15)), { instanceOf: RangeError });
  t.throws(() => decodeHeader(shifted, 5 + 16), { instanceOf: RangeError });
});

test('encode/decode round-trips 2000 random headers', (t) => {
  const rng = new Rng(2);
  for (let i = 0; i < 2000; i++) {
    const h = { type: rng.int(0, 0xffffffff), reqId: rng.int(0, 0xffffffff), txId: rng.int(0, 0xffffffff) };
    const payload = rng.bytes(rng.int(0, 40));
    const enc = encodeFrame({ ...h, payload });
    t.deepEqual(enc, frameBytes(h.type, h.reqId, h.txId, payload));
    t.deepEqual(decodeHeader(enc), { ...h, len: payload.length });
    t.deepEqual(enc.subarray(16), payload);
  }
});
