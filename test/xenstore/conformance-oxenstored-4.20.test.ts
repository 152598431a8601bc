/**
 * The conformance suite, unchanged, against Debian 13's oxenstored 4.20 (xen-utils-4.20 run from
 * its private root by the harness: test/harness/releases.ts); test-eagain as on 4.17.
 */
import { startDaemon } from '../harness/daemons';
import { defineConformanceSuite } from './conformance';

defineConformanceSuite('oxenstored 4.20', async (opts) => {
  const d = await startDaemon('oxenstored', { release: '4.20', testEagain: opts?.testEagain ?? false });
  return { socketPath: d.socketPath, stop: () => d.stop(), kill: () => d.kill(), supportsTestEagain: true };
});
