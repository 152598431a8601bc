/**
 * The conformance suite against Debian's oxenstored (xen-utils-4.17), started by the harness;
 * oxenstored can inject random commit failures (test-eagain), which the suite uses.
 */
import { startDaemon } from '../harness/daemons';
import { defineConformanceSuite } from './conformance';

defineConformanceSuite('oxenstored', async (opts) => {
  const d = await startDaemon('oxenstored', { testEagain: opts?.testEagain ?? false });
  return { socketPath: d.socketPath, stop: () => d.stop(), kill: () => d.kill(), supportsTestEagain: true };
});
