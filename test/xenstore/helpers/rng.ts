/** A small seeded PRNG (mulberry32) so fuzz cases are reproducible from their seed. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }
  /** Cuts `buf` into random pieces (some empty) whose concatenation is `buf`. */
  split(buf: Buffer, maxPiece = 64): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < buf.length) {
      const n = this.int(0, Math.min(maxPiece, buf.length - i));
      out.push(buf.subarray(i, i + n));
      i += n;
    }
    return out;
  }
}
