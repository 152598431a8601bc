/**
 * Binary-safe rendering of xenstore values for display.
 *
 * Values are arbitrary bytes (FACTS.md section 1: a WRITE value or READ reply may hold any
 * byte, NUL included). The rendering keeps printable ASCII as is and escapes the rest the way
 * C does (`\n`, `\t`, `\r`, `\0`, `\xNN`), plus `\\` and `\"`, so it is unambiguous and can be
 * turned back into the exact bytes by `unescapeValue`. Long values are cut at a byte budget and
 * the number of bytes left out is reported, so one 4 KiB value cannot flood a terminal.
 */

export interface RenderedValue {
  /** The escaped text (no surrounding quotes). */
  text: string;
  /** Byte length of the whole value. */
  bytes: number;
  /** Bytes not shown, 0 when the value was shown whole. */
  elided: number;
}

/** Default number of value bytes shown before eliding. */
export const DEFAULT_MAX_VALUE_BYTES = 64;

const SIMPLE_ESCAPES: Record<number, string> = {
  0x00: '\\0',
  0x09: '\\t',
  0x0a: '\\n',
  0x0d: '\\r',
  0x22: '\\"',
  0x5c: '\\\\',
};

/** Escapes one byte; printable ASCII stays itself. */
function escapeByte(b: number): string {
  const s = SIMPLE_ESCAPES[b];
  if (s !== undefined) return s;
  if (b >= 0x20 && b < 0x7f) return String.fromCharCode(b);
  return '\\x' + b.toString(16).padStart(2, '0');
}

/**
 * Escapes `value`, showing at most `maxBytes` of it (0 or Infinity: all of it).
 * The cut is made on a byte boundary of the original value, never inside an escape.
 */
export function renderValue(value: Buffer, maxBytes: number = DEFAULT_MAX_VALUE_BYTES): RenderedValue {
  const limit = maxBytes > 0 ? Math.min(maxBytes, value.length) : value.length;
  const raw = value.toString('latin1', 0, limit);
  // Fast path (the common case, and the proxy's hot path): nothing to escape.
  if (PLAIN.test(raw)) return { text: raw, bytes: value.length, elided: value.length - limit };
  let text = '';
  for (let i = 0; i < limit; i++) text += escapeByte(value[i]);
  return { text, bytes: value.length, elided: value.length - limit };
}

/** Printable ASCII except `"` and `\\`: shown as is. */
const PLAIN = /^[ !#-\[\]-~]*$/;
/** The same without the space: names (paths, tokens) that need no quoting. */
const PLAIN_NAME = /^[!#-\[\]-~]*$/;

/** `"text"` or `"text"... (+N bytes)` for human output. */
export function quoteValue(r: RenderedValue): string {
  return r.elided > 0 ? `"${r.text}"...(+${r.elided} of ${r.bytes} bytes)` : `"${r.text}"`;
}

/** The inverse of renderValue's escaping (for whole, non-elided values). */
export function unescapeValue(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x5c) {
      out.push(c & 0xff);
      continue;
    }
    const n = text[++i];
    switch (n) {
      case '0': out.push(0); break;
      case 't': out.push(9); break;
      case 'n': out.push(10); break;
      case 'r': out.push(13); break;
      case '"': out.push(0x22); break;
      case '\\': out.push(0x5c); break;
      case 'x':
        out.push(parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
        break;
      default:
        throw new RangeError(`bad escape \\${n} at offset ${i - 1}`);
    }
  }
  return Buffer.from(out);
}

/** Renders a string that should be a path or token: printable text kept, anything else escaped. */
export function renderName(s: string | Buffer): string {
  if (typeof s === 'string' && PLAIN_NAME.test(s)) return s;
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  let plain = true;
  for (const x of b) {
    if (x < 0x21 || x >= 0x7f || x === 0x22 || x === 0x5c) {
      plain = false;
      break;
    }
  }
  return plain ? b.toString('latin1') : `"${renderValue(b, 0).text}"`;
}
