import test from 'ava';
import { MessageType as T } from '../../xenstore-wire/constants';
import {
  joinNul,
  splitNul,
  request,
  parseRequest,
  parseOk,
  parseString,
  parseDirectory,
  parseDirectoryPart,
  parseTransactionStart,
  parseBool,
  parseGetPerms,
  parseWatchEvent,
  parseErrorName,
  parseDecimal,
  parseQuotaNames,
  parseReply,
  DecodedRequest,
  DecodedReply,
} from '../../xenstore-wire/payload';
import { FrameDecoder } from '../../xenstore-wire/framing';
import { ProtocolError, XenstoreError } from '../../xenstore-wire/errors';
import { frameBytes, nul } from './helpers/wire';
import { Rng } from './helpers/rng';

test('joinNul and splitNul', (t) => {
  t.deepEqual(joinNul('a', 'bc'), Buffer.from('a\0bc\0', 'latin1'));
  t.deepEqual(joinNul(''), Buffer.from([0]));
  t.deepEqual(joinNul(Buffer.from([1, 2]), 'x'), Buffer.from([1, 2, 0, 0x78, 0]));
  t.deepEqual(splitNul(Buffer.alloc(0)), []);
  t.deepEqual(splitNul(Buffer.from('a\0b\0', 'latin1')), ['a', 'b']);
  t.deepEqual(splitNul(Buffer.from('a\0b', 'latin1')), ['a', 'b']);
  t.deepEqual(splitNul(Buffer.from('\0', 'latin1')), ['']);
  t.deepEqual(splitNul(Buffer.from('a\0\0', 'latin1')), ['a', '']); // only one trailing empty dropped
  const rng = new Rng(5);
  for (let i = 0; i < 500; i++) {
    const parts = Array.from({ length: rng.int(0, 6) }, () => 'xyz/_-@'.slice(0, rng.int(0, 7)));
    t.deepEqual(splitNul(joinNul(...parts)), parts);
  }
});

interface Case {
  name: string;
  type: T;
  built: Buffer;
  wire: Buffer;
  decoded: DecodedRequest;
}

