/**
 * The client conformance suite, unchanged, against the in-memory xenstored (issue 3).
 * `testEagain` maps to the server's fault injection: a third of the commits that would
 * succeed fail with EAGAIN instead, like oxenstored's test-eagain.
 */
import { startServer } from '../../xenstore-wire/server';
import { defineConformanceSuite } from './conformance';

defineConformanceSuite('in-memory', async (opts) => {
  const s = await startServer(opts?.testEagain ? { faults: { commitEagainRate: 1 / 3, seed: 42 } } : {});
  return { socketPath: s.socketPath, stop: () => s.close(), kill: () => s.close(), supportsTestEagain: true };
});
