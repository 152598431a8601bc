/**
 * What changed between the real daemons of Xen 4.17 (Debian 12) and 4.20 (Debian 13), found by
 * running the differential and conformance suites on both (docs/release-differences.md). Each
 * test sends the same hand-built requests to both releases of a daemon and holds each release
 * to what it answered, so a change in either release (a Debian update) shows up here first.
 */
import test from 'ava';
import { daemonLabel, DaemonKind, RunningDaemon, startDaemon, XenRelease, XEN_RELEASES } from '../harness/daemons';
import { RawConn, showFrame } from '../server/wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');

async function withDaemon<T>(kind: DaemonKind, release: XenRelease, fn: (c: RawConn, d: RunningDaemon) => Promise<T>): Promise<T> {
  const d = await startDaemon(kind, { release });
  const c = await RawConn.open(d.socketPath);
  try {
    return await fn(c, d);
  } finally {
    c.close();
    await d.stop();
  }
}

/** The same requests on both releases: their replies, one line each. */
async function both(kind: DaemonKind, requests: [type: number, payload: string][]): Promise<Record<XenRelease, string[]>> {
  const out = {} as Record<XenRelease, string[]>;
  for (const release of XEN_RELEASES) {
    out[release] = await withDaemon(kind, release, async (c) => {
      const lines: string[] = [];
      for (const [type, payload] of requests) lines.push(showFrame(await c.request(type, payload)).replace(/^(\S+) \d+ /, '$1 '));
      return lines;
    });
  }
  return out;
}

const WRITE = 11;
const CONTROL = 0;
const DIRECTORY_PART = 22;
const WATCH = 4;

test('C xenstored: dom0 paths over 2048 bytes are refused by 4.17 and accepted by 4.20 (the path quota binds guests only)', async (t) => {
  const path = (n: number) => '/' + 'x'.repeat(n - 1);
  const r = await both('cxenstored', [
    [WRITE, `${path(2048)}\0v`],
    [WRITE, `${path(2049)}\0v`],
    [WRITE, `${path(4000)}\0v`],
    [WATCH, nul(`/local/domain/123456/${'z'.repeat(2048)}`, 'tok')],
  ]);
  t.deepEqual(r['4.17'], ['WRITE 0 "OK\\0"', 'ERROR 0 "EINVAL\\0"', 'ERROR 0 "EINVAL\\0"', 'ERROR 0 "EINVAL\\0"']);
  t.deepEqual(r['4.20'], ['WRITE 0 "OK\\0"', 'WRITE 0 "OK\\0"', 'WRITE 0 "OK\\0"', 'WATCH 0 "OK\\0"']);
});

test('C xenstored: node generations of 4.20 start two higher (its special nodes are database nodes)', async (t) => {
  const r = await both('cxenstored', [
    [DIRECTORY_PART, nul('/tool/xenstored', '9999')],
    [WRITE, '/a\0v'],
    [DIRECTORY_PART, nul('/a', '9999')],
    [DIRECTORY_PART, nul('/', '9999')],
  ]);
  // The generation is the first string of a DIRECTORY_PART reply.
  t.deepEqual(r['4.17'], ['DIRECTORY_PART 0 "3\\0\\0"', 'WRITE 0 "OK\\0"', 'DIRECTORY_PART 0 "4\\0\\0"', 'DIRECTORY_PART 0 "5\\0\\0"']);
  t.deepEqual(r['4.20'], ['DIRECTORY_PART 0 "3\\0\\0"', 'WRITE 0 "OK\\0"', 'DIRECTORY_PART 0 "6\\0\\0"', 'DIRECTORY_PART 0 "7\\0\\0"']);
});

test('C xenstored: CONTROL log without arguments, help and quota texts changed in 4.20', async (t) => {
  const r = await both('cxenstored', [
    [CONTROL, nul('log')],
    [CONTROL, nul('help')],
    [CONTROL, nul('quota')],
    [CONTROL, nul('quota-soft')],
    [CONTROL, nul('check')],
  ]);
  t.is(r['4.17'][0], 'ERROR 0 "EINVAL\\0"');
  t.is(r['4.20'][0], 'CONTROL 0 "Log switch settings:\\x0aobj     : on\\x0aio      : on\\x0awrl     : off\\x0aacc     : off\\x0atdb     : off\\x0a\\0"');
  t.regex(r['4.17'][1], /quota\\x09\[set <name> <val>\|<domid>\]\\x0a/);
  t.regex(r['4.20'][1], /log             \[on\|off\|\+<switch>\|-<switch>\]\\x0a.*quota           \[set <name> <val>\|<domid>\|max \[-r\]\]\\x0a/);
  // 4.17 lists "transactions" third and "permissions"; 4.20 reorders and says "node-permissions".
  t.regex(r['4.17'][2], /watches {10}: {6}128 Watches per domain\\x0atransactions {5}: {7}10 Transactions per domain/);
  t.regex(r['4.20'][2], /memory {11}: {2}2621440 Total Xenstore memory per domain \(error level\)\\x0atransactions {5}: {7}10 Active transactions per domain/);
  t.regex(r['4.20'][2], /node-permissions : {8}5 Max\. number of permissions per node/);
  t.is(r['4.17'][3], r['4.20'][3], 'quota-soft unchanged');
  t.is(r['4.17'][4], r['4.20'][4], 'check unchanged');
});

