/** Suggestions for misspelt keys and values. */

/**
 * Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring
 * characters (optimal string alignment: "onwer" is one edit from "owner"). Small strings only.
 */
export function editDistance(a: string, b: string): number {
  // Three rolling rows (the swap looks two rows back): no table of a.length x b.length, which
  // costs when thousands of misspelt keys are checked.
  let prev2 = new Uint32Array(b.length + 1);
  let prev = Uint32Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[b.length];
}

/**
 * The candidate closest to `word`, if it is close enough to be a likely typo: equal ignoring
 * case and `-`/`_`, or within an edit distance of about a third of its length (at least 1).
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  // A word much longer than every candidate is no typo of one; and the distance table is
  // word.length x candidate.length, so a hostile 1 MiB "key" must not reach it.
  const longest = candidates.reduce((n, c) => Math.max(n, c.length), 0);
  if (word.length > 2 * longest + 3) return undefined;
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const w = norm(word);
  for (const c of candidates) if (norm(c) === w) return c;
  const limit = Math.max(1, Math.floor(Math.max(word.length, 3) / 3));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    // The distance is at least the difference in length: past the limit, no need to count it
    // (most keys of a config are far from every candidate; this keeps `check` quick to start).
    const nc = norm(c);
    if (Math.abs(w.length - nc.length) > limit) continue;
    const d = editDistance(w, nc);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= limit ? best : undefined;
}
