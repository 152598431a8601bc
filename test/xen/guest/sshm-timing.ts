/**
 * Preloaded into the `xen-sshm` command by the real-Xen checks (lib.sh `sshm`):
 *
 *   XEN_TIMING_LABEL=apply-vm1 node -r .../sshm-timing.js /usr/local/bin/xen-sshm apply vm1.cfg ...
 *
 * It instruments the manager of the xen-sshm being run (the installed package, found from the
 * command's real path), not this checkout's copy.
 *
 * so that a figure measures the manager's work on real Xen and not node's start-up under QEMU
 * (4-8 s there). The command runs unchanged: timers are only wrapped around the manager's
 * public methods and the calls its hypervisor object makes. At the end of each call, on
 * stderr (seconds; run-checks.sh copies XENTIME lines to the console):
 *
 *   XENTIME <label>:apply 1.234              the whole SharedMemoryManager.apply() (or release...)
 *   XENTIME <label>:populate 0.450           the hypercalls of one kind it made, summed
 *   XENTIME <label>:populate-per-page 0.0000275   the same divided by the pages they covered
 *
 * Kinds: populate, map (add_to_physmap gmfn_foreign), unmap (remove_from_physmap), free
 * (decrease_reservation), set-target, max-mem, map-dom0 (MMAPBATCH_V2).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GfnList, Hypervisor } from '../../../lib/hypervisor/types';
import type { SharedMemoryManager as Manager } from '../../../lib/manager';

/** The manager module of the command this preload runs in: <package>/dist/lib/cli/xen-sshm.js -> <package>/dist/lib/manager. */
const managerModule = path.resolve(path.dirname(fs.realpathSync(process.argv[1])), '..', 'manager');

const { SharedMemoryManager } = require(managerModule) as { SharedMemoryManager: typeof Manager };

const label = process.env.XEN_TIMING_LABEL || 'xen-sshm';

interface Tally {
  ms: number;
  pages: number;
}

/** Hypervisor methods timed, with the name printed and how to count their pages. */
const TIMED: Array<[keyof Hypervisor, string, (args: unknown[]) => number]> = [
  ['populatePhysmap', 'populate', (a) => (a[1] as GfnList).length],
  ['addToPhysmapForeign', 'map', (a) => (a[0] as { ownerGfns: GfnList }).ownerGfns.length],
  ['removeFromPhysmap', 'unmap', (a) => (a[1] as GfnList).length],
  ['decreaseReservation', 'free', (a) => (a[1] as GfnList).length],
  ['setTarget', 'set-target', () => 0],
  ['setMaxMem', 'max-mem', () => 0],
  ['mapForeign', 'map-dom0', (a) => (a[1] as GfnList).length],
];

const tallies = new Map<string, Tally>();
const wrapped = new WeakSet<object>();

/** Wraps the timed methods of the manager's hypervisor object, once. */
function instrument(hv: Hypervisor): void {
  if (wrapped.has(hv)) return;
  wrapped.add(hv);
  const table = hv as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const [method, name, pages] of TIMED) {
    const orig = table[method];
    if (typeof orig !== 'function') continue;
    table[method] = async (...args: unknown[]): Promise<unknown> => {
      const t0 = process.hrtime.bigint();
      try {
        return await orig.apply(hv, args);
      } finally {
        const t = tallies.get(name) ?? { ms: 0, pages: 0 };
        t.ms += Number(process.hrtime.bigint() - t0) / 1e6;
        t.pages += pages(args);
        tallies.set(name, t);
      }
    };
  }
}

function report(method: string, ms: number): void {
  const lines = [`XENTIME ${label}:${method} ${(ms / 1000).toFixed(3)}`];
  for (const [name, t] of tallies) {
    lines.push(`XENTIME ${label}:${name} ${(t.ms / 1000).toFixed(4)}`);
    if (t.pages > 0) lines.push(`XENTIME ${label}:${name}-per-page ${(t.ms / 1000 / t.pages).toFixed(8)}`);
    lines.push(`XENSSHM ${label} ${name} ${t.pages} pages ${t.ms.toFixed(1)} ms`);
  }
  tallies.clear();
  process.stderr.write(lines.join('\n') + '\n');
}

type Method = 'apply' | 'release' | 'reconcile';
const proto = SharedMemoryManager.prototype as unknown as Record<Method, (...args: unknown[]) => Promise<unknown>>;
for (const method of ['apply', 'release', 'reconcile'] as Method[]) {
  const orig = proto[method];
  proto[method] = async function (this: Manager, ...args: unknown[]): Promise<unknown> {
    instrument(this.hv);
    const t0 = process.hrtime.bigint();
    try {
      return await orig.apply(this, args);
    } finally {
      report(method, Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
}
