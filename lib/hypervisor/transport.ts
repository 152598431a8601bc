/**
 * The layer under XenHypervisor: a privcmd-like surface that issues raw hypercalls on buffers
 * Xen can read. `privcmd` (privcmd.ts) passes them to Linux through the shim; `sim`
 * (sim/transport.ts) decodes them and answers as Xen would. Everything in between (struct
 * layouts, batching, multicalls, error meaning) is shared TypeScript in xen.ts, so the simulated
 * host exercises the same code the real one does.
 */
import type { GfnList } from './types';

/** Memory Xen may read and write during a hypercall, and its address in this process. */
export interface HypercallBuffer {
  readonly address: bigint;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** Frames mapped into this process by MMAPBATCH_V2: page i at byteOffset + i * 4096 of buffer. */
export interface MappedFrames {
  readonly buffer: ArrayBuffer;
  /** Default 0 (privcmd); the sim's views may be a slice of a larger block. */
  readonly byteOffset?: number;
  unmap(): void;
}

export interface XenTransport {
  readonly backend: 'privcmd' | 'sim';
  /** One hypercall with up to five arguments. Returns Xen's result, negative for -errno. */
  hypercall(op: number, args: ReadonlyArray<number | bigint>): number;
  allocBuffer(bytes: number): HypercallBuffer;
  freeBuffer(buf: HypercallBuffer): void;
  /**
   * IOCTL_PRIVCMD_MMAPBATCH_V2: maps frames of domid named by its gfns; errs[i] receives 0 or
   * -errno per page. Throws a HypercallError when nothing could be mapped at all.
   */
  mmapBatch(domid: number, gfns: GfnList, errs: Int32Array): MappedFrames;
  /**
   * Runs fn while holding the transport's state: the sim loads its persisted host once, runs
   * every hypercall of fn, and saves once. privcmd just runs fn.
   */
  exclusive<T>(fn: () => T): Promise<T>;
  close(): void;
}
