/**
 * Permissions for unprivileged connections, as tables of requests and the exact answers, run
 * unchanged against C xenstored (guests over their xenstore rings, xs-ring-bridge) and the
 * in-memory server (domain sockets). docs/misc/xenstore.txt "Permissions":
 *   - a node's first entry names its owner (who may do anything, SET_PERMS included) and the
 *     access of every domain not listed; later entries grant access to one domain each;
 *   - dom0 (the socket) may do anything; a guest's relative paths are under its home;
 *   - an error never says more than the nearest existing parent lets the caller see
 *     (EACCES instead of ENOENT);
 *   - nodes a guest creates are its own, with the parent's other entries;
 *   - SET_TARGET gives a domain the rights of its target;
 *   - quotas (here 40 nodes, 6 watches, 3 transactions, 400-byte nodes) bound guests only.
 */
import test from 'ava';
import { MessageType as T } from '../../xenstore-wire/constants';
import { cxenstoredWithGuests, GuestTarget, inMemoryWithGuests, SMALL_QUOTAS, SMALL_QUOTA_ARGS } from './guest-setup';
import { RawConn } from './wire';

type Who = 'dom0' | 'g1' | 'g2';
/** [who, request type, payload (NULs as \0), expected reply: 'OK', an errno, or the payload]. */
type Step = [Who, number, string, string] | [Who, 'events', string[]];

const FAKE_DOMAINS = [1, 2, 3];

/**
 * Each scenario runs on fresh connections; paths are distinct so they share one daemon. The
 * tables are the same for Xen 4.17 and 4.20 but for one rule: from 4.18 a SET_PERMS of a special
 * node fires its watches too (docs/release-differences.md).
 */
