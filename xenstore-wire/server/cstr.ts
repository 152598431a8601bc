/**
 * How C xenstored reads its request payloads, reproduced so that odd requests get the same
 * answer from this server as from the real daemon (xenstored_core.c get_string/get_strings/
 * onearg, xs_lib.c xs_count_strings/xs_strings_to_perms, libc atoi/strtol).
 *
 * Strings are handled as latin1 ("binary") so every byte of a token survives a round trip.
 */

/** Length (including the NUL) of the C string at `offset`, or 0 when no NUL follows. */
export function getStringLen(buf: Buffer, offset: number): number {
  if (offset >= buf.length) return 0;
  const nul = buf.indexOf(0, offset);
  return nul < 0 ? 0 : nul - offset + 1;
}

/** The NUL-terminated strings of the payload, in order (bytes after the last NUL ignored). */
export function getStrings(buf: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  for (;;) {
    const len = getStringLen(buf, off);
    if (len === 0) break;
    out.push(buf.toString('latin1', off, off + len - 1));
    off += len;
  }
  return out;
}

/** Number of NUL bytes in the payload (xs_count_strings). */
export function countStrings(buf: Buffer): number {
  let n = 0;
  for (let i = 0; i < buf.length; i++) if (buf[i] === 0) n++;
  return n;
}

/** The payload's single argument: exactly one NUL, at the end; otherwise null. */
export function onearg(buf: Buffer): string | null {
  if (buf.length === 0 || getStringLen(buf, 0) !== buf.length) return null;
  return buf.toString('latin1', 0, buf.length - 1);
}

/** The C string at the start of the payload (up to the first NUL or the end). */
export function firstString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('latin1', 0, nul < 0 ? buf.length : nul);
}

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

/**
 * glibc strtol: returns the (clamped, 64-bit long) value and the index where parsing stopped
 * (`end === start` when no digits were read, as C sets endptr to the string itself).
 */
export function strtol(s: string, base: 0 | 10): { value: bigint; end: number } {
  let i = 0;
  while (i < s.length && isSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  let radix: number = base === 0 ? 10 : base;
  if (base === 0) {
    if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
      radix = 16;
      i += 2;
    } else if (s[i] === '0') {
      radix = 8;
    }
  }
  const digitRe = radix === 16 ? /[0-9a-fA-F]/ : radix === 8 ? /[0-7]/ : /[0-9]/;
  const startDigits = i;
  let v = 0n;
  let overflow = false;
  while (i < s.length && digitRe.test(s[i])) {
    v = v * BigInt(radix) + BigInt(parseInt(s[i], radix));
    if (v > LONG_MAX + 1n) overflow = true;
    i++;
  }
  if (i === startDigits) return { value: 0n, end: 0 };
  let value = neg ? -v : v;
  if (overflow || value > LONG_MAX) value = neg ? LONG_MIN : LONG_MAX;
  if (value < LONG_MIN) value = LONG_MIN;
  return { value, end: i };
}

/** C `atoi`: (int)strtol(s, NULL, 10), i.e. the long truncated to a signed 32-bit int. */
export function atoi(s: string): number {
  return Number(BigInt.asIntN(32, strtol(s, 10).value));
}

/** `atoi` stored into an unsigned int (domid, port). */
export function atou(s: string): number {
  return atoi(s) >>> 0;
}

/** A long stored into an unsigned int (the permission id in xs_strings_to_perms). */
export function longToU32(v: bigint): number {
  return Number(BigInt.asUintN(32, v));
}

/** C `%i` of an unsigned int cast to int. */
export function u32AsInt(v: number): number {
  return v | 0;
}
