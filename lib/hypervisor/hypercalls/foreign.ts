/**
 * Foreign mappings: add_to_physmap_batch (XENMAPSPACE_gmfn_foreign) into a borrower,
 * remove_from_physmap through multicalls, and IOCTL_PRIVCMD_MMAPBATCH_V2 into this process.
 */
import { Hypercall, MAX_ADD_TO_PHYSMAP_BATCH, XenMapSpace, XenMem } from '../abi';
import { describePages, errnoName, HypercallError, type PageError } from '../errors';
import { MULTICALL_ENTRY, writeAddToPhysmapBatch, XEN_ADD_TO_PHYSMAP_BATCH, XEN_REMOVE_FROM_PHYSMAP } from '../layout';
import { X86_TRANSLATED_FOREIGN_MAPS } from '../releases';
import type { ForeignMapping, ForeignMapRequest, GfnList, ProgressCallback } from '../types';
import { PAGE_SIZE } from '../../vocabulary';
import { checkDomid, checkGfns, EACCES, EINVAL, ENOENT, EPERM, ESRCH, hex, HYPERCALL_BUFFER_BYTES, writeU64List, type HypercallContext } from './context';
import { domainInfo } from './domctl';
import { xenRules, xenVersion } from './version';

/** errs[] value meaning "Xen did not get to this page". */
const ERR_UNTOUCHED = 0x7fffffff;
const TWO32 = 2 ** 32;

/** remove_from_physmap calls per multicall: an entry and its argument each, filling one buffer. */
export const REMOVE_MULTICALL_BATCH = Math.floor(HYPERCALL_BUFFER_BYTES / (MULTICALL_ENTRY.size + XEN_REMOVE_FROM_PHYSMAP.size));

/** Word (4-byte) offsets of the fields the remove encoder writes, from the layout tables. */
function words(byteOffset: number): number {
  if (byteOffset % 4 !== 0) throw new Error(`field at byte ${byteOffset} is not 4-aligned`);
  return byteOffset / 4;
}
const E_WORDS = words(MULTICALL_ENTRY.size);
const E_OP = words(MULTICALL_ENTRY.fields.op.offset);
const E_RESULT = words(MULTICALL_ENTRY.fields.result.offset);
const E_ARG0 = words(MULTICALL_ENTRY.fields.arg0.offset);
const E_ARG1 = words(MULTICALL_ENTRY.fields.arg1.offset);
const R_WORDS = words(XEN_REMOVE_FROM_PHYSMAP.size);
const R_GPFN = words(XEN_REMOVE_FROM_PHYSMAP.fields.gpfn.offset);
const R_DOMID = XEN_REMOVE_FROM_PHYSMAP.fields.domid.offset;

