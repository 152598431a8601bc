/**
 * Bounded echo of user input in messages. Errors quote what the user gave (an ID, a path, an
 * option value) so the mistake can be found; a hostile or mistaken input of megabytes must not
 * become a message of megabytes (issue 13). Every message that echoes input passes it through
 * here: the start and the end stay, the middle is replaced by a count.
 */

/** Longest piece of input echoed in a message, in characters (documented in docs/config.md). */
export const ECHO_MAX = 80;

/** True when `s` holds the high half of a surrogate pair at `i - 1` (cutting there would split it). */
function splitsPair(s: string, i: number): boolean {
  if (i <= 0 || i >= s.length) return false;
  const c = s.charCodeAt(i - 1);
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * `s` when it has at most `max` characters, else its first and last characters around
 * `...[N more characters]...`, the whole at most `max` characters plus the marker.
 */
export function elide(s: string, max: number = ECHO_MAX): string {
  if (s.length <= max) return s;
  let head = Math.max(1, Math.ceil((max * 2) / 3));
  let tail = Math.max(1, max - head);
  if (splitsPair(s, head)) head--;
  if (splitsPair(s, s.length - tail)) tail--;
  return `${s.slice(0, head)}...[${s.length - head - tail} more characters]...${s.slice(s.length - tail)}`;
}

/** `elide(s)` in double quotes, JSON-escaped: for quoting input inside a sentence. */
export function quoteInput(s: string, max: number = ECHO_MAX): string {
  return JSON.stringify(elide(s, max));
}

/** `s` with every run of characters without a blank longer than `maxRun` elided (words stay whole). */
export function elideRuns(s: string, maxRun: number = ECHO_MAX): string {
  if (s.length <= maxRun) return s;
  let re = RUN_RES.get(maxRun);
  if (!re) {
    re = new RegExp(`[^\\s]{${maxRun + 1},}`, 'g');
    RUN_RES.set(maxRun, re);
  }
  return s.replace(re, (run) => elide(run, maxRun));
}

/** The run-finding expressions, one per run length (built once: errors can be many). */
const RUN_RES = new Map<number, RegExp>();

/** Longest line of an error message, after long runs are elided (a last resort for sentences). */
export const LINE_MAX = 2000;
/**
 * Longest blank-free run kept by boundMessage: above what typed errors print after their own
 * elision (a 120-character source window, a 200-character entry), so their output is unchanged.
 */
export const RUN_MAX = 256;

/**
 * The last line of defence for what an error prints (lib/cli/handle-error.ts): every line with
 * its long runs elided, then cut to LINE_MAX. Messages that bound their own echo are unchanged.
 */
export function boundMessage(text: string): string {
  return text
    .split('\n')
    .map((l) => elide(elideRuns(l, RUN_MAX), LINE_MAX))
    .join('\n');
}

/** `v` (a JSON-ready value) with every string passed through boundMessage: for --json errors. */
export function boundJson(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return boundMessage(v);
  if (depth > 32 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => boundJson(x, depth + 1));
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, boundJson(x, depth + 1)]));
}