const cases: Case[] = [
  { name: 'DIRECTORY', type: T.DIRECTORY, built: request.directory('/a'), wire: nul('/a'), decoded: { type: T.DIRECTORY, path: '/a' } },
  { name: 'DIRECTORY_PART', type: T.DIRECTORY_PART, built: request.directoryPart('/a', 4081), wire: nul('/a', '4081'), decoded: { type: T.DIRECTORY_PART, path: '/a', offset: 4081 } },
  { name: 'READ', type: T.READ, built: request.read('rel/x'), wire: nul('rel/x'), decoded: { type: T.READ, path: 'rel/x' } },
  { name: 'GET_PERMS', type: T.GET_PERMS, built: request.getPerms('/'), wire: nul('/'), decoded: { type: T.GET_PERMS, path: '/' } },
  { name: 'WATCH', type: T.WATCH, built: request.watch('@releaseDomain', 't1'), wire: nul('@releaseDomain', 't1'), decoded: { type: T.WATCH, path: '@releaseDomain', token: 't1' } },
  { name: 'UNWATCH', type: T.UNWATCH, built: request.unwatch('/a', 'tok'), wire: nul('/a', 'tok'), decoded: { type: T.UNWATCH, path: '/a', token: 'tok' } },
  { name: 'TRANSACTION_START', type: T.TRANSACTION_START, built: request.transactionStart(), wire: nul(''), decoded: { type: T.TRANSACTION_START } },
  { name: 'TRANSACTION_END commit', type: T.TRANSACTION_END, built: request.transactionEnd(true), wire: nul('T'), decoded: { type: T.TRANSACTION_END, commit: true } },
  { name: 'TRANSACTION_END abort', type: T.TRANSACTION_END, built: request.transactionEnd(false), wire: nul('F'), decoded: { type: T.TRANSACTION_END, commit: false } },
  { name: 'INTRODUCE', type: T.INTRODUCE, built: request.introduce(3, 0x12345678n * 16n, 7), wire: nul('3', String(0x12345678 * 16), '7'), decoded: { type: T.INTRODUCE, domid: 3, mfn: 0x12345678n * 16n, port: 7 } },
  { name: 'RELEASE', type: T.RELEASE, built: request.release(5), wire: nul('5'), decoded: { type: T.RELEASE, domid: 5 } },
  { name: 'GET_DOMAIN_PATH', type: T.GET_DOMAIN_PATH, built: request.getDomainPath(0), wire: nul('0'), decoded: { type: T.GET_DOMAIN_PATH, domid: 0 } },
  { name: 'WRITE', type: T.WRITE, built: request.write('/a', Buffer.from([0, 1, 255])), wire: Buffer.from('/a\0\x00\x01\xff', 'latin1'), decoded: { type: T.WRITE, path: '/a', value: Buffer.from([0, 1, 255]) } },
  { name: 'WRITE empty', type: T.WRITE, built: request.write('/a', ''), wire: Buffer.from('/a\0', 'latin1'), decoded: { type: T.WRITE, path: '/a', value: Buffer.alloc(0) } },
  { name: 'MKDIR', type: T.MKDIR, built: request.mkdir('/a/b'), wire: nul('/a/b'), decoded: { type: T.MKDIR, path: '/a/b' } },
  { name: 'RM', type: T.RM, built: request.rm('/a/b'), wire: nul('/a/b'), decoded: { type: T.RM, path: '/a/b' } },
  { name: 'SET_PERMS', type: T.SET_PERMS, built: request.setPerms('/a', ['n0', { domid: 5, access: 'r' }]), wire: nul('/a', 'n0', 'r5'), decoded: { type: T.SET_PERMS, path: '/a', perms: [{ domid: 0, access: 'n' }, { domid: 5, access: 'r' }] } },
  { name: 'IS_DOMAIN_INTRODUCED', type: T.IS_DOMAIN_INTRODUCED, built: request.isDomainIntroduced(1), wire: nul('1'), decoded: { type: T.IS_DOMAIN_INTRODUCED, domid: 1 } },
  { name: 'RESUME', type: T.RESUME, built: request.resume(2), wire: nul('2'), decoded: { type: T.RESUME, domid: 2 } },
  { name: 'SET_TARGET', type: T.SET_TARGET, built: request.setTarget(2, 3), wire: nul('2', '3'), decoded: { type: T.SET_TARGET, domid: 2, target: 3 } },
  { name: 'RESET_WATCHES', type: T.RESET_WATCHES, built: request.resetWatches(), wire: nul(''), decoded: { type: T.RESET_WATCHES } },
  { name: 'CONTROL', type: T.CONTROL, built: request.control('log', 'on'), wire: nul('log', 'on'), decoded: { type: T.CONTROL, args: ['log', 'on'] } },
  // Xen 4.22 (docs/misc/xenstore.txt): WATCH <wpath>|<token>|[<depth>|]
  { name: 'WATCH depth 0', type: T.WATCH, built: request.watch('/a', 't', 0), wire: nul('/a', 't', '0'), decoded: { type: T.WATCH, path: '/a', token: 't', depth: 0 } },
  { name: 'WATCH depth 2', type: T.WATCH, built: request.watch('/local/domain', 'tok', 2), wire: nul('/local/domain', 'tok', '2'), decoded: { type: T.WATCH, path: '/local/domain', token: 'tok', depth: 2 } },
  { name: 'WATCH @releaseDomain depth 1', type: T.WATCH, built: request.watch('@releaseDomain', 'r', 1), wire: nul('@releaseDomain', 'r', '1'), decoded: { type: T.WATCH, path: '@releaseDomain', token: 'r', depth: 1 } },
  { name: 'WATCH @releaseDomain/<domid>', type: T.WATCH, built: request.watch('@releaseDomain/7', 'r7'), wire: nul('@releaseDomain/7', 'r7'), decoded: { type: T.WATCH, path: '@releaseDomain/7', token: 'r7' } },
  // GET_FEATURE [<domid>|] -> <value>|; SET_FEATURE <domid>|<value>|
  { name: 'GET_FEATURE own', type: T.GET_FEATURE, built: request.getFeature(), wire: Buffer.alloc(0), decoded: { type: T.GET_FEATURE, args: [] } },
  { name: 'GET_FEATURE domid', type: T.GET_FEATURE, built: request.getFeature(4), wire: nul('4'), decoded: { type: T.GET_FEATURE, args: ['4'], domid: 4 } },
  { name: 'SET_FEATURE', type: T.SET_FEATURE, built: request.setFeature(65535, 6), wire: nul('65535', '6'), decoded: { type: T.SET_FEATURE, args: ['65535', '6'], domid: 65535, features: 6 } },
  // GET_QUOTA [[<domid>|]<quota>|] ; SET_QUOTA [<domid>|]<quota>|<value>|
  { name: 'GET_QUOTA names', type: T.GET_QUOTA, built: request.getQuota(), wire: Buffer.alloc(0), decoded: { type: T.GET_QUOTA, args: [] } },
  { name: 'GET_QUOTA global', type: T.GET_QUOTA, built: request.getQuota(undefined, 'node-size'), wire: nul('node-size'), decoded: { type: T.GET_QUOTA, args: ['node-size'], quota: 'node-size' } },
  { name: 'GET_QUOTA domain', type: T.GET_QUOTA, built: request.getQuota(4, 'nodes'), wire: nul('4', 'nodes'), decoded: { type: T.GET_QUOTA, args: ['4', 'nodes'], domid: 4, quota: 'nodes' } },
  { name: 'SET_QUOTA global', type: T.SET_QUOTA, built: request.setQuota(undefined, 'watches', 256), wire: nul('watches', '256'), decoded: { type: T.SET_QUOTA, args: ['watches', '256'], quota: 'watches', value: 256 } },
  { name: 'SET_QUOTA domain', type: T.SET_QUOTA, built: request.setQuota(9, 'soft-memory', 4294967295), wire: nul('9', 'soft-memory', '4294967295'), decoded: { type: T.SET_QUOTA, args: ['9', 'soft-memory', '4294967295'], domid: 9, quota: 'soft-memory', value: 4294967295 } },
];

