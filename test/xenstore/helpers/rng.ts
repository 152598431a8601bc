import { seededRandom } from '../../helpers/prng';

/** A small seeded PRNG (mulberry32) so fuzz cases are reproducible from their seed. */
export class Rng {
  private readonly gen: () => number;
  constructor(readonly seed: number) {
    this.gen = seededRandom(seed);
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.gen();
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
