/**
 * The release switch (issue 14 point 4). Below 4.21 the newer requests are refused exactly as
 * Debian 12's C xenstored 4.17 refuses them (held against the real daemon, test/harness);
 * C xenstored 4.20's source answers them the same way (process_message(): ENOSYS for a type
 * at or past XS_TYPE_COUNT, which 4.20's xs_wire.h ends after DIRECTORY_PART). From 4.21 and
 * 4.22 the expected answers are written out from those releases' tools/xenstored sources.
 */
import test from 'ava';
import { MessageType as T } from '../../xenstore-wire/constants';
import { startServer } from '../../xenstore-wire/server';
import type { XenRelease } from '../../xenstore-wire/server/release';
import { startDaemon } from '../harness/daemons';
import { introduceGuests } from './guest-setup';
import { RawConn, showFrame } from './wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');
const text = (f: { type: number; payload: Buffer }) => (f.type === T.ERROR ? `!${f.payload.toString('latin1').replace(/\0$/, '')}` : f.payload.toString('latin1').replace(/\0$/, ''));

/** Requests a 4.17/4.20 daemon does not know, or knows with fewer arguments. */
const NEWER: [number, string][] = [
  [T.GET_FEATURE, ''],
  [T.GET_FEATURE, nul('0')],
  [T.SET_FEATURE, nul('1', '0')],
  [T.GET_QUOTA, ''],
  [T.GET_QUOTA, nul('nodes')],
  [T.GET_QUOTA, nul('0', 'nodes')],
  [T.SET_QUOTA, nul('nodes', '5')],
  [T.SET_QUOTA, nul('1', 'nodes', '5')],
  [27, nul('x')],
  [0xffff, ''],
  [T.WATCH, nul('/rel', 'depth', '1')],
  [T.WATCH, nul('@releaseDomain/1', 'one')],
  [T.WATCH, nul('@releaseDomain', 'all')],
  [T.RELEASE, nul('1')],
  [T.GET_DOMAIN_PATH, nul('0')],
];

/** Every frame received for each request (replies and events), as comparable lines. */
async function session(socketPath: string): Promise<string[]> {
  const c = await RawConn.open(socketPath);
  const out: string[] = [];
  try {
    for (const [type, payload] of NEWER) {
      await c.request(type, payload);
      await c.sync();
      out.push(c.take().map(showFrame).join(' | '));
    }
  } finally {
    c.close();
  }
  return out;
}

test('below 4.21 the newer requests get exactly what C xenstored 4.17 answers (real daemon)', async (t) => {
  const ref = await startDaemon('cxenstored', { fakeDomains: [1] });
  try {
    await introduceGuests(ref.socketPath, [1]);
    const expected = await session(ref.socketPath);
    t.log(expected.join('\n'));
    // What the real daemon said, for the record: unknown types are ENOSYS, a depth is EINVAL,
    // `@releaseDomain/1` is a watch like any other (it fires once, on creation, never again).
    t.regex(expected[0], /ERROR 1 0 "ENOSYS\\0"/);
    t.regex(expected[10], /ERROR \d+ 0 "EINVAL\\0"/);
    for (const release of ['4.17', '4.20'] as XenRelease[]) {
      const s = await startServer({ release, domains: [1] });
      try {
        await introduceGuests(s.socketPath, [1]);
        t.deepEqual(await session(s.socketPath), expected, `release ${release}`);
      } finally {
        await s.close();
      }
    }
  } finally {
    await ref.stop();
  }
});

/** [who, request type, payload, expected reply text ('!ERRNO' for errors)] */
type Step = ['dom0' | 'g1', number, string, string];