for (const c of cases) {
  test(`request ${c.name}: build, parse, round-trip, split at every offset`, (t) => {
    t.deepEqual(c.built, c.wire);
    t.deepEqual(parseRequest(c.type, c.wire), c.decoded);
    const stream = frameBytes(c.type, 42, 0, c.wire);
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder({ maxPayload: 4096 });
      const fs = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      t.is(fs.length, 1);
      t.deepEqual(parseRequest(fs[0].type, fs[0].payload), c.decoded);
    }
  });
}

test('request builders refuse numbers that are not uint32 / uint64', (t) => {
  t.throws(() => request.release(-1), { instanceOf: RangeError });
  t.throws(() => request.directoryPart('/a', 1.5), { instanceOf: RangeError });
  t.throws(() => request.introduce(1, -1, 1), { instanceOf: RangeError });
  t.throws(() => request.introduce(1, 2n ** 64n, 1), { instanceOf: RangeError });
  t.throws(() => request.setPerms('/a', []), { instanceOf: XenstoreError });
  t.throws(() => request.setPerms('/a', ['x0']), { instanceOf: XenstoreError });
  // Types 23-26 and the watch depth.
  for (const bad of [-1, 65536, 1.5, NaN]) {
    t.throws(() => request.getFeature(bad), { instanceOf: RangeError }, `getFeature(${bad})`);
    t.throws(() => request.setFeature(bad, 0), { instanceOf: RangeError }, `setFeature(${bad})`);
    t.throws(() => request.getQuota(bad, 'nodes'), { instanceOf: RangeError }, `getQuota(${bad})`);
    t.throws(() => request.setQuota(bad, 'nodes', 1), { instanceOf: RangeError }, `setQuota(${bad})`);
  }
  t.throws(() => request.setFeature(1, -1), { instanceOf: RangeError });
  t.throws(() => request.setQuota(undefined, 'nodes', 2 ** 32), { instanceOf: RangeError });
  t.throws(() => request.getQuota(3), { instanceOf: RangeError }, 'a domid without a quota name');
  for (const name of ['', 'a b', 'x\0y', ' nodes']) {
    const e = t.throws(() => request.getQuota(undefined, name), { instanceOf: XenstoreError }, JSON.stringify(name));
    t.is(e?.code, 'EINVAL');
    t.is(e?.source, 'client');
    t.throws(() => request.setQuota(1, name, 1), { instanceOf: XenstoreError });
  }
  for (const bad of [-1, 2 ** 31, 0.5]) t.throws(() => request.watch('/a', 't', bad), { instanceOf: RangeError }, `depth ${bad}`);
});

