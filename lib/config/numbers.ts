/** Numbers inside shared memory entries: decimal or 0x hex, sizes with K/M/G, 64-bit. */

import { PAGE_SIZE_N } from '../vocabulary';

export const U64_MAX = (1n << 64n) - 1n;
/** Xen's page size as bigint (lib/vocabulary.ts), for addresses and sizes. */
export const PAGE_SIZE = PAGE_SIZE_N;

const SUFFIX: Record<string, bigint> = { k: 1n << 10n, m: 1n << 20n, g: 1n << 30n };

export type NumberResult =
  | { ok: true; value: bigint }
  | { ok: false; rule: 'entry.number' | 'range.overflow'; reason: string; hint?: string };

/**
 * Parse `text` (already trimmed) as an entry number. `what` names it in messages
 * ("begin", "size"...). `sizeSuffix` allows a K, M or G suffix (binary: K = 1024).
 */
export function parseEntryNumber(text: string, what: string, sizeSuffix: boolean): NumberResult {
  if (text === '') return { ok: false, rule: 'entry.number', reason: `${what} has no value` };
  const m = /^(0[xX][0-9a-fA-F]+|[0-9]+)([kKmMgG]?)$/.exec(text);
  if (!m) {
    const hint = /^-/.test(text)
      ? 'addresses and sizes are unsigned'
      : /^0[xX]$/.test(text)
        ? 'give hex digits after 0x'
        : sizeSuffix
          ? 'write a decimal or 0x hex number, optionally followed by K, M or G'
          : 'write a decimal or 0x hex number';
    return { ok: false, rule: 'entry.number', reason: `${what} ${JSON.stringify(text)} is not a number`, hint };
  }
  const [, digits, suffix] = m;
  if (/^0[0-9]/.test(digits)) {
    return {
      ok: false,
      rule: 'entry.number',
      reason: `${what} ${JSON.stringify(text)} has a leading zero`,
      hint: 'a leading 0 means octal to C and xl: write the decimal value without it, or use 0x hex',
    };
  }
  if (suffix && !sizeSuffix) {
    return {
      ok: false,
      rule: 'entry.number',
      reason: `${what} ${JSON.stringify(text)} has a size suffix`,
      hint: `K, M and G are for sizes and offsets; write ${what} in bytes, e.g. 0x40000000`,
    };
  }
  let value = BigInt(digits);
  if (suffix) value *= SUFFIX[suffix.toLowerCase()];
  if (value > U64_MAX) {
    return {
      ok: false,
      rule: 'range.overflow',
      reason: `${what} ${text} does not fit in 64 bits`,
      hint: 'guest physical addresses and sizes are at most 0xffffffffffffffff',
    };
  }
  return { ok: true, value };
}

export function hex(n: bigint): string {
  return '0x' + n.toString(16);
}

/** Human size: "1 MiB", "64 KiB", "4 KiB", "12288 B"... exact, never rounded. */
export function humanSize(n: bigint): string {
  for (const [unit, shift] of [['GiB', 30n], ['MiB', 20n], ['KiB', 10n]] as const) {
    const u = 1n << shift;
    if (n >= u && n % u === 0n) return `${n / u} ${unit}`;
  }
  return `${n} B`;
}