const scenarios = (release: '4.17' | '4.20'): Record<string, Step[]> => ({
  'a node with default permissions (n0) is dom0s alone': [
    ['dom0', T.WRITE, '/pa/x\0v', 'OK'],
    ['g1', T.READ, '/pa/x\0', 'EACCES'],
    ['g1', T.WRITE, '/pa/x\0w', 'EACCES'],
    ['g1', T.DIRECTORY, '/pa\0', 'EACCES'],
    ['g1', T.GET_PERMS, '/pa/x\0', 'EACCES'],
    ['g1', T.MKDIR, '/pa/y\0', 'EACCES'],
    ['g1', T.RM, '/pa/x\0', 'EACCES'],
    ['g1', T.SET_PERMS, '/pa/x\0n1\0', 'EACCES'],
    ['dom0', T.READ, '/pa/x\0', 'v'],
  ],
  'errors say no more than the parent shows: EACCES, or ENOENT under a readable parent': [
    ['dom0', T.WRITE, '/pb/x\0v', 'OK'],
    ['g1', T.READ, '/pb/x/missing\0', 'EACCES'],
    ['g1', T.READ, '/pb/missing/deeper\0', 'EACCES'],
    ['dom0', T.SET_PERMS, '/pb/x\0n0\0r1\0', 'OK'],
    ['g1', T.READ, '/pb/x/missing\0', 'ENOENT'],
    ['g2', T.READ, '/pb/x/missing\0', 'EACCES'],
    ['g1', T.RM, '/pb/x/missing\0', 'EACCES'],
  ],
  'ACL entries: r, w, b for one domain; the first entry for the others': [
    ['dom0', T.WRITE, '/pc/r\0v', 'OK'],
    ['dom0', T.SET_PERMS, '/pc/r\0n0\0r1\0', 'OK'],
    ['g1', T.READ, '/pc/r\0', 'v'],
    ['g1', T.WRITE, '/pc/r\0w', 'EACCES'],
    ['g2', T.READ, '/pc/r\0', 'EACCES'],
    ['dom0', T.WRITE, '/pc/w\0v', 'OK'],
    ['dom0', T.SET_PERMS, '/pc/w\0n0\0w1\0', 'OK'],
    ['g1', T.WRITE, '/pc/w\0by-g1', 'OK'],
    ['g1', T.READ, '/pc/w\0', 'EACCES'],
    ['dom0', T.READ, '/pc/w\0', 'by-g1'],
    ['dom0', T.WRITE, '/pc/b\0v', 'OK'],
    ['dom0', T.SET_PERMS, '/pc/b\0n0\0b2\0', 'OK'],
    ['g2', T.WRITE, '/pc/b\0by-g2', 'OK'],
    ['g2', T.READ, '/pc/b\0', 'by-g2'],
    ['g2', T.SET_PERMS, '/pc/b\0n0\0b2\0r1\0', 'EACCES'],
    ['dom0', T.WRITE, '/pc/all\0v', 'OK'],
    ['dom0', T.SET_PERMS, '/pc/all\0r0\0n2\0', 'OK'],
    ['g1', T.READ, '/pc/all\0', 'v'],
    ['g2', T.READ, '/pc/all\0', 'EACCES'],
    ['g1', T.WRITE, '/pc/all\0w', 'EACCES'],
  ],
  'the owner may do anything but give the node away': [
    ['dom0', T.WRITE, '/pd/o\0v', 'OK'],
    ['dom0', T.SET_PERMS, '/pd/o\0n1\0', 'OK'],
    ['g1', T.READ, '/pd/o\0', 'v'],
    ['g1', T.WRITE, '/pd/o\0mine', 'OK'],
    ['g1', T.SET_PERMS, '/pd/o\0n1\0r2\0', 'OK'],
    ['g2', T.READ, '/pd/o\0', 'mine'],
    ['g1', T.GET_PERMS, '/pd/o\0', 'n1\0r2\0'],
    ['g1', T.SET_PERMS, '/pd/o\0n2\0', 'EPERM'],
    ['g1', T.SET_PERMS, '/pd/o\0n1\0r2\0r3\0b2\0w1\0n0\0', 'ENOSPC'],
    ['g2', T.SET_PERMS, '/pd/o\0n2\0', 'EACCES'],
    ['g1', T.RM, '/pd/o\0', 'OK'],
    ['dom0', T.READ, '/pd/o\0', 'ENOENT'],
  ],
  'nodes a guest creates are its own and keep the parent ACL': [
    ['dom0', T.MKDIR, '/pe/w\0', 'OK'],
    ['dom0', T.SET_PERMS, '/pe/w\0n0\0w1\0r2\0', 'OK'],
    ['g1', T.WRITE, '/pe/w/new\0x', 'OK'],
    ['dom0', T.GET_PERMS, '/pe/w/new\0', 'n1\0w1\0r2\0'],
    ['g1', T.READ, '/pe/w/new\0', 'x'],
    ['g2', T.READ, '/pe/w/new\0', 'x'],
    ['g2', T.WRITE, '/pe/w/other\0x', 'EACCES'],
    ['dom0', T.WRITE, '/pe/w/bydom0\0x', 'OK'],
    ['dom0', T.GET_PERMS, '/pe/w/bydom0\0', 'n0\0w1\0r2\0'],
  ],
  'a guest\u2019s relative paths are under its home; GET_DOMAIN_PATH is open to all': [
    ['g1', T.READ, 'name\0', 'guest1'],
    ['g1', T.WRITE, 'data/rel\0r', 'OK'],
    ['dom0', T.READ, '/local/domain/1/data/rel\0', 'r'],
    ['g1', T.GET_PERMS, 'data/rel\0', 'n1\0'],
    ['g2', T.READ, '/local/domain/1/name\0', 'EACCES'],
    ['g2', T.GET_DOMAIN_PATH, '1\0', '/local/domain/1\0'],
    ['g1', T.READ, '/tool/xenstored\0', 'EACCES'],
  ],
  'toolstack requests are refused to guests': [
    ['g1', T.INTRODUCE, '3\0' + '1\0' + '1\0', 'EACCES'],
    ['g1', T.RELEASE, '2\0', 'EACCES'],
    ['g1', T.IS_DOMAIN_INTRODUCED, '1\0', 'EACCES'],
    ['g1', T.RESUME, '1\0', 'EACCES'],
    ['g1', T.SET_TARGET, '1\0' + '2\0', 'EACCES'],
    ['g1', T.CONTROL, 'check\0', 'EACCES'],
    ['g1', 26, '', 'ENOSYS'],
  ],
  'guests only get watch events for nodes they (or the parent) may read': [
    ['dom0', T.WRITE, '/pf/x\0v', 'OK'],
    ['g1', T.WATCH, '/pf\0t1\0', 'OK'],
    ['g1', 'events', ['/pf\0t1\0']],
    ['dom0', T.WRITE, '/pf/x\0v2', 'OK'],
    ['g1', 'events', []],
    ['dom0', T.SET_PERMS, '/pf/x\0n0\0r1\0', 'OK'],
    ['g1', 'events', ['/pf/x\0t1\0']],
    ['dom0', T.WRITE, '/pf/x\0v3', 'OK'],
    ['g1', 'events', ['/pf/x\0t1\0']],
    ['dom0', T.WRITE, '/pf/x/child\0c', 'OK'],
    ['g1', 'events', ['/pf/x/child\0t1\0']],
    ['dom0', T.SET_PERMS, '/pf/x\0n0\0', 'OK'],
    ['g1', 'events', ['/pf/x\0t1\0']],
    ['dom0', T.WRITE, '/pf/x\0v4', 'OK'],
    ['g1', 'events', []],
    ['g1', T.UNWATCH, '/pf\0t1\0', 'OK'],
  ],
  'special watches need read access to the special node': [
    ['g1', T.WATCH, '@releaseDomain\0r1\0', 'OK'],
    ['g1', 'events', ['@releaseDomain\0r1\0']],
    ['g1', T.WATCH, '@introduceDomain\0i1\0', 'OK'],
    ['g1', 'events', ['@introduceDomain\0i1\0']],
    ['dom0', T.INTRODUCE, '3\0' + '1\0' + '1\0', 'OK'],
    ['g1', 'events', []],
    ['dom0', T.SET_PERMS, '@releaseDomain\0n0\0r1\0', 'OK'],
    ['dom0', T.RELEASE, '3\0', 'OK'],
    ['g1', 'events', release === '4.20' ? ['@releaseDomain\0r1\0', '@releaseDomain\0r1\0'] : ['@releaseDomain\0r1\0']],
    ['dom0', T.SET_PERMS, '@introduceDomain\0n0\0r1\0', 'OK'],
    ['dom0', T.INTRODUCE, '3\0' + '1\0' + '1\0', 'OK'],
    ['g1', 'events', release === '4.20' ? ['@introduceDomain\0i1\0', '@introduceDomain\0i1\0'] : ['@introduceDomain\0i1\0']],
    ['g2', T.SET_PERMS, '/local/domain/2\0n2\0', 'OK'],
  ],
  'SET_TARGET gives a domain its target\u2019s rights': [
    ['dom0', T.WRITE, '/local/domain/1/secret\0s', 'OK'],
    ['dom0', T.SET_PERMS, '/local/domain/1/secret\0n1\0', 'OK'],
    ['g2', T.READ, '/local/domain/1/secret\0', 'EACCES'],
    ['dom0', T.SET_TARGET, '2\0' + '1\0', 'OK'],
    ['g2', T.READ, '/local/domain/1/secret\0', 's'],
    ['g2', T.WRITE, '/local/domain/1/secret\0by-g2', 'OK'],
    ['g1', T.READ, '/local/domain/1/secret\0', 'by-g2'],
  ],
  'quotas bound guests: node size, watches, transactions, node count': [
    ['g1', T.WRITE, 'q/small\0' + 'x'.repeat(300), 'OK'],
    ['g1', T.WRITE, 'q/big\0' + 'x'.repeat(400), 'ENOSPC'],
    ['dom0', T.WRITE, '/local/domain/1/q/bydom0\0' + 'x'.repeat(1000), 'OK'],
    ...[1, 2, 3, 4, 5, 6, 7].map((i): Step => ['g1', T.WATCH, `q\0w${i}\0`, 'OK']),
    ['g1', T.WATCH, 'q\0w8\0', 'E2BIG'],
    ['g1', T.RESET_WATCHES, '', 'OK'],
    ['g1', T.WATCH, 'q\0w8\0', 'OK'],
    ['g1', T.TRANSACTION_START, '\0', '1\0'],
    ['g1', T.TRANSACTION_START, '\0', '2\0'],
    ['g1', T.TRANSACTION_START, '\0', '3\0'],
    ['g1', T.TRANSACTION_START, '\0', '4\0'],
    ['g1', T.TRANSACTION_START, '\0', 'ENOSPC'],
    ['g1', T.RESET_WATCHES, '', 'OK'],
    // Guest 1 owns 9 nodes by now (its home, name, data, data/rel, /pe/w/new, secret, q, q/small,
    // q/bydom0): 31 more reach the quota of 40.
    ...Array.from({ length: 31 }, (_, i): Step => ['g1', T.WRITE, `q/n${i}\0`, 'OK']),
    ['g1', T.WRITE, 'q/one-too-many\0', 'ENOSPC'],
    ['dom0', T.WRITE, '/local/domain/1/q/dom0-has-no-quota\0', 'OK'],
  ],
});