test('parseRequest refuses malformed payloads with typed errors', (t) => {
  const bad: [T | number, Buffer][] = [
    [T.DIRECTORY, Buffer.alloc(0)],
    [T.DIRECTORY_PART, nul('/a')],
    [T.DIRECTORY_PART, nul('/a', 'x')],
    [T.WATCH, nul('/a')],
    [T.TRANSACTION_END, nul('X')],
    [T.INTRODUCE, nul('1', 'q', '2')],
    [T.INTRODUCE, nul('70000', '1', '2')],
    [T.RELEASE, nul('')],
    [T.WRITE, Buffer.from('/a')],
    [T.SET_PERMS, nul('/a')],
    [T.SET_PERMS, nul('/a', 'q1')],
    [T.SET_TARGET, nul('1')],
    [T.WATCH, nul('/a', 't', 'x')],
    [T.WATCH, nul('/a', 't', '-1')],
    [T.WATCH, nul('/a', 't', '2147483648')],
    [T.WATCH, nul('/a', 't', '1', 'extra')],
    [T.WATCH, nul('/a', 't', '')], // an empty depth: C xenstored 4.22 would atoi() it to 0
    [T.GET_FEATURE, nul('')], // a lone NUL: C xenstored 4.22 would read domain 0
    [T.GET_FEATURE, nul('70000')],
    [T.GET_FEATURE, nul('1', '2')],
    [T.SET_FEATURE, nul('1')],
    [T.SET_FEATURE, nul('1', 'x')],
    [T.SET_FEATURE, nul('1', '2', '3')],
    [T.GET_QUOTA, nul('x', 'nodes')],
    [T.GET_QUOTA, nul('1', 'nodes', 'x')],
    [T.GET_QUOTA, nul('')],
    [T.SET_QUOTA, nul('nodes')],
    [T.SET_QUOTA, nul('nodes', '-1')],
    [T.SET_QUOTA, nul('x', 'nodes', '1')],
    [T.SET_QUOTA, nul('1', 'nodes', '1', '1')],
  ];
  for (const [type, payload] of bad) {
    const e = t.throws(() => parseRequest(type, payload), { instanceOf: ProtocolError }, `${type} ${payload.toString('hex')}`);
    t.is(e?.reason, 'malformed-payload');
  }
  for (const type of [T.WATCH_EVENT, T.ERROR, 20, 99]) {
    const e = t.throws(() => parseRequest(type, nul('x')), { instanceOf: ProtocolError });
    t.is(e?.reason, 'unknown-message-type');
  }
});

test('reply parsers', (t) => {
  t.notThrows(() => parseOk(nul('OK')));
  t.notThrows(() => parseOk(Buffer.from('OK')));
  t.throws(() => parseOk(nul('KO')), { instanceOf: ProtocolError });
  t.is(parseString(nul('/local/domain/0')), '/local/domain/0');
  t.is(parseString(Buffer.from('abc')), 'abc');
  t.deepEqual(parseDirectory(Buffer.alloc(0)), []);
  t.deepEqual(parseDirectory(nul('a', 'bb', 'c')), ['a', 'bb', 'c']);
  t.is(parseTransactionStart(nul('17')), 17);
  for (const bad of [nul(''), nul('0'), nul('x1'), nul('99999999999'), nul('-3')]) {
    t.throws(() => parseTransactionStart(bad), { instanceOf: ProtocolError });
  }
  t.true(parseBool(nul('T')));
  t.false(parseBool(nul('F')));
  t.throws(() => parseBool(nul('Y')), { instanceOf: ProtocolError });
  t.deepEqual(parseGetPerms(nul('n0', 'b7')), [{ domid: 0, access: 'n' }, { domid: 7, access: 'b' }]);
  t.throws(() => parseGetPerms(Buffer.alloc(0)), { instanceOf: ProtocolError });
  t.throws(() => parseGetPerms(nul('n0', 'z1')), { instanceOf: ProtocolError });
  t.deepEqual(parseWatchEvent(nul('/a/b', 'tok')), { path: '/a/b', token: 'tok' });
  t.throws(() => parseWatchEvent(nul('/a')), { instanceOf: ProtocolError });
  t.is(parseErrorName(nul('ENOENT')), 'ENOENT');
  const e = t.throws(() => parseErrorName(nul('EWHAT'), 'READ', '/x'), { instanceOf: ProtocolError });
  t.is(e?.reason, 'unknown-error-name');
  t.is(e?.rawName, 'EWHAT');
  t.is(e?.path, '/x');
  // GET_FEATURE and GET_QUOTA of one quota: an unsigned decimal, NUL-terminated.
  t.is(parseDecimal(nul('14'), T.GET_FEATURE), 14);
  t.is(parseDecimal(Buffer.from('0'), T.GET_QUOTA), 0);
  t.is(parseDecimal(nul('4294967295'), T.GET_QUOTA), 4294967295);
  for (const bad of [nul(''), nul('-1'), nul('1x'), nul('4294967296'), nul('0x10'), nul(' 1')]) {
    const de = t.throws(() => parseDecimal(bad, T.GET_FEATURE), { instanceOf: ProtocolError }, bad.toString('hex'));
    t.is(de?.reason, 'malformed-payload');
    t.is(de?.op, 'GET_FEATURE');
  }
  // GET_QUOTA with no argument: names separated by blanks (C xenstored 4.22 domain.c).
  t.deepEqual(parseQuotaNames(nul('nodes watches outstanding memory soft-memory')), ['nodes', 'watches', 'outstanding', 'memory', 'soft-memory']);
  t.deepEqual(parseQuotaNames(nul('')), []);
  t.throws(() => parseQuotaNames(Buffer.from('a\0b\0', 'latin1')), { instanceOf: ProtocolError });
});

