/**
 * What every group of hypercalls shares: the transport, one scratch hypercall buffer, the
 * answers of xen_version and of the domctl interface version probe (asked once per Hypervisor),
 * and the argument checks made before any hypercall. One context per XenHypervisor; its calls
 * run one at a time (the façade serialises them), so the scratch buffer is never shared.
 */
import { isDomid, DOMID_FIRST_RESERVED } from '../../vocabulary';
import { errnoOf, HypercallError } from '../errors';
import type { XenRules } from '../releases';
import type { HypercallBuffer, XenTransport } from '../transport';
import type { GfnList, GfnSpan, XenVersionInfo } from '../types';

/** Largest gfn accepted: Xen's gfns fit in 52 bits (64-bit physical addresses >> 12). */
const MAX_GFN = 2 ** 52 - 1;
/** Scratch buffers grow in whole units of this size. */
const BUFFER_UNIT = 65536;
/**
 * The most one hypercall's arguments take (lists, multicall entries): 1 MiB, locked or from
 * /dev/xen/hypercall while the call runs. Batches are sized to fill it.
 */
export const HYPERCALL_BUFFER_BYTES = 1 << 20;

export const EINVAL = errnoOf('EINVAL');
export const ESRCH = errnoOf('ESRCH');
export const EACCES = errnoOf('EACCES');
export const EPERM = errnoOf('EPERM');
export const ENOENT = errnoOf('ENOENT');
export const ENOMEM = errnoOf('ENOMEM');

export const hex = (n: number): string => `0x${n.toString(16)}`;

export class HypercallContext {
  version?: XenVersionInfo;
  rules?: XenRules;
  domctlVersion?: number;
  sysctlVersion?: number;
  /** Why no sysctl interface version was accepted (asked once). */
  sysctlRefusal?: HypercallError;
  private scratch?: HypercallBuffer;

  constructor(readonly transport: XenTransport) {}

  /** The scratch hypercall buffer, grown to at least `bytes` (whole 64 KiB units). */
  buf(bytes: number): HypercallBuffer {
    if (!this.scratch || this.scratch.size < bytes) {
      if (this.scratch) this.transport.freeBuffer(this.scratch);
      this.scratch = undefined;
      this.scratch = this.transport.allocBuffer(Math.ceil(bytes / BUFFER_UNIT) * BUFFER_UNIT);
    }
    return this.scratch;
  }

  hypercall(op: number, args: ReadonlyArray<number | bigint>): number {
    return this.transport.hypercall(op, args);
  }

  /** Frees the scratch buffer (close). */
  release(): void {
    if (this.scratch) this.transport.freeBuffer(this.scratch);
    this.scratch = undefined;
  }
}

export function checkDomid(domid: number, call: string): number {
  if (!isDomid(domid)) {
    throw new HypercallError({ call, errno: EINVAL, message: `${String(domid)} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})` });
  }
  return domid;
}

export function checkGfns(gfns: GfnList, call: string, domid: number): void {
  for (let i = 0; i < gfns.length; i++) {
    const g = gfns[i];
    if (!(g >= 0 && g <= MAX_GFN && Math.floor(g) === g)) {
      throw new HypercallError({ call, errno: EINVAL, domid, message: `gfn #${i} (${String(g)}) is not a page number` });
    }
  }
}

/** A GfnSpan (gfnSpan()) rather than a list: an object that is neither an array nor a typed array. */
export function isGfnSpan(g: GfnList | GfnSpan): g is GfnSpan {
  return typeof g === 'object' && g !== null && !Array.isArray(g) && !ArrayBuffer.isView(g) && 'start' in g;
}

/** A span's checks, once per call: whole page numbers from start to start + length - 1. */
export function checkGfnSpan(span: GfnSpan, call: string, domid: number): void {
  const { start, length } = span;
  if (!(Number.isInteger(start) && start >= 0 && start <= MAX_GFN)) {
    throw new HypercallError({ call, errno: EINVAL, domid, message: `span start ${String(start)} is not a page number` });
  }
  if (!(Number.isInteger(length) && length >= 0 && start + length - 1 <= MAX_GFN)) {
    throw new HypercallError({ call, errno: EINVAL, domid, message: `span of ${String(length)} pages from ${String(start)} is not a number of pages below 2^52` });
  }
}

/** Writes first, first + step, ... (count of them) as little-endian uint64s at byte offset off. */
export function writeU64Seq(b: HypercallBuffer, off: number, first: number, step: number, count: number): void {
  const w = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset + off, 2 * count);
  for (let i = 0; i < count; i++) {
    const g = first + i * step;
    w[2 * i] = g >>> 0;
    w[2 * i + 1] = g > 0xffffffff ? Math.floor(g / 2 ** 32) : 0;
  }
}

/** Writes gfns[from .. from+count) as little-endian uint64s at byte offset off of the buffer. */
export function writeU64List(b: HypercallBuffer, off: number, gfns: GfnList, from: number, count: number): void {
  const w = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset + off, 2 * count);
  for (let i = 0; i < count; i++) {
    const g = gfns[from + i];
    w[2 * i] = g >>> 0;
    w[2 * i + 1] = g > 0xffffffff ? Math.floor(g / 2 ** 32) : 0;
  }
}

export function slice(gfns: GfnList, from: number, to: number): Float64Array {
  const out = new Float64Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = gfns[i];
  return out;
}
