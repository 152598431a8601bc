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
  XenstoreFeature,
} from '../../xenstore-wire/constants';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';
import { encodeFrame, decodeHeader } from '../../xenstore-wire/codec';
import { frameBytes } from './helpers/wire';
import { Rng } from './helpers/rng';

/**
 * A reading of xs_wire.h independent of constants.ts: the enum with its implicit numbering and
 * `= X + n` / `= 0x...` initialisers, `#define NAME number` lines, the xsd_errors table in order,
 * and the uint32_t fields of struct xsd_sockmsg.
 */
interface XsWireHeader {
  types: Map<string, number>;
  defines: Map<string, number>;
  errors: string[];
  headerFields: number;
}

function parseXsWire(text: string): XsWireHeader {
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, '');
  const types = new Map<string, number>();
  const body = /enum\s+xsd_sockmsg_type\s*\{([\s\S]*?)\};/.exec(noComments)?.[1];
  if (body === undefined) throw new Error('no enum xsd_sockmsg_type');
  let next = 0;
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(XS_\w+)\s*(?:=\s*(.+?))?\s*,?$/.exec(line);
    if (!m) throw new Error(`enum line ${JSON.stringify(line)}`);
    if (m[2] !== undefined) {
      const init = m[2].trim();
      const rel = /^(XS_\w+)\s*\+\s*(\d+)$/.exec(init);
      next = rel ? types.get(rel[1])! + Number(rel[2]) : Number(init);
    }
    types.set(m[1], next++);
  }
  const defines = new Map<string, number>();
  for (const m of noComments.matchAll(/^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$/gm)) defines.set(m[1], Number(m[2]));
  const errorsBlock = /xsd_errors\[\][\s\S]*?=\s*\{([\s\S]*?)\};/.exec(noComments)?.[1] ?? '';
  const errors = [...errorsBlock.matchAll(/XSD_ERROR\((\w+)\)/g)].map((m) => m[1]);
  const struct = /struct\s+xsd_sockmsg\s*\{([\s\S]*?)\};/.exec(noComments)?.[1] ?? '';
  const headerFields = [...struct.matchAll(/uint32_t\s+\w+;/g)].length;
  return { types, defines, errors, headerFields };
}

/** Debian's libxen-dev (installed by .ci/run): the header of the Xen release the daemons come from. */
const INSTALLED = '/usr/include/xen/io/xs_wire.h';
/** Xen 4.22's enum and feature bits, verbatim, for what the installed 4.17 header lacks. */
const XEN_422 = join(projectRoot(), 'test', 'xenstore', 'fixtures', 'xs_wire-4.22-excerpt.h');

test('message type numbers match the installed xs_wire.h and Xen 4.22\'s', (t) => {
  const named = MessageType as unknown as Record<string, number>;
  for (const source of [INSTALLED, XEN_422]) {
    const h = parseXsWire(readFileSync(source, 'utf8'));
    t.true(h.types.size >= 23, `${source}: ${h.types.size} enum entries`);
    for (const [name, n] of h.types) {
      if (name === 'XS_TYPE_COUNT') {
        // Every number below the count is ours, except 20 (RESTRICT, removed).
        for (let i = 0; i < n; i++) t.is(isKnownMessageType(i), i !== 20, `${source}: type ${i}`);
        continue;
      }
      if (name === 'XS_INVALID') {
        t.is(XS_TYPE_INVALID, n);
        t.false(isKnownMessageType(n));
        continue;
      }
      const ours = name.slice('XS_'.length);
      t.is(named[ours], n, `${source}: ${name}`);
      t.is(messageTypeName(n), ours);
    }
  }
  const newest = parseXsWire(readFileSync(XEN_422, 'utf8'));
  // Nothing in MessageType that Xen 4.22 does not define.
  for (const [name, n] of Object.entries(named).filter(([, v]) => typeof v === 'number')) {
    t.is(newest.types.get(`XS_${name}`), n, `MessageType.${name}`);
  }
  t.is(messageTypeName(20), 'UNKNOWN(20)');
  for (const n of [-1, 1.5, newest.types.get('XS_TYPE_COUNT')!]) t.false(isKnownMessageType(n), String(n));
});

test('limits, header size, error table and feature bits match xs_wire.h', (t) => {
  const h = parseXsWire(readFileSync(INSTALLED, 'utf8'));
  t.is(h.defines.get('XENSTORE_PAYLOAD_MAX'), XENSTORE_PAYLOAD_MAX);
  t.is(h.defines.get('XENSTORE_ABS_PATH_MAX'), XENSTORE_ABS_PATH_MAX);
  t.is(h.defines.get('XENSTORE_REL_PATH_MAX'), XENSTORE_REL_PATH_MAX);
  t.is(XS_HEADER_SIZE, 4 * h.headerFields);
  t.is(h.headerFields, 4);
  // Linux's xenbus_dev_frontend.c holds header and payload in one XENSTORE_PAYLOAD_MAX buffer.
  t.is(XENBUS_DEV_PAYLOAD_MAX, h.defines.get('XENSTORE_PAYLOAD_MAX')! - 4 * h.headerFields);
  t.deepEqual([...XS_ERRNO_NAMES], h.errors);
  t.true(h.errors.length >= 16);
  const features = new Map([...h.defines, ...parseXsWire(readFileSync(XEN_422, 'utf8')).defines]);
  for (const [name, bit] of Object.entries(XenstoreFeature)) {
    t.is(features.get(`XENSTORE_SERVER_FEATURE_${name}`), bit, name);
  }
  t.is(
    [...features.keys()].filter((k) => k.startsWith('XENSTORE_SERVER_FEATURE_')).length,
    Object.keys(XenstoreFeature).length,
    'every feature bit of the headers is named',
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