test('DIRECTORY_PART replies as C xenstored sends them', (t) => {
  // Non-final chunk: generation, then children each NUL-terminated.
  const mid = Buffer.concat([nul('12'), nul('aa', 'bb')]);
  t.deepEqual(parseDirectoryPart(mid), { generation: '12', children: ['aa', 'bb'], done: false, consumed: 6 });
  // Final chunk: one more NUL (an empty child).
  t.deepEqual(parseDirectoryPart(Buffer.concat([nul('12'), nul('cc'), Buffer.from([0])])), {
    generation: '12',
    children: ['cc'],
    done: true,
    consumed: 0,
  });
  // Offset at or beyond the end: "gen\0\0".
  t.deepEqual(parseDirectoryPart(Buffer.from('12\0\0', 'latin1')), { generation: '12', children: [], done: true, consumed: 0 });
  t.throws(() => parseDirectoryPart(Buffer.from('12')), { instanceOf: ProtocolError });
  t.throws(() => parseDirectoryPart(nul('x', 'a')), { instanceOf: ProtocolError });
});

test('reply parsers never throw anything but ProtocolError on random bytes', (t) => {
  const rng = new Rng(77);
  const parsers = [
    parseOk,
    parseDirectoryPart,
    parseTransactionStart,
    parseBool,
    parseGetPerms,
    parseWatchEvent,
    parseErrorName,
    (b: Buffer) => parseDecimal(b, T.GET_FEATURE),
    parseQuotaNames,
  ];
  let typed = 0;
  for (let i = 0; i < 3000; i++) {
    const b = rng.bytes(rng.int(0, 24));
    for (const p of parsers) {
      try {
        p(b);
      } catch (e) {
        if (!(e instanceof ProtocolError)) t.fail(`${p.name} threw ${String(e)} on ${b.toString('hex')}`);
        typed++;
      }
    }
    try {
      parseRequest(rng.int(0, 30), b);
    } catch (e) {
      if (!(e instanceof ProtocolError)) t.fail(`parseRequest threw ${String(e)} on ${b.toString('hex')}`);
    }
  }
  t.true(typed > 1000);
});

test('reply parsers on frames split at every offset', (t) => {
  const replies: [T, Buffer, (b: Buffer) => unknown, unknown][] = [
    [T.READ, Buffer.from([0, 255, 10]), (b) => Buffer.from(b).toString('hex'), '00ff0a'],
    [T.DIRECTORY, nul('a', 'bb'), parseDirectory, ['a', 'bb']],
    [T.DIRECTORY_PART, Buffer.concat([nul('3'), nul('x'), Buffer.from([0])]), parseDirectoryPart, { generation: '3', children: ['x'], done: true, consumed: 0 }],
    [T.GET_PERMS, nul('n0', 'r5'), parseGetPerms, [{ domid: 0, access: 'n' }, { domid: 5, access: 'r' }]],
    [T.TRANSACTION_START, nul('42'), parseTransactionStart, 42],
    [T.IS_DOMAIN_INTRODUCED, nul('T'), parseBool, true],
    [T.GET_DOMAIN_PATH, nul('/local/domain/3'), parseString, '/local/domain/3'],
    [T.WATCH_EVENT, nul('/a', 'tok'), parseWatchEvent, { path: '/a', token: 'tok' }],
    [T.ERROR, nul('EACCES'), parseErrorName, 'EACCES'],
    [T.WRITE, nul('OK'), parseOk, undefined],
    [T.GET_FEATURE, nul('6'), (b) => parseDecimal(b, T.GET_FEATURE), 6],
    [T.GET_QUOTA, nul('8192'), (b) => parseDecimal(b, T.GET_QUOTA), 8192],
    [T.GET_QUOTA, nul('nodes watches'), parseQuotaNames, ['nodes', 'watches']],
    [T.SET_FEATURE, nul('OK'), parseOk, undefined],
    [T.SET_QUOTA, nul('OK'), parseOk, undefined],
  ];
  let checks = 0;
  for (const [type, payload, parse, expected] of replies) {
    const stream = Buffer.concat([frameBytes(type, 7, 0, payload), frameBytes(type, 8, 0, payload)]);
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder();
      const fs = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      t.deepEqual(fs.map((f) => f.reqId), [7, 8]);
      for (const f of fs) t.deepEqual(parse(f.payload), expected);
      checks++;
    }
  }
  t.true(checks > 300);
});