export function addForeign(cx: HypercallContext, req: ForeignMapRequest): void {
  const call = 'memory_op(add_to_physmap_batch)';
  const borrower = checkDomid(req.borrower, call);
  const owner = checkDomid(req.owner, call);
  const { ownerGfns, borrowerGfns } = req;
  if (ownerGfns.length !== borrowerGfns.length) {
    throw new HypercallError({ call, errno: EINVAL, domid: borrower, remoteDomid: owner, message: `ownerGfns has ${ownerGfns.length} pages but borrowerGfns ${borrowerGfns.length}` });
  }
  checkGfns(ownerGfns, call, owner);
  checkGfns(borrowerGfns, call, borrower);
  const n = ownerGfns.length;
  if (n === 0) return;
  const v = xenVersion(cx);
  if (v.arch === 'x86' && borrower !== 0 && !xenRules(cx).translatedDomUBorrowers) {
    // Before 845a60b63b (Xen 4.19), p2m_add_foreign() refuses every translated domU with -EPERM
    // (arch_acquire_resource_check(): only the hardware domain; releases.ts). Said before trying.
    const info = domainInfo(cx, borrower);
    throw new HypercallError({
      call, errno: EPERM, domid: borrower, remoteDomid: owner, gfn: borrowerGfns[0], xenVersion: v.version,
      reason: info && !info.hvm ? 'borrower-pv' : 'borrower-release', allowedFrom: X86_TRANSLATED_FOREIGN_MAPS.since,
      message: `Xen ${v.version} on x86 maps another domain's frames into the hardware domain only (arch_acquire_resource_check): d${borrower} cannot receive d${owner}'s frames; ` +
        `HVM/PVH domUs can from Xen ${X86_TRANSLATED_FOREIGN_MAPS.since} (commit ${X86_TRANSLATED_FOREIGN_MAPS.commit})`,
    });
  }

  const idxOff = XEN_ADD_TO_PHYSMAP_BATCH.size;
  let mapped = 0;
  while (mapped < n) {
    const count = Math.min(MAX_ADD_TO_PHYSMAP_BATCH, n - mapped);
    const gpfnOff = idxOff + 8 * count;
    const errOff = gpfnOff + 8 * count;
    const b = cx.buf(errOff + 4 * count);
    writeU64List(b, idxOff, ownerGfns, mapped, count);
    writeU64List(b, gpfnOff, borrowerGfns, mapped, count);
    const errs = new Int32Array(b.bytes.buffer, b.bytes.byteOffset + errOff, count);
    errs.fill(ERR_UNTOUCHED);
    writeAddToPhysmapBatch(b.view, 0, {
      domid: borrower, space: XenMapSpace.gmfn_foreign, size: count, foreignDomid: owner,
      idxs: b.address + BigInt(idxOff), gpfns: b.address + BigInt(gpfnOff), errs: b.address + BigInt(errOff),
    });
    const rc = cx.hypercall(Hypercall.memory_op, [XenMem.add_to_physmap_batch, b.address]);

    // Read every per-page result: the call returns 0 even when every page was refused.
    let bad = 0;
    for (let i = 0; i < count; i++) if (errs[i] !== 0) bad++;
    if (rc < 0 || bad > 0) {
      const refused: PageError[] = [];
      const okInBatch: number[] = [];
      for (let i = 0; i < count; i++) {
        const e = errs[i];
        if (e === 0) okInBatch.push(mapped + i);
        else if (e !== ERR_UNTOUCHED) {
          refused.push({ index: mapped + i, gfn: borrowerGfns[mapped + i], foreignGfn: ownerGfns[mapped + i], errno: -e, code: errnoName(-e) });
        }
      }
      const undo = undoForeign(cx, borrower, borrowerGfns, mapped, okInBatch);
      if (rc < 0) {
        throw new HypercallError({
          call, errno: -rc, domid: borrower, remoteDomid: owner, done: mapped + okInBatch.length, pages: refused,
          message: `add_to_physmap_batch(d${owner} -> d${borrower}): ${errnoName(-rc)}` +
            (-rc === ESRCH ? ` (d${borrower} does not exist)` : -rc === EACCES ? ` (d${borrower} is not a translated guest)` : '') + undo,
        });
      }
      throw new HypercallError({
        call, errno: refused[0].errno, domid: borrower, remoteDomid: owner, gfn: refused[0].gfn, done: mapped + okInBatch.length, pages: refused,
        message: `add_to_physmap_batch(d${owner} -> d${borrower}): ${describePages(refused)}${pageFact(refused[0].code, owner, borrower)}${undo}`,
      });
    }
    mapped += count;
    req.onProgress?.(mapped, n);
  }
}

/** What a per-page errno of a gmfn_foreign map means in Xen's source (facts, no advice). */
function pageFact(code: string, owner: number, borrower: number): string {
  switch (code) {
    case 'EPERM':
      // xsm_map_gmfn_foreign (XSM_TARGET), xsm/dummy.h; x86: arch_acquire_resource_check too.
      return ` (EPERM: Xen's default policy lets d${borrower} map d${owner}'s frames only if d${borrower} is the control domain or has d${owner} as its target)`;
    case 'EINVAL':
      return ' (EINVAL: no RAM page of the owner at that gfn, or owner and borrower are the same domain)';
    case 'ESRCH':
      return ` (ESRCH: d${owner} does not exist, or is the calling domain)`;
    default:
      return '';
  }
}

/** Removes what a failed addForeign mapped: all earlier batches and the successes of the last. */
function undoForeign(cx: HypercallContext, borrower: number, gfns: GfnList, before: number, okInBatch: number[]): string {
  const total = before + okInBatch.length;
  if (total === 0) return '; nothing was left mapped';
  const list = new Float64Array(total);
  for (let i = 0; i < before; i++) list[i] = gfns[i];
  okInBatch.forEach((idx, k) => (list[before + k] = gfns[idx]));
  const left = removePages(cx, borrower, list, true);
  return left.length === 0 ? `; the ${total} pages mapped before were removed again`
    : `; removing the ${total} pages mapped before failed for ${left.length} (first: gfn ${hex(left[0].gfn)} ${left[0].code})`;
}

/**
 * remove_from_physmap of each gfn, REMOVE_MULTICALL_BATCH per multicall; returns the refused
 * pages. The entries are written as 32-bit words at the layout tables' offsets: this runs once
 * per page, and under QEMU a DataView write and a BigInt per field cost more than Xen's work.
 */
