/**
 * Exploratory (dom0, real Xen): does a page a live domain frees (decrease_reservation) keep its
 * bytes when Xen hands it out again? Xen scrubs only pages of dying domains (free_domheap_pages:
 * `scrub = d->is_dying || scrub_debug || opt_scrub_domheap`).
 *   node dist/test/xen/guest/hv-reuse.js --domu N
 */
import { parseArgs } from 'node:util';
import { gfnRange, openPrivcmd } from '../../../lib/hypervisor';

const { values } = parseArgs({ options: { domu: { type: 'string' } }, strict: true });
const d = Number(values.domu);
const N = 256;

async function main(): Promise<void> {
  const hv = openPrivcmd();
  try {
    const a = gfnRange(0x60000, N);
    await hv.populatePhysmap(d, a, undefined, { largeExtents: false });
    const m = await hv.mapForeign(d, a);
    for (let i = 0; i < N; i++) m.buffer.write(`xen-sshm reuse probe ${i}`, i * 4096);
    m.unmap();
    await hv.decreaseReservation(d, a);
    const b = gfnRange(0x70000, N);
    await hv.populatePhysmap(d, b, undefined, { largeExtents: false });
    const v = await hv.mapForeign(d, b);
    let found = 0;
    let nonzero = 0;
    for (let i = 0; i < N; i++) {
      const page = v.buffer.subarray(i * 4096, (i + 1) * 4096);
      if (page.toString('latin1', 0, 21) === 'xen-sshm reuse probe ') found++;
      if (page.some((x) => x !== 0)) nonzero++;
    }
    v.unmap();
    await hv.decreaseReservation(d, b);
    console.log(`${N} pages written and freed by a live domain, ${N} populated again: ${found} hold a probe written before, ${nonzero} not all zero`);
  } finally {
    await hv.close();
  }
}
main().catch((e) => { console.log(`FAILED: ${(e as Error).message}`); process.exit(1); });
