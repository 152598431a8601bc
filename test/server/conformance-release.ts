/**
 * The client conformance suite (test/xenstore/conformance.ts), unchanged, against the
 * in-memory server under one release switch: what that release's C xenstored implements of
 * the protocol after 4.17 (GET/SET_FEATURE from 4.21; GET/SET_QUOTA, watch depth and
 * `@releaseDomain/<domid>` from 4.22) is declared from release.ts, so the suite checks the
 * newer requests are answered where the release has them and refused where it does not.
 */
import { startServer } from '../../xenstore-wire/server';
import { releaseRules, XenRelease } from '../../xenstore-wire/server/release';
import { defineConformanceSuite } from '../xenstore/conformance';

export function defineReleaseConformance(release: XenRelease): void {
  const rules = releaseRules(release);
  defineConformanceSuite(`in-memory ${release}`, async (opts) => {
    const s = await startServer({ release, ...(opts?.testEagain ? { faults: { commitEagainRate: 1 / 3, seed: 42 } } : {}) });
    return {
      socketPath: s.socketPath,
      stop: () => s.close(),
      kill: () => s.close(),
      supportsTestEagain: true,
      newerProtocol: { features: rules.featureRequests, quotas: rules.quotaRequests, watchDepth: rules.watchDepth },
    };
  });
}
