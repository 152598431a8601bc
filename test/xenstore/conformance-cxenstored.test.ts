/** The conformance suite against Debian 12's C xenstored (xen-utils-4.17), started by the harness. */
import { startDaemon } from '../harness/daemons';
import { defineConformanceSuite } from './conformance';

defineConformanceSuite('cxenstored', async () => {
  const d = await startDaemon('cxenstored');
  return { socketPath: d.socketPath, stop: () => d.stop(), kill: () => d.kill(), supportsTestEagain: false };
});
