import test from 'ava';
import { validatePath, pathProblem, isSpecialPath, joinPath, parentPath } from '../../xenstore-wire/paths';
import { parsePerms, formatPerms, parsePerm, accessOf } from '../../xenstore-wire/perms';
import { XenstoreError, ProtocolError, ConnectionError, XenstoreWireError, isEagain } from '../../xenstore-wire/errors';

test('valid paths', (t) => {
  for (const p of ['/', '/a', '/local/domain/0/name', 'rel', 'rel/x-y_z', '/A-Z_0@9', '/' + 'a'.repeat(3071), 'b'.repeat(2048)]) {
    t.is(pathProblem(p), null, p.slice(0, 40));
    t.is(validatePath(p), p);
  }
  t.is(validatePath('@releaseDomain', { allowSpecial: true }), '@releaseDomain');
  t.is(validatePath('@introduceDomain', { allowSpecial: true }), '@introduceDomain');
  // Xen 4.22: one domain's release; the daemon applies the usual rules to special names.
  t.is(validatePath('@releaseDomain/5', { allowSpecial: true }), '@releaseDomain/5');
  t.is(validatePath('@releaseDomain/5', { allowSpecial: true, allowRelative: false }), '@releaseDomain/5');
});

test('invalid paths throw XenstoreError EINVAL from the client', (t) => {
  const bad: [string, object?][] = [
    [''],
    ['/a/'],
    ['a//b'],
    ['//'],
    ['/a b'],
    ['/a.b'],
    ['/a\0b'],
    ['/é'],
    ['/' + 'a'.repeat(3072)],
    ['b'.repeat(2049)],
    ['@releaseDomain'],
    ['@releaseDomain/5'],
    ['@releaseDomain/', { allowSpecial: true }],
    ['@releaseDomain//5', { allowSpecial: true }],
    ['@releaseDomain/5.1', { allowSpecial: true }],
    ['rel', { allowRelative: false }],
  ];
  for (const [p, rules] of bad) {
    const e = t.throws(() => validatePath(p, { op: 'READ', ...rules }), { instanceOf: XenstoreError }, p.slice(0, 40));
    t.is(e?.code, 'EINVAL');
    t.is(e?.kind, 'xenstore');
    t.is(e?.source, 'client');
    t.is(e?.op, 'READ');
    t.is(e?.path, p);
  }
  t.true(isSpecialPath('@x'));
  t.false(isSpecialPath('/@x'));
});

test('joinPath and parentPath', (t) => {
  t.is(joinPath('/', 'a'), '/a');
  t.is(joinPath('/a', 'b', 'c'), '/a/b/c');
  t.is(joinPath('/a/', 'b'), '/a/b');
  t.is(parentPath('/a/b'), '/a');
  t.is(parentPath('/a'), '/');
  t.is(parentPath('/'), '/');
});

test('permissions parse, format and round-trip', (t) => {
  const list = ['n0', 'r5', 'w7', 'b3', 'b65535'];
  const perms = parsePerms(list);
  t.deepEqual(perms, [
    { domid: 0, access: 'n' },
    { domid: 5, access: 'r' },
    { domid: 7, access: 'w' },
    { domid: 3, access: 'b' },
    { domid: 65535, access: 'b' },
  ]);
  t.deepEqual(formatPerms(perms), list);
  t.deepEqual(formatPerms(['r1', { domid: 2, access: 'w' }]), ['r1', 'w2']);
  for (const bad of ['', 'x0', 'r', 'r-1', 'r65536', 'R1', 'r1 ', 'n0x']) {
    const e = t.throws(() => parsePerm(bad), { instanceOf: XenstoreError }, bad);
    t.is(e?.code, 'EINVAL');
  }
  t.throws(() => formatPerms([]), { instanceOf: XenstoreError });
  t.throws(() => formatPerms([{ domid: 1.5, access: 'r' }]), { instanceOf: XenstoreError });
  t.throws(() => formatPerms([{ domid: 1, access: 'q' as 'r' }]), { instanceOf: XenstoreError });
});

test('accessOf follows xenstored: owner all, listed entry, else the default', (t) => {
  const p = parsePerms(['r2', 'w5', 'n7']);
  t.is(accessOf(p, 2), 'b');
  t.is(accessOf(p, 5), 'w');
  t.is(accessOf(p, 7), 'n');
  t.is(accessOf(p, 9), 'r');
});

test('errors are typed values with toJSON', (t) => {
  const x = new XenstoreError('ENOENT', { op: 'READ', path: '/nope', txId: 3 });
  t.true(x instanceof XenstoreWireError);
  t.true(x instanceof Error);
  t.is(x.name, 'XenstoreError');
  t.is(x.errno, 2);
  t.is(x.message, 'ENOENT: READ /nope');
  t.deepEqual(x.toJSON(), { name: 'XenstoreError', kind: 'xenstore', code: 'ENOENT', message: 'ENOENT: READ /nope', errno: 2, op: 'READ', path: '/nope', txId: 3, source: 'daemon' });
  t.deepEqual(JSON.parse(JSON.stringify(x)), x.toJSON());
  const p = new ProtocolError('unknown-error-name', 'bad', { rawName: 'EWHAT' });
  t.like(p.toJSON(), { kind: 'protocol', code: 'EPROTO', reason: 'unknown-error-name', rawName: 'EWHAT' });
  const c = new ConnectionError('ECONNRESET', 'lost', { path: '/run/sock', cause: new Error('boom') });
  const r = c.forRequest(2, '/a');
  t.like(r.toJSON(), { kind: 'connection', code: 'ECONNRESET', path: '/run/sock', op: 'READ', nodePath: '/a' });
  t.is((r.toJSON().cause as { message: string }).message, 'boom');
  t.true(isEagain(new XenstoreError('EAGAIN')));
  t.false(isEagain(new XenstoreError('EINVAL')));
  t.false(isEagain(new Error('EAGAIN')));
});