test('oxenstored: 4.17 and 4.20 answer the same (path limit 1024, no DIRECTORY_PART, newer types ENOSYS)', async (t) => {
  const r = await both('oxenstored', [
    [WRITE, `/${'x'.repeat(1023)}\0v`],
    [WRITE, `/${'x'.repeat(1024)}\0v`],
    [DIRECTORY_PART, nul('/', '0')],
    [CONTROL, nul('log')],
    [23, '\0'],
    [26, nul('1', 'nodes', '5')],
    [WATCH, nul('/a', 'tk', '1')],
    [WATCH, nul('@releaseDomain/1', 'tk2')],
  ]);
  t.deepEqual(r['4.20'], r['4.17']);
  t.deepEqual(r['4.17'], [
    'WRITE 0 "OK\\0"', 'ERROR 0 "EINVAL\\0"', 'ERROR 0 "ENOSYS\\0"', 'CONTROL 0 "OK\\0"',
    'ERROR 0 "ENOSYS\\0"', 'ERROR 0 "ENOSYS\\0"', 'ERROR 0 "EINVAL\\0"', 'WATCH 0 "OK\\0"',
  ]);
  t.log(`${daemonLabel({ kind: 'oxenstored', release: '4.17' })} = ${daemonLabel({ kind: 'oxenstored', release: '4.20' })} on ${r['4.17'].length} requests`);
  // Only its own path differs.
  const exe = await both('oxenstored', [[2 /* READ */, nul('/tool/xenstored')]]);
  t.deepEqual(exe['4.17'], ['READ 0 "/usr/lib/xen-4.17/bin/oxenstored"']);
  t.deepEqual(exe['4.20'], ['READ 0 "/usr/lib/xen-4.20/bin/oxenstored"']);
});

const GET_PERMS = 3;
const SET_PERMS = 14;
const UNWATCH = 5;

test('C xenstored: special nodes have permissions in 4.20 (GET_PERMS answers, an unknown @ name is ENOENT; 4.17: EINVAL)', async (t) => {
  const r = await both('cxenstored', [
    [GET_PERMS, nul('@releaseDomain')],
    [GET_PERMS, nul('@introduceDomain')],
    [GET_PERMS, nul('@other')],
  ]);
  t.deepEqual(r['4.17'], ['ERROR 0 "EINVAL\\0"', 'ERROR 0 "EINVAL\\0"', 'ERROR 0 "EINVAL\\0"']);
  // An unknown @ name is a node that does not exist (4.17: not a node name at all).
  t.deepEqual(r['4.20'], ['GET_PERMS 0 "n0\\0"', 'GET_PERMS 0 "n0\\0"', 'ERROR 0 "ENOENT\\0"']);
});

test('C xenstored: SET_PERMS of @introduceDomain fires its watch in 4.20 (4.17: no event)', async (t) => {
  const events: Record<string, string[]> = {};
  for (const release of XEN_RELEASES) {
    events[release] = await withDaemon('cxenstored', release, async (c) => {
      await c.request(WATCH, nul('@introduceDomain', 'tk'));
      await c.sync();
      c.take(); // the initial firing
      const reply = await c.request(SET_PERMS, nul('@introduceDomain', 'n0', 'r1'));
      await c.sync();
      return [showFrame(reply).replace(/^(\S+) \d+ /, '$1 '), ...c.take().filter((f) => f.type === 15).map((f) => showFrame(f))];
    });
  }
  t.deepEqual(events['4.17'], ['SET_PERMS 0 "OK\\0"']);
  t.deepEqual(events['4.20'], ['SET_PERMS 0 "OK\\0"', 'WATCH_EVENT 0 0 "@introduceDomain\\0tk\\0"']);
});

test('C xenstored: UNWATCH of an invalid path is EINVAL in 4.20 (4.17: ENOENT, as for an unknown watch)', async (t) => {
  const r = await both('cxenstored', [
    [UNWATCH, nul('', 'tk')],
    [UNWATCH, nul('//t', 'tk')],
    [UNWATCH, nul('/t', 'never-set')],
  ]);
  t.deepEqual(r['4.17'], ['ERROR 0 "ENOENT\\0"', 'ERROR 0 "ENOENT\\0"', 'ERROR 0 "ENOENT\\0"']);
  t.deepEqual(r['4.20'], ['ERROR 0 "EINVAL\\0"', 'ERROR 0 "EINVAL\\0"', 'ERROR 0 "ENOENT\\0"']);
});
