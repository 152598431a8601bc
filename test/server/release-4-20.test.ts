/**
 * The in-memory server's 4.20 behaviours (release.ts: specialNodesInDatabase, controlTexts420),
 * held byte for byte to Debian 13's real C xenstored 4.20, and its 4.17 ones to Debian 12's
 * 4.17, on the requests where the two releases differ (test/xenstore/release-differences.test.ts).
 * The full differential test (differential*.test.ts) runs on both releases.
 */
import test from 'ava';
import { startServer } from '../../xenstore-wire/server';
import { startDaemon, XEN_RELEASES } from '../harness/daemons';
import { cxenstoredWithGuests, GuestTarget, inMemoryWithGuests, SMALL_QUOTAS, SMALL_QUOTA_ARGS } from './guest-setup';
import { RawConn, showFrame } from './wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');

const REQUESTS: [type: number, payload: string][] = [
  [0, nul('log')],
  [0, nul('help')],
  [0, nul('quota')],
  [0, nul('quota-soft')],
  [0, nul('log', 'on')],
  [0, nul('check')],
  [22, nul('/tool/xenstored', '9999')],
  [11, '/a\0v'],
  [22, nul('/a', '9999')],
  [11, '/b/c\0w'],
  [22, nul('/', '9999')],
  [22, nul('/b', '9999')],
  [22, nul('/b/c', '9999')],
  [5, nul('', 'tk')],
  [5, nul('//t', 'tk')],
  [5, nul('/t', 'never-set')],
  [5, nul('@introduceDomain', 'never-set')],
  // dom0's long paths: 4.17 refuses past 2048, 4.20 does not.
  [11, `/${'x'.repeat(2047)}\0v`],
  [11, `/${'x'.repeat(2048)}\0v`],
  [11, `/${'y'.repeat(3999)}\0v`],
  [4, nul(`/local/domain/123456/${'z'.repeat(2048)}`, 'tok')],
  [2, nul(`/${'y'.repeat(3999)}`)],
  // The special nodes: permissions, generations, their watch on SET_PERMS.
  [4, nul('@introduceDomain', 'sp')],
  [3, nul('@introduceDomain')],
  [3, nul('@releaseDomain')],
  [3, nul('@other')],
  [14, nul('@introduceDomain', 'n0', 'r1')],
  [14, nul('@other', 'n0')],
  [3, nul('@introduceDomain')],
  [11, '/after\0v'],
  [22, nul('/after', '9999')],
];

async function replies(socketPath: string): Promise<string[]> {
  const c = await RawConn.open(socketPath);
  try {
    const out: string[] = [];
    for (const [type, payload] of REQUESTS) out.push(showFrame(await c.request(type, payload)));
    // Then every watch event, in arrival order.
    await c.sync();
    for (const f of c.take()) if (f.type === 15 /* WATCH_EVENT */) out.push(showFrame(f));
    return out;
  } finally {
    c.close();
  }
}

for (const release of XEN_RELEASES) {
  test(`in-memory --release ${release} answers the release-specific requests as C xenstored ${release}`, async (t) => {
    const real = await startDaemon('cxenstored', { release });
    const ours = await startServer({ release });
    try {
      const want = await replies(real.socketPath);
      const got = await replies(ours.socketPath);
      t.deepEqual(got, want);
      // The requests do tell the releases apart: CONTROL log, and UNWATCH of an invalid path.
      t.is(want[0].startsWith('ERROR'), release === '4.17', want[0]);
      t.deepEqual(want.slice(13, 17).map((l) => l.replace(/^ERROR \d+ 0 /, '')),
        release === '4.17' ? ['"ENOENT\\0"', '"ENOENT\\0"', '"ENOENT\\0"', '"ENOENT\\0"'] : ['"EINVAL\\0"', '"EINVAL\\0"', '"ENOENT\\0"', '"ENOENT\\0"']);
    } finally {
      await ours.close();
      await real.stop();
    }
  });
}

/** SET_PERMS of a special node inside a transaction, with a watcher on another connection. */
async function specialInTransaction(socketPath: string): Promise<string[]> {
  const c = await RawConn.open(socketPath);
  const w = await RawConn.open(socketPath);
  try {
    const out = [showFrame(await w.request(4, nul('@introduceDomain', 'sp')))];
    await w.sync();
    w.take();
    const tx = await c.request(6, '\0');
    const id = Number(tx.payload.toString('latin1').replace(/\0/g, ''));
    out.push(showFrame(await c.request(14, nul('@introduceDomain', 'n0', 'r1'), id)));
    out.push(showFrame(await c.request(3, nul('@introduceDomain'), id)));
    await w.sync();
    out.push(`events before commit: ${w.take().filter((f) => f.type === 15).length}`);
    out.push(showFrame(await c.request(7, nul('T'), id)));
    await w.sync();
    out.push(...w.take().filter((f) => f.type === 15).map((f) => `after commit: ${showFrame(f)}`));
    out.push(showFrame(await c.request(3, nul('@introduceDomain'))));
    out.push(showFrame(await c.request(22, nul('/tool', '9999'))));
    return out;
  } finally {
    c.close();
    w.close();
  }
}

test('in-memory --release 4.20: a special node\'s SET_PERMS in a transaction takes effect and fires at commit, as in C xenstored 4.20', async (t) => {
  const real = await startDaemon('cxenstored', { release: '4.20' });
  const ours = await startServer({ release: '4.20' });
  try {
    const want = await specialInTransaction(real.socketPath);
    t.deepEqual(await specialInTransaction(ours.socketPath), want);
    t.true(want.includes('events before commit: 0') && want.some((l) => l.startsWith('after commit: WATCH_EVENT')), want.join('\n'));
  } finally {
    await ours.close();
    await real.stop();
  }
});

/**
 * A guest's node-size quota at its boundary (release.ts nodeSizeHdr): 4.17 counts a 24-byte
 * record header and refuses `>= quota`, 4.20 a 16-byte struct node_hdr and refuses `> quota`.
 * Values of 360 to 385 bytes for a node with one permission under a 400-byte quota.
 */
async function nodeSizes(target: GuestTarget): Promise<string[]> {
  const g = await RawConn.open(await target.guestSocket(1));
  try {
    const out: string[] = [];
    for (let n = 360; n <= 385; n++) out.push(`${n}: ${showFrame(await g.request(11, `ns-${n}\0${'v'.repeat(n)}`))}`);
    out.push(showFrame(await g.request(3, nul('ns-360'))));
    return out;
  } finally {
    g.close();
  }
}

for (const release of XEN_RELEASES) {
  test(`a guest's node-size quota at its boundary: in-memory --release ${release} as C xenstored ${release}`, async (t) => {
    const real = await cxenstoredWithGuests([1], [1], SMALL_QUOTA_ARGS, release);
    const ours = await inMemoryWithGuests([1], [1], SMALL_QUOTAS, release);
    try {
      const want = await nodeSizes(real);
      t.deepEqual(await nodeSizes(ours), want);
      t.is(want[want.length - 1].replace(/^\S+ \d+ 0 /, ''), '"n1\\0"', 'one permission');
      // 4.17: 24 + 8 + n >= 400 from n = 368; 4.20: 16 + 8 + n > 400 from n = 377.
      const first = want.findIndex((l) => l.includes('ENOSPC')) + 360;
      t.is(first, release === '4.17' ? 368 : 377);
    } finally {
      await ours.stop();
      await real.stop();
    }
  });
}