async function runSteps(release: XenRelease, steps: Step[]): Promise<string[]> {
  const s = await startServer({ release, domains: [1, 2] });
  try {
    await introduceGuests(s.socketPath, [1]);
    const dom0 = await RawConn.open(s.socketPath);
    const g1 = await RawConn.open(await s.domainSocketPath(1));
    const out: string[] = [];
    for (const [who, type, payload, want] of steps) {
      const got = text(await (who === 'dom0' ? dom0 : g1).request(type, payload));
      out.push(got === want ? 'ok' : `${who} ${T[type] ?? type} ${JSON.stringify(payload)}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    dom0.close();
    g1.close();
    return out.filter((x) => x !== 'ok');
  } finally {
    await s.close();
  }
}

test('4.21: GET_FEATURE/SET_FEATURE (atoi domids, the daemon features 2 = ERROR); quotas and depth still refused', async (t) => {
  t.deepEqual(
    await runSteps('4.21', [
      ['dom0', T.GET_FEATURE, '', '2'],
      ['dom0', T.GET_FEATURE, nul('1'), '2'],
      ['g1', T.GET_FEATURE, nul('0'), '2'], // 4.21 lets a guest ask about any domain
      ['dom0', T.GET_FEATURE, nul('9'), '!ENOENT'], // no such domain in the hypervisor
      ['dom0', T.SET_FEATURE, nul('1', '0'), '!EBUSY'], // already introduced
      ['dom0', T.SET_FEATURE, nul('2', '4'), '!EINVAL'], // WATCHDEPTH is not 4.21's
      ['dom0', T.SET_FEATURE, nul('2', '0'), 'OK'],
      ['dom0', T.GET_FEATURE, nul('2'), '0'],
      ['g1', T.SET_FEATURE, nul('2', '2'), '!EACCES'],
      ['dom0', T.GET_QUOTA, nul('nodes'), '!ENOSYS'],
      ['dom0', T.WATCH, nul('/w', 'd', '1'), '!EINVAL'],
    ]),
    [],
  );
});

test('4.22: features 14, per-domain quotas, watch depth, @releaseDomain/<domid>', async (t) => {
  t.deepEqual(
    await runSteps('4.22', [
      ['dom0', T.GET_FEATURE, '', '14'],
      ['g1', T.GET_FEATURE, '', '14'],
      ['g1', T.GET_FEATURE, nul('0'), '!EACCES'], // 4.22: a domid only from dom0
      ['dom0', T.GET_FEATURE, nul('1x'), '!EINVAL'], // parse_domid()
      ['dom0', T.GET_FEATURE, nul('65536'), '!EINVAL'],
      ['dom0', T.SET_FEATURE, nul('2', '2'), 'OK'],
      ['dom0', T.GET_FEATURE, nul('2'), '2'],
      ['dom0', T.GET_QUOTA, '', 'nodes watches outstanding memory soft-memory transactions transaction-nodes node-permissions path-max node-size'],
      ['dom0', T.GET_QUOTA, nul('nodes'), '1000'],
      ['dom0', T.GET_QUOTA, nul('soft-memory'), '2097152'],
      ['dom0', T.GET_QUOTA, nul('soft-nodes'), '!EINVAL'], // nodes has no soft value
      ['dom0', T.GET_QUOTA, nul('bogus'), '!EINVAL'],
      ['dom0', T.GET_QUOTA, nul('9', 'nodes'), '!ENOENT'],
      ['dom0', T.SET_QUOTA, nul('1', 'nodes', '3'), 'OK'],
      ['dom0', T.GET_QUOTA, nul('1', 'nodes'), '3'],
      ['dom0', T.GET_QUOTA, nul('nodes'), '1000'], // the global value is unchanged
      ['dom0', T.SET_QUOTA, nul('nodes', '-1'), '!EINVAL'], // UINT_MAX marks "no such quota"
      ['g1', T.GET_QUOTA, nul('nodes'), '!EACCES'],
      // Domain 1 owns /local/domain/1 and its name: a third node fills its quota of 3.
      ['g1', T.WRITE, 'a\0x', '!ENOSPC'],
      ['dom0', T.SET_QUOTA, nul('1', 'nodes', '0'), 'OK'], // 0: no check
      ['g1', T.WRITE, 'a\0x', 'OK'],
      ['g1', T.WRITE, 'b\0x', 'OK'],
      ['dom0', T.WATCH, nul('/w', 'd', '-1'), '!EINVAL'],
      ['dom0', T.WATCH, nul('/w', 'd', 'x'), 'OK'], // atoi("x") is depth 0
      // Watches: a guest may not reach its quota (4.22 answers ENOSPC where 4.17 said E2BIG).
      ['dom0', T.SET_QUOTA, nul('1', 'watches', '2'), 'OK'],
      ['g1', T.WATCH, nul('w1', 't'), 'OK'],
      ['g1', T.WATCH, nul('w2', 't'), '!ENOSPC'],
      ['dom0', T.SET_QUOTA, nul('1', 'node-permissions', '2'), 'OK'],
      ['g1', T.SET_PERMS, nul('a', 'n1', 'r0'), '!ENOSPC'],
      ['g1', T.SET_PERMS, nul('a', 'n1'), 'OK'],
    ]),
    [],
  );
});

test('4.22 watch depth and per-domain special watches: which events fire', async (t) => {
  const s = await startServer({ release: '4.22', domains: [1, 2, 3] });
  try {
    const c = await RawConn.open(s.socketPath);
    const ev = async () => {
      await c.sync();
      return c
        .take()
        .filter((f) => f.type === T.WATCH_EVENT)
        .map((f) => f.payload.toString('latin1').split('\0').slice(0, 2).join(' '));
    };
    await c.request(T.WATCH, nul('/d', 'd0', '0'));
    await c.request(T.WATCH, nul('/d', 'd1', '1'));
    await c.request(T.WATCH, nul('/', 'r1', '1'));
    await c.request(T.WATCH, nul('@releaseDomain', 'all'));
    await c.request(T.WATCH, nul('@releaseDomain', 'dom', '1'));
    await c.request(T.WATCH, nul('@releaseDomain/2', 'two'));
    await c.request(T.WATCH, nul('@introduceDomain', 'intro0', '0'));
    t.deepEqual(await ev(), ['/d d0', '/d d1', '/ r1', '@releaseDomain all', '@releaseDomain dom', '@releaseDomain/2 two', '@introduceDomain intro0']);
    await c.request(T.WRITE, '/d/a/b\0x'); // two levels below /d, three below /
    t.deepEqual(await ev(), []);
    await c.request(T.WRITE, '/d/a\0x');
    t.deepEqual(await ev(), ['/d/a d1']);
    await c.request(T.WRITE, '/d\0x');
    t.deepEqual(await ev(), ['/d d0', '/d d1', '/d r1']);
    await c.request(T.RM, nul('/d')); // exact events for the removed descendants, subtree for /d
    t.deepEqual(await ev(), ['/d d0', '/d d1', '/d r1'], 'descendants fire exact events only');
    s.introduceDomain(2);
    s.introduceDomain(3);
    t.deepEqual(await ev(), [], 'a depth-0 special watch sees neither @introduceDomain nor its domid form');
    s.destroyDomain(3);
    t.deepEqual(await ev(), ['@releaseDomain all', '@releaseDomain/3 dom']);
    s.destroyDomain(2);
    t.deepEqual(await ev(), ['@releaseDomain all', '@releaseDomain/2 dom', '@releaseDomain/2 two']);
    c.close();
  } finally {
    await s.close();
  }
});
