/**
 * A region's bytes from dom0: the owner's frames mapped into this process (MMAPBATCH_V2).
 * Dom0 is always a possible peer, on x86 the only one, and this is how `peek` reads.
 *
 *   const r = await openRegion(manager, 'ID1', { offset: 0n, length: 4096n });
 *   r.buffer.write('hello');   // the owner sees it at once
 *   r.close();
 */
import type { ForeignMapping } from '../hypervisor/types';
import { gfnsOf, type RegionRecord } from '../store';
import { PAGE_SIZE_N as PAGE_BYTES } from '../vocabulary';
import { dom0MapFailed, lifecycle } from './refusals';
import type { SharedMemoryManager } from './manager';

export interface RegionHandle {
  readonly id: string;
  readonly owner: number;
  /** The window's offset in the region and its length in bytes. */
  readonly offset: bigint;
  readonly length: number;
  /** The bytes, aliasing the owner's frames. Empty after close(). */
  readonly buffer: Buffer;
  readonly region: RegionRecord;
  /** Unmaps the frames. Idempotent. */
  close(): void;
}

export interface OpenRegionOptions {
  /** Byte offset in the region. Default 0. */
  offset?: bigint;
  /** Bytes. Default: to the end of the region. */
  length?: bigint;
}

export async function openRegion(manager: SharedMemoryManager, id: string, opts: OpenRegionOptions = {}): Promise<RegionHandle> {
  const region = await manager.region(id);
  if (region.state !== 'ready') throw lifecycle.notReady(manager.paths, region);
  const offset = opts.offset ?? 0n;
  const length = opts.length ?? region.size - offset;
  if (offset < 0n || length <= 0n || offset + length > region.size) throw lifecycle.outsideRegion(manager.paths, id, offset, length, region.size);
  // Whole pages around the window.
  const firstPage = offset / PAGE_BYTES;
  const lastPage = (offset + length + PAGE_BYTES - 1n) / PAGE_BYTES;
  const gfns = gfnsOf(region.begin + firstPage * PAGE_BYTES, (lastPage - firstPage) * PAGE_BYTES);
  let mapping: ForeignMapping;
  try {
    mapping = await manager.hv.mapForeign(region.owner, gfns);
  } catch (e) {
    throw dom0MapFailed(id, region.owner, e);
  }
  const start = Number(offset - firstPage * PAGE_BYTES);
  let buffer = mapping.buffer.subarray(start, start + Number(length));
  let open = true;
  return {
    id, owner: region.owner, offset, length: Number(length), region,
    get buffer() {
      return buffer;
    },
    close() {
      if (!open) return;
      open = false;
      buffer = Buffer.alloc(0);
      mapping.unmap();
    },
  };
}

/** `hexdump -C` lines of `data`, addresses counted from `base`. Runs of equal lines become `*`. */
export function hexdump(data: Buffer, base = 0): string[] {
  const lines: string[] = [];
  let prev: string | null = null;
  let starred = false;
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, Math.min(i + 16, data.length));
    const key = row.toString('hex');
    if (key === prev && row.length === 16) {
      if (!starred) lines.push('*');
      starred = true;
      continue;
    }
    prev = key;
    starred = false;
    const hexes: string[] = [];
    for (let j = 0; j < 16; j++) hexes.push(j < row.length ? row[j].toString(16).padStart(2, '0') : '  ');
    const ascii = [...row].map((c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('');
    lines.push(`${(base + i).toString(16).padStart(8, '0')}  ${hexes.slice(0, 8).join(' ')}  ${hexes.slice(8).join(' ')}  |${ascii}|`);
  }
  lines.push((base + data.length).toString(16).padStart(8, '0'));
  return lines;
}
