/**
 * The schema's formats and the printers: domids in decimal both ways, ranges, typed errors for
 * records that break the schema, xenstore-ls escaping (against the real xenstore-ls, every byte)
 * and the hex dump (against busybox's `hexdump -C`).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { hexdump } from '../../lib/manager';
import { dumpTree, formatDomid, formatRange, gfnsOf, parseDomid, parseHex, parseRange, readRegion, StoreError, StorePaths } from '../../lib/store';
import { runXenstoreCli } from '../harness/clients';
import { startEnv } from './helpers';

test('domids are decimal both ways, including those that read differently in hex', (t) => {
  for (const d of [0, 1, 9, 10, 11, 15, 16, 22, 100, 255, 4095, 32751]) {
    t.is(formatDomid(d), String(d));
    t.is(parseDomid(formatDomid(d), '/x'), d);
  }
  for (const bad of ['0x10', '010', '-1', '1.5', '', ' 3', '32752', '99999', 'a']) {
    const e = t.throws(() => parseDomid(bad, '/local/shared_mem/X/owner'));
    t.true(e instanceof StoreError);
    t.is((e as StoreError).code, 'EINVAL');
    t.is((e as StoreError).path, '/local/shared_mem/X/owner');
  }
});

test('ranges and hex values', (t) => {
  t.is(formatRange(0x50000000n, 0x50100000n), '0x50000000-0x50100000');
  t.deepEqual(parseRange('0x50000000-0x50100000', '/p'), { begin: 0x50000000n, end: 0x50100000n });
  t.is(parseHex('0xffffffffffffffff', '/p'), 2n ** 64n - 1n);
  for (const bad of ['0x10-0x10', '0x20-0x10', '50000000-50100000', '0x1-', '0X10-0x20']) t.throws(() => parseRange(bad, '/p'), { instanceOf: StoreError });
  t.throws(() => parseHex('16', '/p'), { instanceOf: StoreError });
  t.deepEqual([...gfnsOf(0x50000000n, 0x3000n)], [0x50000, 0x50001, 0x50002]);
  const p = new StorePaths('/x/y');
  t.is(p.mappingField('ID1', 12, 'lock'), '/x/y/ID1/mappings/12/lock');
  t.is(p.mirror(12, 'ID1'), '/local/domain/12/shared_mem/ID1');
});

test('a record that breaks the schema is a typed StoreError naming the node', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const paths = new StorePaths();
  await env.xs.write('/local/shared_mem/BAD/owner', '0x10');
  await env.xs.write('/local/shared_mem/BAD/state', 'ready');
  const e = await t.throwsAsync(readRegion(env.xs, paths, 'BAD'));
  t.true(e instanceof StoreError);
  t.is((e as StoreError).path, '/local/shared_mem/BAD/owner');
  await env.xs.write('/local/shared_mem/BAD/owner', '16');
  const missing = await t.throwsAsync(readRegion(env.xs, paths, 'BAD'));
  t.is((missing as StoreError).code, 'ENOENT');
  t.is(await readRegion(env.xs, paths, 'NONE'), null);
  // The manager reports it as it is.
  const list = await t.throwsAsync(env.manager().list());
  t.is((list as StoreError).kind, 'store');
});

test('dumpTree prints what xenstore-ls -f -p prints, for every byte value', async (t) => {
  const env = await startEnv('memory');
  t.teardown(() => env.close());
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  await env.xs.write('/v/all', all);
  await env.xs.write('/v/empty', '');
  await env.xs.write('/v/a/b', 'c\\d');
  await env.xs.setPerms('/v/a', ['n0', 'r5', 'b7']);
  const real = await runXenstoreCli(env, 'xenstore-ls', ['-f', '-p', '/v']);
  t.is(real.code, 0, real.stderr);
  t.is((await dumpTree(env.xs, '/v', { perms: true })).join('\n') + '\n', real.stdout);
  const plain = await runXenstoreCli(env, 'xenstore-ls', ['-f', '/v']);
  t.is((await dumpTree(env.xs, '/v')).join('\n') + '\n', plain.stdout);
  t.deepEqual(await dumpTree(env.xs, '/nothing'), []);
});

test('hexdump prints what busybox hexdump -C prints', (t) => {
  const samples = [
    Buffer.alloc(0),
    Buffer.from('hello'),
    Buffer.concat([Buffer.from('hello'), Buffer.alloc(70), Buffer.from('tail bytes here!')]),
    Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)),
    Buffer.alloc(64),
  ];
  for (const s of samples) {
    const expected = execFileSync('/bin/busybox', ['hexdump', '-C'], { input: s }).toString();
    const ours = s.length === 0 ? '' : hexdump(s).join('\n') + '\n';
    t.is(ours, expected, `${s.length} bytes`);
  }
  // Addresses from a base, as peek --offset prints them.
  t.is(hexdump(Buffer.from('AB'), 0x1000)[0], '00001000  41 42                                             |AB|');
});
