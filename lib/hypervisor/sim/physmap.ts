/** A simulated domain's physmap: gfn -> mfn, in 512-gfn chunks of a Uint32Array. */

/** Gfns per chunk. */
export const CHUNK = 512;

export class Physmap {
  readonly chunks = new Map<number, Uint32Array>();
  private lastKey = -1;
  private last: Uint32Array | undefined;

  private chunk(key: number, create: boolean): Uint32Array | undefined {
    if (key === this.lastKey) return this.last;
    let c = this.chunks.get(key);
    if (!c && create) {
      c = new Uint32Array(CHUNK);
      this.chunks.set(key, c);
    }
    if (c) {
      this.lastKey = key;
      this.last = c;
    }
    return c;
  }

  /** mfn + 1, or 0 when the gfn has no entry. */
  get(gfn: number): number {
    const key = Math.floor(gfn / CHUNK);
    const c = this.chunk(key, false);
    return c ? c[gfn - key * CHUNK] : 0;
  }

  set(gfn: number, value: number): void {
    const key = Math.floor(gfn / CHUNK);
    const c = this.chunk(key, value !== 0);
    if (c) c[gfn - key * CHUNK] = value;
  }

  /** Calls fn(gfn, mfn) for every entry. */
  forEach(fn: (gfn: number, mfn: number) => void): void {
    for (const [key, c] of this.chunks) {
      for (let i = 0; i < CHUNK; i++) if (c[i] !== 0) fn(key * CHUNK + i, c[i] - 1);
    }
  }

  count(): number {
    let n = 0;
    for (const c of this.chunks.values()) for (let i = 0; i < CHUNK; i++) if (c[i] !== 0) n++;
    return n;
  }

  clear(): void {
    this.chunks.clear();
    this.lastKey = -1;
    this.last = undefined;
  }
}
