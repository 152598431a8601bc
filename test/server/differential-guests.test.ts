/**
 * The differential test again, with two of the four connections being guests (domains 1 and
 * 2, unprivileged): over their xenstore rings for C xenstored (xs-ring-bridge), over domain
 * sockets for the in-memory server. Small quotas (40 nodes, 6 watches, 3 transactions,
 * 400-byte nodes) so that ENOSPC/E2BIG paths are hit. Every reply and event must match.
 */
import test from 'ava';
import { XenRelease } from '../harness/daemons';
import { runDifferential, Side } from './differential';
import { cxenstoredWithGuests, GuestTarget, inMemoryWithGuests, SMALL_QUOTAS, SMALL_QUOTA_ARGS } from './guest-setup';

/**
 * The C xenstored releases the in-memory server is held to, each against the server under that
 * release switch (Debian 12's 4.17, Debian 13's 4.20; docs/release-differences.md).
 */
const SERVER_RELEASES: XenRelease[] = ['4.17', '4.20'];
const FAKE_DOMAINS = [1, 2, 3];
const SEED = Number(process.env.XEN_SSHM_DIFF_SEED ?? 20240918);
const OPS = Number(process.env.XEN_SSHM_DIFF_GUEST_OPS ?? 6000);

async function side(t: GuestTarget): Promise<Side> {
  return { name: t.label, socketPath: t.socketPath, connSockets: { 2: await t.guestSocket(1), 3: await t.guestSocket(2) } };
}

for (const release of SERVER_RELEASES) test(`guests (unprivileged) and dom0 get the same answers from the in-memory server as from C xenstored ${release}`, async (t) => {
  const reference = await cxenstoredWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTA_ARGS, release);
  const candidate = await inMemoryWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTAS, release);
  try {
    const r = await runDifferential(await side(reference), await side(candidate), {
      seed: SEED,
      count: OPS,
      conns: 4,
      fakeDomains: FAKE_DOMAINS,
      guestConns: [2, 3],
    });
    t.log(`seed ${SEED}: ${r.requests} requests (half from guests), ${r.events} watch events compared in ${r.ms} ms`);
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
    // The permission and quota paths were all taken.
    for (const outcome of ['EACCES', 'ENOSPC', 'E2BIG', 'EPERM', 'EAGAIN', 'ENOENT']) {
      t.true((r.outcomes[outcome] ?? 0) > 0, `no ${outcome} reply was compared`);
    }
    t.true((r.outcomes.EACCES ?? 0) > 500, `only ${r.outcomes.EACCES} EACCES`);
    t.true(r.events > 300, `only ${r.events} watch events`);
    t.is(r.mismatches.length, 0);
  } finally {
    await candidate.stop();
    await reference.stop();
  }
});
