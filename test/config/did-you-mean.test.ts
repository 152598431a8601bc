/**
 * didYouMean skips candidates whose length alone puts them past the limit (CLI start-up, issue
 * 15 point 5): its answers must be those of counting every candidate, as before.
 */
import test from 'ava';
import { didYouMean, editDistance } from '../../lib/config/did-you-mean';
import { STATIC_SHM_KEYS } from '../../lib/config/shm-entries';

/** The rule without the shortcut: the closest candidate, if within a third of the word. */
function reference(word: string, candidates: readonly string[]): string | undefined {
  const longest = candidates.reduce((n, c) => Math.max(n, c.length), 0);
  if (word.length > 2 * longest + 3) return undefined;
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const w = norm(word);
  for (const c of candidates) if (norm(c) === w) return c;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(Math.max(word.length, 3) / 3)) ? best : undefined;
}

test('the same suggestion as counting every candidate (typos, xl keys, generated words)', (t) => {
  const lists: ReadonlyArray<readonly string[]> = [['static_shm', 'static_shared_mem'], STATIC_SHM_KEYS, ['owner', 'borrower', 'master', 'slave'], ['yes', 'no'], ['ARM_normal', 'x86_normal']];
  const words = ['static_shmem', 'static-shm', 'STATIC_SHM', 'static_shared_memory', 'statc_shm', 'name', 'memory', 'kernel', 'ramdisk', 'vcpus', 'extra', 'type', 'onwer', 'borower', 'slav', 'yse', 'No', 'arm_nromal', 'begn', 'ofset', 'sze', 'i', '', 'x'.repeat(40)];
  let s = 7;
  const next = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (const list of lists) {
    // Generated: each candidate with up to four random edits.
    for (const c of list) {
      for (let k = 0; k < 40; k++) {
        let w = c;
        for (let e = Math.floor(next() * 5); e > 0; e--) {
          const i = Math.floor(next() * (w.length + 1));
          const ch = 'abcdefghijklmnopqrstuvwxyz_-'[Math.floor(next() * 28)];
          const op = Math.floor(next() * 3);
          w = op === 0 ? w.slice(0, i) + ch + w.slice(i) : op === 1 ? w.slice(0, i) + w.slice(i + 1) : w.slice(0, i) + ch + w.slice(i + 1);
        }
        words.push(w);
      }
    }
  }
  let compared = 0;
  for (const list of lists) {
    for (const w of words) {
      t.is(didYouMean(w, list), reference(w, list), `${JSON.stringify(w)} in ${JSON.stringify(list)}`);
      compared++;
    }
  }
  t.true(compared > 1000);
});