test('parseReply: every reply, event and error type, split at every offset', (t) => {
  const replies: [number, Buffer, DecodedReply][] = [
    [T.READ, Buffer.from([0, 255, 10]), { type: T.READ, value: Buffer.from([0, 255, 10]) }],
    [T.DIRECTORY, nul('a', 'bb'), { type: T.DIRECTORY, children: ['a', 'bb'] }],
    [T.DIRECTORY_PART, Buffer.concat([nul('3'), nul('x'), Buffer.from([0])]), { type: T.DIRECTORY_PART, generation: '3', children: ['x'], done: true, consumed: 0 }],
    [T.GET_PERMS, nul('n0', 'r5'), { type: T.GET_PERMS, perms: [{ domid: 0, access: 'n' }, { domid: 5, access: 'r' }] }],
    [T.TRANSACTION_START, nul('42'), { type: T.TRANSACTION_START, txId: 42 }],
    [T.GET_DOMAIN_PATH, nul('/local/domain/3'), { type: T.GET_DOMAIN_PATH, path: '/local/domain/3' }],
    [T.IS_DOMAIN_INTRODUCED, nul('F'), { type: T.IS_DOMAIN_INTRODUCED, introduced: false }],
    [T.CONTROL, nul('OK'), { type: T.CONTROL, text: 'OK' }],
    [T.WATCH_EVENT, nul('@releaseDomain/5', 'tok'), { type: T.WATCH_EVENT, path: '@releaseDomain/5', token: 'tok' }],
    [T.ERROR, nul('ENOSYS'), { type: T.ERROR, error: 'ENOSYS' }],
    [T.GET_FEATURE, nul('14'), { type: T.GET_FEATURE, features: 14 }],
    [T.GET_QUOTA, nul('1000'), { type: T.GET_QUOTA, value: 1000 }],
    [T.GET_QUOTA, nul('nodes watches soft-memory'), { type: T.GET_QUOTA, names: ['nodes', 'watches', 'soft-memory'] }],
    ...[T.WATCH, T.UNWATCH, T.TRANSACTION_END, T.INTRODUCE, T.RELEASE, T.WRITE, T.MKDIR, T.RM, T.SET_PERMS, T.RESUME, T.SET_TARGET, T.RESET_WATCHES, T.SET_FEATURE, T.SET_QUOTA].map(
      (type): [number, Buffer, DecodedReply] => [type, nul('OK'), { type } as DecodedReply],
    ),
  ];
  for (const [type, payload, expected] of replies) {
    const stream = frameBytes(type, 9, 0, payload);
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder();
      const fs = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      t.deepEqual(parseReply(fs[0].type, fs[0].payload), expected, `${type} split at ${i}`);
    }
  }
  t.like(t.throws(() => parseReply(T.WRITE, nul('NO')), { instanceOf: ProtocolError }), { reason: 'malformed-payload' });
  t.like(t.throws(() => parseReply(T.ERROR, nul('EWHAT')), { instanceOf: ProtocolError }), { reason: 'unknown-error-name', rawName: 'EWHAT' });
  t.like(t.throws(() => parseReply(20, nul('OK')), { instanceOf: ProtocolError }), { reason: 'unknown-message-type' });
  const rng = new Rng(23);
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const b = rng.bytes(rng.int(0, 24));
    try {
      parseReply(rng.int(0, 30), b);
    } catch (e) {
      if (!(e instanceof ProtocolError)) t.fail(`parseReply threw ${String(e)} on ${b.toString('hex')}`);
      refused++;
    }
  }
  t.true(refused > 1000, `${refused} refused`);
});

