/**
 * Runs in dom0 on real Xen: what populating, mapping and unmapping cost per page through the
 * hypervisor layer, repeated, for issue 15's targets:
 *   - a borrower's release (remove_from_physmap, multicalls filling a hypercall buffer) costs at
 *     most 1.5x its apply (add_to_physmap_batch) per page;
 *   - populating a 2 MiB-aligned 64 MiB region (2 MiB extents) costs at least 10x less per page
 *     than with 4 KiB extents (the same region, largeExtents: false).
 *   node dist/test/xen/guest/hv-batching.js --owner N --borrower M [--runs 5] [--pages 16384]
 * Prints one line per run, then per operation the mean and worst run in µs per page, as
 * XENTIME lines (seconds per page) and a summary line. Exits 1 only if a call fails or Xen did
 * not take the 2 MiB extents; the targets are judged from the figures, not here.
 */
import { parseArgs } from 'node:util';
import { gfnRange, gfnSpan, PrivcmdTransport, XenHypervisor } from '../../../lib/hypervisor';

const { values } = parseArgs({
  options: {
    owner: { type: 'string' },
    borrower: { type: 'string' },
    runs: { type: 'string', default: '5' },
    pages: { type: 'string', default: '16384' },
  },
  strict: true,
});
const need = (v: string | undefined, name: string): number => {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a number`);
  return n;
};
const owner = need(values.owner, 'owner');
const borrower = need(values.borrower, 'borrower');
const runs = need(values.runs, 'runs');
const pages = need(values.pages, 'pages');
/** 2 MiB-aligned guest addresses above the domUs' RAM (0x60000000, 0x70000000). */
const OWNER_GFN = 0x60000;
const BORROWER_GFN = 0x70000;

/**
 * populate-2m and populate-4k: the region as a span (gfnSpan, what the manager passes: dom0's
 * work per extent); populate-2m-list: the same 2 MiB extents from a per-page list (GfnList),
 * the form before wave 3, for the difference.
 */
type Op = 'populate-2m' | 'populate-2m-list' | 'populate-4k' | 'map' | 'unmap' | 'free';
const samples = new Map<Op, number[]>();
/** Time inside the privcmd hypercall ioctls, per op: Xen's share (the rest is TypeScript). */
const inXen = new Map<Op, number[]>();
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The privcmd transport, with the time spent in its hypercalls counted. */
const transport = new PrivcmdTransport();
let hypercallMs = 0;
const hypercall = transport.hypercall.bind(transport);
transport.hypercall = (op, args) => {
  const t0 = now();
  try {
    return hypercall(op, args);
  } finally {
    hypercallMs += now() - t0;
  }
};

async function timed(op: Op, n: number, fn: () => Promise<void>, run: number): Promise<number> {
  hypercallMs = 0;
  const t0 = now();
  await fn();
  const usPerPage = ((now() - t0) * 1000) / n;
  samples.set(op, [...(samples.get(op) ?? []), usPerPage]);
  inXen.set(op, [...(inXen.get(op) ?? []), (hypercallMs * 1000) / n]);
  console.log(`XENTIME hv-batch:run${run}:${op}-per-page ${(usPerPage / 1e6).toFixed(9)}`);
  return usPerPage;
}

async function main(): Promise<void> {
  const hv = new XenHypervisor(transport);
  try {
    const v = await hv.xenVersion();
    const aligned = gfnRange(OWNER_GFN, pages);
    const span = gfnSpan(OWNER_GFN, pages);
    const bgfns = gfnRange(BORROWER_GFN, pages);
    await hv.setTarget(borrower, owner);
    for (let r = 1; r <= runs; r++) {
      // 2 MiB and 4 KiB populates alternate in order, so that neither always gets the frames
      // the other just freed.
      const populate4k = async (): Promise<void> => {
        await timed('populate-4k', pages, () => hv.populatePhysmap(owner, span, undefined, { largeExtents: false }), r);
        if (hv.lastPopulate!.smallExtents !== pages) throw new Error(`4 KiB extents asked, ${JSON.stringify(hv.lastPopulate)} issued`);
        await hv.decreaseReservation(owner, aligned);
      };
      const populate2mList = async (): Promise<void> => {
        await timed('populate-2m-list', pages, () => hv.populatePhysmap(owner, aligned), r);
        if (hv.lastPopulate!.largeExtents !== pages / 512) throw new Error(`run ${r}: Xen took ${JSON.stringify(hv.lastPopulate)} from the list`);
        await hv.decreaseReservation(owner, aligned);
      };
      if (r % 2 === 0) await populate4k();
      if (r % 2 === 1) await populate2mList();
      await timed('populate-2m', pages, () => hv.populatePhysmap(owner, span), r);
      const stats = hv.lastPopulate!;
      if (stats.largeExtents !== pages / 512) throw new Error(`run ${r}: Xen took ${stats.largeExtents} of ${pages / 512} 2 MiB extents (${JSON.stringify(stats)})`);
      await timed('map', pages, () => hv.addToPhysmapForeign({ borrower, owner, ownerGfns: aligned, borrowerGfns: bgfns }), r);
      await timed('unmap', pages, () => hv.removeFromPhysmap(borrower, bgfns), r);
      await timed('free', pages, () => hv.decreaseReservation(owner, aligned), r);
      if (r % 2 === 1) await populate4k();
      if (r % 2 === 0) await populate2mList();
    }
    const summary: string[] = [];
    const mean = (op: Op): number => samples.get(op)!.reduce((a, b) => a + b, 0) / runs;
    const worst = (op: Op): number => Math.max(...samples.get(op)!);
    const xen = (op: Op): number => inXen.get(op)!.reduce((a, b) => a + b, 0) / runs;
    for (const op of ['populate-2m', 'populate-2m-list', 'populate-4k', 'map', 'unmap', 'free'] as Op[]) {
      console.log(`XENTIME hv-batch:${op}-per-page ${(mean(op) / 1e6).toFixed(9)}`);
      console.log(`XENTIME hv-batch:${op}-worst-per-page ${(worst(op) / 1e6).toFixed(9)}`);
      console.log(`XENTIME hv-batch:${op}-in-xen-per-page ${(xen(op) / 1e6).toFixed(9)}`);
      summary.push(`${op} ${mean(op).toFixed(1)} (worst ${worst(op).toFixed(1)}, in Xen ${xen(op).toFixed(1)})`);
    }
    const release = mean('unmap') / mean('map');
    const extents = mean('populate-4k') / mean('populate-2m');
    console.log(`Xen ${v.version}, ${pages} pages x ${runs} runs, µs/page mean (worst run): ${summary.join(', ')}; ` +
      `unmap/map ${release.toFixed(2)}x (target <= 1.5), populate 4K/2M ${extents.toFixed(1)}x (target >= 10)`);
  } finally {
    await hv.close();
  }
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  console.log(`FAILED: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
