/**
 * Issue 3's differential test: seeded random requests (every message type, several
 * connections, transactions, watches, domain operations, bad paths and payloads) sent in
 * lockstep to Debian's C xenstored (Xen 4.17 of Debian 12 and 4.20 of Debian 13) and to the
 * in-memory server; every reply and every watch event must be byte-identical. Differences kept on purpose are listed, with their reasons,
 * in docs/server-differences.md; the generator (diff-ops.ts) steers clear of exactly those.
 *
 * XEN_SSHM_DIFF_SEED=<n> replays one seed; XEN_SSHM_DIFF_OPS=<n> changes the length.
 */
import test from 'ava';
import { startDaemon, XenRelease } from '../harness/daemons';
import { startServer } from '../../xenstore-wire/server';
import { runDifferential } from './differential';

/**
 * The C xenstored releases the in-memory server is held to, each against the server under that
 * release switch (Debian 12's 4.17, Debian 13's 4.20; docs/release-differences.md).
 */
const SERVER_RELEASES: XenRelease[] = ['4.17', '4.20'];
const FAKE_DOMAINS = [1, 2, 3];
const SEED = Number(process.env.XEN_SSHM_DIFF_SEED ?? 20240917);
const OPS = Number(process.env.XEN_SSHM_DIFF_OPS ?? 12000);

for (const release of SERVER_RELEASES) test(`in-memory server answers >= 10,000 random requests exactly like C xenstored ${release}`, async (t) => {
  const reference = await startDaemon('cxenstored', { fakeDomains: FAKE_DOMAINS, release });
  const server = await startServer({ domains: FAKE_DOMAINS, release });
  try {
    const r = await runDifferential(
      { name: `C xenstored ${release}`, socketPath: reference.socketPath },
      { name: 'in-memory', socketPath: server.socketPath },
      { seed: SEED, count: OPS, conns: 4, fakeDomains: FAKE_DOMAINS },
    );
    t.log(`seed ${SEED}: ${r.requests} requests, ${r.events} watch events compared in ${r.ms} ms`);
    t.log(`replies: ${JSON.stringify(r.outcomes)}`);
    if (r.mismatches.length > 0) {
      const m = r.mismatches[0];
      t.fail(
        `request #${m.index} differs on connection ${m.conn}: ${m.op}\n` +
          `  C xenstored ${release}: ${JSON.stringify(m.reference)}\n  in-memory:   ${JSON.stringify(m.candidate)}\n` +
          `  replay with XEN_SSHM_DIFF_SEED=${SEED}`,
      );
      return;
    }
    t.true(r.requests >= 10_000, `only ${r.requests} requests`);
    // Every request type of Xen 4.17 was exercised, and both success and error paths.
    for (const type of [
      'CONTROL', 'DIRECTORY', 'READ', 'GET_PERMS', 'WATCH', 'UNWATCH', 'TRANSACTION_START', 'TRANSACTION_END',
      'INTRODUCE', 'RELEASE', 'GET_DOMAIN_PATH', 'WRITE', 'MKDIR', 'RM', 'SET_PERMS', 'IS_DOMAIN_INTRODUCED',
      'RESUME', 'SET_TARGET', 'RESET_WATCHES', 'DIRECTORY_PART',
    ]) {
      t.true((r.byType[type] ?? 0) > 0, `no ${type} request was generated`);
    }
    for (const outcome of ['EAGAIN', 'ENOENT', 'EINVAL', 'EEXIST', 'E2BIG', 'ENOSYS', 'TRANSACTION_END', 'DIRECTORY_PART']) {
      t.true((r.outcomes[outcome] ?? 0) > 0, `no ${outcome} reply was compared`);
    }
    t.true(r.events > 1000, `only ${r.events} watch events compared`);
    t.is(r.mismatches.length, 0);
  } finally {
    await server.close();
    await reference.stop();
  }
});