export function removePages(cx: HypercallContext, domid: number, gfns: GfnList, missingOk: boolean, onProgress?: ProgressCallback): PageError[] {
  const n = gfns.length;
  const refused: PageError[] = [];
  let done = 0;
  while (done < n) {
    const count = Math.min(REMOVE_MULTICALL_BATCH, n - done);
    const argsOff = MULTICALL_ENTRY.size * count;
    const b = cx.buf(argsOff + XEN_REMOVE_FROM_PHYSMAP.size * count);
    const w = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset, (argsOff + XEN_REMOVE_FROM_PHYSMAP.size * count) / 4);
    const r = new Int32Array(b.bytes.buffer, b.bytes.byteOffset, argsOff / 4);
    // Buffer addresses are user-space pointers, below 2^48: exact as numbers.
    const base = Number(b.address);
    const argsWord = argsOff / 4;
    w.fill(0);
    for (let i = 0; i < count; i++) {
      const e = E_WORDS * i;
      const a = argsWord + R_WORDS * i;
      const g = gfns[done + i];
      w[e + E_OP] = Hypercall.memory_op;
      w[e + E_ARG0] = XenMem.remove_from_physmap;
      const addr = base + argsOff + XEN_REMOVE_FROM_PHYSMAP.size * i;
      w[e + E_ARG1] = addr % TWO32;
      w[e + E_ARG1 + 1] = Math.floor(addr / TWO32);
      w[a + R_GPFN] = g % TWO32;
      w[a + R_GPFN + 1] = Math.floor(g / TWO32);
    }
    // The domid is a uint16 at the start of each argument structure.
    for (let i = 0; i < count; i++) b.view.setUint16(argsOff + XEN_REMOVE_FROM_PHYSMAP.size * i + R_DOMID, domid, true);
    const rc = cx.hypercall(Hypercall.multicall, [b.address, count]);
    if (rc < 0) {
      throw new HypercallError({ call: 'multicall', errno: -rc, domid, done, message: `multicall of ${count} remove_from_physmap for d${domid}: ${errnoName(-rc)}` });
    }
    for (let i = 0; i < count; i++) {
      // The result is a C long written back by Xen: 0, or -errno (high word all ones).
      const lo = r[E_WORDS * i + E_RESULT];
      if (lo === 0 || (missingOk && lo === -ENOENT)) continue;
      refused.push({ index: done + i, gfn: gfns[done + i], errno: -lo, code: errnoName(-lo) });
    }
    done += count;
    onProgress?.(done, n);
  }
  return refused;
}

export function removeForeign(cx: HypercallContext, domid: number, gfns: GfnList, missingOk: boolean, onProgress?: ProgressCallback): void {
  const call = 'memory_op(remove_from_physmap)';
  checkGfns(gfns, call, domid);
  const refused = removePages(cx, domid, gfns, missingOk, onProgress);
  if (refused.length > 0) {
    throw new HypercallError({
      call, errno: refused[0].errno, domid, gfn: refused[0].gfn, pages: refused, done: gfns.length - refused.length,
      message: `remove_from_physmap in d${domid}: ${describePages(refused)}` + (refused[0].code === 'ENOENT' ? ' (ENOENT: nothing mapped at that gfn)' : ''),
    });
  }
}

export function mapForeign(cx: HypercallContext, domid: number, gfns: GfnList): ForeignMapping {
  const call = 'ioctl(MMAPBATCH_V2)';
  checkGfns(gfns, call, domid);
  const n = gfns.length;
  if (n === 0) throw new HypercallError({ call, errno: EINVAL, domid, message: 'mapForeign needs at least one gfn' });
  const errs = new Int32Array(n);
  const frames = cx.transport.mmapBatch(domid, gfns, errs);
  const refused: PageError[] = [];
  for (let i = 0; i < n; i++) {
    if (errs[i] !== 0) refused.push({ index: i, gfn: gfns[i], errno: -errs[i], code: errnoName(-errs[i]) });
  }
  if (refused.length > 0) {
    frames.unmap();
    throw new HypercallError({
      call, errno: refused[0].errno, domid, gfn: refused[0].gfn, pages: refused,
      message: `mapping ${n} pages of d${domid} into this process: ${describePages(refused)}` +
        (refused[0].code === 'EINVAL' ? ' (EINVAL: no RAM page of the domain at that gfn)' : refused[0].code === 'ESRCH' ? ` (ESRCH: d${domid} does not exist, or is this domain)` : ''),
    });
  }
  let live = true;
  let buffer = Buffer.from(frames.buffer, frames.byteOffset ?? 0, n * PAGE_SIZE);
  return {
    get buffer() {
      return buffer;
    },
    domid,
    pages: n,
    unmap(): void {
      if (!live) return;
      live = false;
      frames.unmap();
      buffer = Buffer.alloc(0);
    },
  };
}
