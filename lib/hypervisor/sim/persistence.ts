/**
 * The simulated host as bytes (host.bin): a 16-byte prefix (magic, JSON length), a JSON header,
 * then the raw arrays it points to, 8-byte aligned. Format 2 adds the release's host size, the
 * frames' epochs and dirty bits, and event channels; format 1 (before) still loads.
 */
import * as os from 'node:os';
import { HypercallError } from '../errors';
import { EvtchnTable, type PortState } from './evtchn';
import { FREE } from './frame-table';
import { DEFAULT_HOST_PAGES, SimDomain, SimHost } from './host';
import { CHUNK } from './physmap';

const E = os.constants.errno;
const MAGIC = 'XSSMSIM1';
const FORMAT = 2;

type Blob = { offset: number; length: number };

interface SavedDomain {
  domid: number;
  name: string;
  maxPages: number;
  extraPages: number;
  ownedPages: number;
  type: SimDomain['type'];
  target: number | null;
  dying: boolean;
  chunkKeys: number[];
  chunks: Blob;
  evtchn?: { maxPort: number; valid: number; ports: Array<[number, PortState]>; pending: number[] };
}

/** The host as a list of buffers to write in order. */
export function toBytes(h: SimHost): Buffer[] {
  const blobs: Buffer[] = [];
  let offset = 0;
  const add = (a: ArrayBufferView): Blob => {
    const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const r = { offset, length: b.length };
    blobs.push(b);
    offset += b.length;
    const pad = (8 - (b.length % 8)) % 8;
    if (pad) {
      blobs.push(Buffer.alloc(pad));
      offset += pad;
    }
    return r;
  };
  const f = h.frames;
  const hw = f.highWater;
  const header = {
    format: FORMAT,
    arch: h.arch,
    xen: h.xen,
    domctlInterfaceVersion: h.domctlInterfaceVersion,
    hostPages: f.hostPages,
    highWater: hw,
    frameOwner: add(f.owner.subarray(0, hw)),
    frameRefs: add(f.refs.subarray(0, hw)),
    frameAlloc: add(f.alloc.subarray(0, hw)),
    frameEpoch: add(f.epoch.subarray(0, hw)),
    frameDirty: add(f.dirty.subarray(0, hw)),
    domains: [...h.domains.values()].map((d): SavedDomain => {
      const keys = [...d.physmap.chunks.keys()];
      const data = new Uint32Array(keys.length * CHUNK);
      keys.forEach((k, i) => data.set(d.physmap.chunks.get(k)!, i * CHUNK));
      return {
        domid: d.domid, name: d.name, maxPages: d.maxPages, extraPages: d.extraPages, ownedPages: d.ownedPages,
        type: d.type, target: d.target, dying: d.dying, chunkKeys: keys, chunks: add(data),
        evtchn: { maxPort: d.evtchn.maxPort, valid: d.evtchn.valid, ports: [...d.evtchn.ports], pending: [...d.evtchn.pending] },
      };
    }),
  };
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(16);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  const pad = Buffer.alloc((8 - ((16 + json.length) % 8)) % 8);
  return [prefix, json, pad, ...blobs];
}

function bad(message: string): HypercallError {
  return new HypercallError({ call: 'sim(load)', errno: E.EINVAL, message });
}

export function fromBytes(buf: Buffer): SimHost {
  if (buf.length < 16 || buf.toString('latin1', 0, 8) !== MAGIC) throw bad('not a simulated host state file (bad magic)');
  const jsonLen = buf.readUInt32LE(8);
  if (16 + jsonLen > buf.length) throw bad('a truncated simulated host state file');
  let h;
  try {
    h = JSON.parse(buf.toString('utf8', 16, 16 + jsonLen));
  } catch {
    throw bad('a simulated host state file with a damaged header');
  }
  if (h.format !== 1 && h.format !== FORMAT) throw bad(`unknown simulated host state format ${h.format}`);
  const base = 16 + jsonLen + ((8 - ((16 + jsonLen) % 8)) % 8);
  const bytes = (r: Blob): Uint8Array => {
    if (base + r.offset + r.length > buf.length) throw bad('a truncated simulated host state file');
    return new Uint8Array(buf.buffer.slice(buf.byteOffset + base + r.offset, buf.byteOffset + base + r.offset + r.length));
  };
  const host = new SimHost({ arch: h.arch, xen: h.xen, domctlInterfaceVersion: h.domctlInterfaceVersion, hostPages: h.hostPages ?? DEFAULT_HOST_PAGES });
  const hw: number = h.highWater;
  const owner = new Uint16Array(bytes(h.frameOwner).buffer);
  host.frames.restore(hw, {
    owner,
    refs: new Uint32Array(bytes(h.frameRefs).buffer),
    alloc: bytes(h.frameAlloc),
    epoch: h.format === 1 ? new Uint32Array(hw) : new Uint32Array(bytes(h.frameEpoch).buffer),
    // Format 1 wrote frames through mmap: any allocated frame may hold bytes.
    dirty: h.format === 1 ? Uint8Array.from(owner, (o) => (o === FREE ? 0 : 1)) : bytes(h.frameDirty),
  });
  for (const x of h.domains as SavedDomain[]) {
    const d = new SimDomain(x.domid, x.name, x.maxPages, x.extraPages, x.type, x.evtchn?.maxPort ?? 1023);
    d.ownedPages = x.ownedPages;
    d.target = x.target;
    d.dying = x.dying;
    const data = new Uint32Array(bytes(x.chunks).buffer);
    x.chunkKeys.forEach((k, i) => d.physmap.chunks.set(k, data.slice(i * CHUNK, (i + 1) * CHUNK)));
    if (x.evtchn) restorePorts(d.evtchn, x.evtchn);
    host.domains.set(d.domid, d);
  }
  return host;
}

function restorePorts(t: EvtchnTable, saved: NonNullable<SavedDomain['evtchn']>): void {
  t.valid = saved.valid;
  t.ports.clear();
  for (const [port, state] of saved.ports) t.ports.set(port, state);
  for (const p of saved.pending) t.pending.add(p);
}
