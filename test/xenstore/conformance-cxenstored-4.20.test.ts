/**
 * The conformance suite, unchanged, against Debian 13's C xenstored 4.20 (xen-utils-4.20 run from
 * its private root by the harness: test/harness/releases.ts).
 */
import { startDaemon } from '../harness/daemons';
import { defineConformanceSuite } from './conformance';

defineConformanceSuite('cxenstored 4.20', async () => {
  const d = await startDaemon('cxenstored', { release: '4.20' });
  return { socketPath: d.socketPath, stop: () => d.stop(), kill: () => d.kill(), supportsTestEagain: false };
});
