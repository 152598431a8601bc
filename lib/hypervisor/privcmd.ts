/**
 * The `privcmd` transport: hypercalls through Linux's /dev/xen/privcmd, buffers from
 * /dev/xen/hypercall (mlock'd pages where that device is absent), via the shim.
 */
import * as fs from 'node:fs';
import { DOMID_FIRST_RESERVED } from './abi';
import { errnoOf, HypercallError } from './errors';
import { loadShim, toHypercallError, type Shim } from './shim';
import type { HypercallBuffer, MappedFrames, XenTransport } from './transport';
import type { GfnList } from './types';

export const PRIVCMD_PATH = '/dev/xen/privcmd';
export const HYPERCALL_PATH = '/dev/xen/hypercall';

export interface PrivcmdOptions {
  privcmdPath?: string;
  hypercallPath?: string;
}

/**
 * The message of the error raised when /dev/xen/privcmd is missing (docs/hypervisor.md): the
 * facts only; what to do (load the driver, or use the sandbox) is the caller's advice.
 */
export function missingPrivcmdMessage(p: string): string {
  return `${p} does not exist: this machine is not a Xen dom0, or Linux's privcmd driver (xen-privcmd, with xenfs on /proc/xen) is not loaded`;
}

export class PrivcmdTransport implements XenTransport {
  readonly backend = 'privcmd' as const;
  private readonly shim: Shim;
  private readonly fd: number;
  /** -1 when /dev/xen/hypercall is absent: buffers are then mlock'd anonymous pages. */
  private readonly hypercallFd: number;
  private readonly call = new BigUint64Array(6);
  private readonly mappings = new Map<bigint, ArrayBuffer>();
  private closed = false;

  constructor(opts: PrivcmdOptions = {}) {
    const privcmd = opts.privcmdPath ?? PRIVCMD_PATH;
    const hypercall = opts.hypercallPath ?? HYPERCALL_PATH;
    // Without the device the addon would be no use: say that first (also where no addon loads).
    if (!fs.existsSync(privcmd)) {
      throw new HypercallError({ call: 'open', errno: errnoOf('ENOENT'), path: privcmd, message: missingPrivcmdMessage(privcmd) });
    }
    this.shim = loadShim();
    try {
      this.fd = this.shim.open(privcmd);
    } catch (e) {
      const x = e as { errno?: number };
      if (x.errno === errnoOf('ENOENT')) {
        throw new HypercallError({ call: 'open', errno: x.errno, path: privcmd, message: missingPrivcmdMessage(privcmd) });
      }
      throw toHypercallError(e, 'open', { message: `cannot open ${privcmd}: ${(e as Error).message}` });
    }
    let hfd = -1;
    if (fs.existsSync(hypercall)) {
      try {
        hfd = this.shim.open(hypercall);
      } catch {
        hfd = -1; // fall back to mlock'd pages, as libxencall does
      }
    }
    this.hypercallFd = hfd;
  }

  /** IOCTL_PRIVCMD_RESTRICT: from now on this fd acts on one domain only. */
  restrict(domid: number): void {
    if (!Number.isInteger(domid) || domid < 0 || domid >= DOMID_FIRST_RESERVED) {
      throw new HypercallError({ call: 'ioctl(RESTRICT)', errno: errnoOf('EINVAL'), message: `${domid} is not a domain id` });
    }
    try {
      this.shim.restrict(this.fd, domid);
    } catch (e) {
      throw toHypercallError(e, 'ioctl(RESTRICT)', { domid });
    }
  }

  hypercall(op: number, args: ReadonlyArray<number | bigint>): number {
    const c = this.call;
    c[0] = BigInt(op);
    for (let i = 0; i < 5; i++) c[i + 1] = BigInt(args[i] ?? 0);
    return this.shim.hypercall(this.fd, c);
  }

  allocBuffer(bytes: number): HypercallBuffer {
    let m;
    try {
      m = this.shim.allocBuffer(this.hypercallFd, bytes);
    } catch (e) {
      throw toHypercallError(e, this.hypercallFd >= 0 ? 'mmap' : 'mlock', {
        message: `cannot allocate ${bytes} bytes of hypercall buffer: ${(e as Error).message}`,
      });
    }
    this.mappings.set(m.address, m.buffer);
    return { address: m.address, size: m.buffer.byteLength, bytes: new Uint8Array(m.buffer), view: new DataView(m.buffer) };
  }

  freeBuffer(buf: HypercallBuffer): void {
    const ab = this.mappings.get(buf.address);
    if (!ab) return;
    this.mappings.delete(buf.address);
    this.shim.unmap(ab);
  }

  mmapBatch(domid: number, gfns: GfnList, errs: Int32Array): MappedFrames {
    const list = new BigUint64Array(gfns.length);
    for (let i = 0; i < gfns.length; i++) list[i] = BigInt(gfns[i]);
    let r;
    try {
      r = this.shim.mmapBatchV2(this.fd, domid, list, errs);
    } catch (e) {
      throw toHypercallError(e, 'ioctl(MMAPBATCH_V2)', { domid });
    }
    const shim = this.shim;
    const buffer = r.buffer;
    return { buffer, unmap: () => shim.unmap(buffer) };
  }

  exclusive<T>(fn: () => T): Promise<T> {
    return Promise.resolve().then(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ab of this.mappings.values()) this.shim.unmap(ab);
    this.mappings.clear();
    if (this.hypercallFd >= 0) this.shim.close(this.hypercallFd);
    this.shim.close(this.fd);
  }
}
