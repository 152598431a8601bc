/** The contract fixture on the simulated host: fresh owner and borrower domUs. */
import { SimHypervisor, type SimRelease, type XenArch } from '../../lib/hypervisor';
import { MAX_ADD_TO_PHYSMAP_BATCH } from '../../lib/hypervisor/abi';
import { PAGE_SIZE } from '../../lib/vocabulary';
import type { ContractFixture } from './contract';

/** The large region: one full batch and then some. */
export const SIM_LARGE_PAGES = MAX_ADD_TO_PHYSMAP_BATCH + 513;

export async function makeSimFixture(arch: XenArch, dir?: string, release?: SimRelease, extraversion?: string): Promise<ContractFixture> {
  const xenVersion = release && extraversion !== undefined ? { xenVersion: { major: Number(release.split('.')[0]), minor: Number(release.split('.')[1]), extraversion } } : {};
  const hv = new SimHypervisor({ arch, ...(dir ? { dir } : {}), ...(release ? { release } : {}), ...xenVersion });
  // Like a 128 MiB guest (RAM outside the simulated physmap) allowed to grow by the region.
  const owner = await hv.createDomain({ name: 'owner', extraPages: 32768, maxPages: 32768 + SIM_LARGE_PAGES + 2048 });
  const borrower = await hv.createDomain({ name: 'borrower', extraPages: 32768, maxPages: 32768 + 1024 });
  return {
    hv,
    owner,
    borrower,
    missingDomid: 0x7000,
    ownerGfnBase: 0x8000000,
    borrowerGfnBase: 0x9000000,
    largePages: SIM_LARGE_PAGES,
    async guestRead(domid, gfn, length) {
      const v = await hv.guestMap(domid, [gfn]);
      try {
        return Buffer.from(v.buffer.subarray(0, Math.min(length, PAGE_SIZE)));
      } finally {
        v.unmap();
      }
    },
    async guestWrite(domid, gfn, data) {
      const v = await hv.guestMap(domid, [gfn]);
      data.copy(v.buffer, 0);
      v.unmap();
    },
    async interdomainPort() {
      // dom0 makes the port, the borrower binds it as itself.
      const port = await hv.evtchnAllocUnbound(owner, borrower);
      const remotePort = await hv.guestEvtchnBindInterdomain(borrower, owner, port);
      return { port, remoteDom: borrower, remotePort };
    },
    async dispose() {
      await hv.close();
    },
  };
}