async function runScenario(target: GuestTarget, steps: Step[]): Promise<string[]> {
  const conns: Record<Who, RawConn> = {
    dom0: await RawConn.open(target.socketPath),
    g1: await RawConn.open(await target.guestSocket(1)),
    g2: await RawConn.open(await target.guestSocket(2)),
  };
  const problems: string[] = [];
  // Watch events received so far per connection, checked (and cleared) by 'events' steps.
  const events: Record<Who, string[]> = { dom0: [], g1: [], g2: [] };
  const collect = () => {
    for (const who of Object.keys(conns) as Who[]) {
      for (const f of conns[who].take()) if (f.type === T.WATCH_EVENT) events[who].push(f.payload.toString('latin1'));
    }
  };
  try {
    // A guest's connection to C xenstored is its ring, which outlives our socket: start each
    // scenario without the watches and transactions an earlier one left.
    for (const g of ['g1', 'g2'] as const) {
      const r = await conns[g].request(T.RESET_WATCHES, '');
      if (r.type !== T.RESET_WATCHES) problems.push(`${g} RESET_WATCHES failed`);
    }
    for (const c of Object.values(conns)) c.take();
    for (const [i, step] of steps.entries()) {
      const [who, type, arg] = step;
      if (type === 'events') {
        await Promise.all(Object.values(conns).map((c) => c.sync()));
        collect();
        const got = events[who];
        events[who] = [];
        if (JSON.stringify(got) !== JSON.stringify(arg)) problems.push(`step ${i} ${who} events: got ${JSON.stringify(got)}, expected ${JSON.stringify(arg)}`);
        continue;
      }
      const expected = step[3] as string;
      const f = await conns[who].request(type, arg as string);
      const text = f.payload.toString('latin1');
      const got = f.type === T.ERROR ? text.replace(/\0$/, '') : text === 'OK\0' ? 'OK' : text;
      if (got !== expected) problems.push(`step ${i} ${who} ${T[type] ?? type} ${JSON.stringify(arg)}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
      collect();
    }
  } finally {
    for (const c of Object.values(conns)) c.close();
  }
  return problems;
}

// Each release's tables on its C xenstored and on the in-memory server under that release.
const targets: Record<string, [() => Promise<GuestTarget>, '4.17' | '4.20']> = {
  'C xenstored': [() => cxenstoredWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTA_ARGS, '4.17'), '4.17'],
  'in-memory': [() => inMemoryWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTAS, '4.17'), '4.17'],
  'C xenstored 4.20': [() => cxenstoredWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTA_ARGS, '4.20'), '4.20'],
  'in-memory 4.20': [() => inMemoryWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTAS, '4.20'), '4.20'],
};

for (const [label, [start, release]] of Object.entries(targets)) {
  let target: GuestTarget | undefined;
  test.before(async () => {
    target = await start();
  });
  test.after.always(async () => {
    await target?.stop();
  });
  for (const [name, steps] of Object.entries(scenarios(release))) {
    // Serial: scenarios change shared state (special-node permissions, SET_TARGET).
    test.serial(`${label}: ${name}`, async (t) => {
      const problems = await runScenario(target!, steps);
      t.deepEqual(problems, []);
    });
  }
}
