/**
 * Runs in dom0 on real Xen (node 18): two running domUs share pages through the privcmd
 * backend, with no manager involved, and each guest sees the other's bytes at its own address
 * through /dev/mem. This is the data path the three-VM scenario relies on, checked end to end:
 * populate the owner's frames, set_target(borrower -> owner), add_to_physmap_batch
 * (gmfn_foreign) into the borrower, then write in one guest and read in the other, both ways.
 *
 *   node dist/test/xen/guest/shared-page.js --owner probe1 --borrower probe2 [--offset-pages N]
 *
 * --offset-pages N maps the borrower's window N pages further into the owner's region: the
 * deliberately broken mapping of the test of the test. The data check must then fail.
 * Guest memory is read and written through each domU's agent (/xen/guest-mem.sh).
 */
import { execFileSync } from 'node:child_process';
import { HypercallError, openPrivcmd } from '../../../lib/hypervisor';

const PAGES = 16;
/** Guest-physical bases: above both guests' 128 MiB of RAM, inside Xen's guest RAM bank. */
const OWNER_GFN = 0x70000;
const BORROWER_GFN = 0x78000;

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const xl = (...args: string[]): string => execFileSync('xl', args, { encoding: 'utf8', timeout: 60_000 }).trim();

function guest(domid: number, gfn: number, mode: 'read' | 'write', length: number, data = ''): string {
  return execFileSync('sh', ['/xen/guest-mem.sh'], {
    env: { ...process.env, DOMID: String(domid), GFN: gfn.toString(16), MODE: mode, LENGTH: String(length), DATA: data },
    encoding: 'utf8', timeout: 90_000,
  }).trim();
}

/** Bytes as text, non-printable ones as '.', for the failure message. */
const shown = (hex: string): string => Buffer.from(hex, 'hex').toString('latin1').replace(/[^\x20-\x7e]/g, '.');

const range = (start: number, n: number): number[] => Array.from({ length: n }, (_, i) => start + i);

async function main(): Promise<void> {
  const ownerName = arg('owner');
  const borrowerName = arg('borrower');
  const offset = Number(arg('offset-pages', '0'));
  const owner = Number(xl('domid', ownerName));
  const borrower = Number(xl('domid', borrowerName));
  const hv = openPrivcmd();
  const ownerGfns = range(OWNER_GFN, PAGES);
  // The borrower's window starts `offset` pages into the owner's region (0: the right mapping).
  const mappedOwner = range(OWNER_GFN + offset, PAGES - offset);
  const borrowerGfns = range(BORROWER_GFN, PAGES - offset);
  const t0 = Date.now();
  try {
    const info = await hv.domainInfo(owner);
    if (!info) throw new Error(`${ownerName} (d${owner}) is gone`);
    if (info.headroomPages < PAGES) throw new Error(`${ownerName} has ${info.headroomPages} pages of headroom, needs ${PAGES}`);
    await hv.populatePhysmap(owner, ownerGfns);
    try {
      await hv.setTarget(borrower, owner);
    } catch (e) {
      // A second run on the same pair (the broken twin) finds the target already set: once per
      // domain, forever (FACTS.md section 4).
      if (!(e instanceof HypercallError && e.code === 'EINVAL' && offset !== 0)) throw e;
    }
    await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: mappedOwner, borrowerGfns });
    const setupMs = Date.now() - t0;

    // Pages checked: first, one in the middle, last of the borrower's window.
    const probes = [0, 7, borrowerGfns.length - 1];
    const stamp = `${process.pid}-${Date.now() % 100000}`;
    for (const k of probes) {
      // The owner writes at ITS page k; the borrower must read it at ITS page k.
      const text = Buffer.from(`owner page ${k} ${stamp}`).toString('hex');
      guest(owner, OWNER_GFN + k, 'write', text.length / 2, text);
      const got = guest(borrower, BORROWER_GFN + k, 'read', text.length / 2);
      if (got !== text) {
        throw new Error(`borrower page ${k} reads "${shown(got)}", ` +
          `expected ${JSON.stringify(Buffer.from(text, 'hex').toString())} written by the owner`);
      }
      const back = Buffer.from(`borrower page ${k} ${stamp}`).toString('hex');
      guest(borrower, BORROWER_GFN + k, 'write', back.length / 2, back);
      const seen = guest(owner, OWNER_GFN + k, 'read', back.length / 2);
      if (seen !== back) {
        throw new Error(`owner page ${k} reads "${shown(seen)}", ` +
          `expected ${JSON.stringify(Buffer.from(back, 'hex').toString())} written by the borrower`);
      }
    }
    console.log(`XENTIME shared-page-setup ${(setupMs / 1000).toFixed(3)}`);
    console.log(`${ownerName} (d${owner}) and ${borrowerName} (d${borrower}) share ${PAGES} pages: ` +
      `pages ${probes.join(', ')} written at 0x${(OWNER_GFN * 4096).toString(16)} read at 0x${(BORROWER_GFN * 4096).toString(16)} and back ` +
      `(set-up ${setupMs} ms)`);
  } finally {
    // Undo, so that the twin (or anyone) starts from the same state.
    await hv.removeFromPhysmap(borrower, borrowerGfns, { missingOk: true }).catch(() => undefined);
    await hv.decreaseReservation(owner, ownerGfns).catch(() => undefined);
    await hv.close();
  }
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  console.log(`${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
