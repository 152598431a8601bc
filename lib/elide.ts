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
