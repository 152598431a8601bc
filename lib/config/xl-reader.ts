/**
 * The xl config file reader: the grammar of Xen's libxlutil (tools/libs/util/libxlu_cfg_l.l,
 * libxlu_cfg_y.y, libxlu_cfg.c in Xen 4.17), re-implemented so that it accepts and rejects
 * exactly what xl does and yields the same values (test/config/differential.test.ts compares it
 * with the real library). What it does beyond xl: every value keeps its file, line and column,
 * errors are typed ConfigErrors, and xl's surprising corners become warnings.
 *
 *   file      := { stmt } [ assignment ]          (the last statement needs no terminator)
 *   stmt      := [ assignment ] ( NEWLINE | ';' )
 *   assignment:= IDENT ( '=' | '+=' ) value
 *   value     := STRING | NUMBER | '[' nl* [ value nl* { ',' nl* value nl* } [ ',' nl* ] ] ']'
 *   IDENT     := [a-z][._0-9a-z]*        NUMBER := [0-9][0-9a-fx]*   (kept as text)
 *   NEWLINE   := '\n' | '#' <anything but newline>* '\n'
 *   STRING    := "..." or '...' on one line, backslash escapes below
 *
 * Corners of libxlutil 4.17 that are reproduced on purpose (all checked against the library):
 * - only space and tab are blanks: a CR (CRLF line endings) is a lexical error;
 * - a comment must end with a newline: a final `# ...` without one is a lexical error;
 * - yet one stray single-byte character as the very last byte of the file is ignored
 *   (flex reaches end of file before reporting it), so `a = 1 #` or `a = 1 @` are accepted;
 * - escapes: \" \' \\ \a \b \f \n \r \t \v; `\x` is always refused (libxlutil skips a digit
 *   and then never finds two); `\0`..`\7` swallow the following characters that strtoul(,10)
 *   reads (at least two of the next three) and produce nothing;
 * - `key += value` appends to the newest earlier value of key (string concatenation or list
 *   concatenation; mixing them is an error); without an earlier value it is a plain assignment
 *   that remembers its `+=` (xl then refuses it where it wants a number);
 * - a key assigned twice keeps the newest value.
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ConfigError, ConfigLocation, ConfigWarning, RuleId } from './errors';

/**
 * Bounds of the reader (docs/config.md, "Bounds"). xl configs are a few KiB; these refuse a
 * mistaken or hostile file early, with a located error, instead of reading, parsing or
 * reporting without end. libxlutil has none of them (it fails with "memory exhausted" beyond
 * about 5,000 nested lists), so each is far above what a real config holds.
 */
export const CONFIG_BOUNDS = {
  /** Bytes of a config file (or characters of a text given to parseXlConfig). */
  maxBytes: 1024 * 1024,
  /** Lists inside lists: `x = [[[...]]]`. No xl key nests more than two. */
  maxNesting: 64,
  /** Items of one list. */
  maxListItems: 4096,
  /** Characters of one quoted string (Linux's kernel command line, the longest xl value, is 4 KiB at most). */
  maxStringChars: 16 * 1024,
} as const;

/** A scalar value: a quoted string or a NUMBER token, both kept as text as libxlutil does. */
export class XlString {
  readonly type = 'string' as const;
  /** The dequoted text. */
  readonly value: string;
  /** 'string' for a quoted string, 'number' for a bare NUMBER token; `+=` results are strings. */
  readonly token: 'string' | 'number';
  /** Where the token starts (the opening quote of a string). */
  readonly location: ConfigLocation;
  // Source line and column of each character of `value` (of its backslash, for an escape),
  // plus one past the end; kept off the enumerable fields so JSON output stays small.
  readonly #lines: number[];
  readonly #columns: number[];

  constructor(value: string, token: 'string' | 'number', location: ConfigLocation, lines: number[], columns: number[]) {
    this.value = value;
    this.token = token;
    this.location = location;
    this.#lines = lines;
    this.#columns = columns;
  }

  /** The source location of the character at `index` of the dequoted value. */
  locate(index: number): ConfigLocation {
    const i = Math.max(0, Math.min(index, this.#columns.length - 1));
    return { file: this.location.file, line: this.#lines[i], column: this.#columns[i] };
  }

  /** `this` followed by `next` (for `+=`); characters keep their own source places. */
  concat(next: XlString): XlString {
    return XlString.join([this, next]);
  }

  /**
   * The strings one after the other (a key's `+=` chain, folded once: folding statement by
   * statement would copy the growing value each time); characters keep their source places.
   */
  static join(parts: readonly XlString[]): XlString {
    const lines: number[] = [];
    const columns: number[] = [];
    parts.forEach((p, i) => {
      const n = i === parts.length - 1 ? p.#lines.length : p.#lines.length - 1;
      for (let k = 0; k < n; k++) {
        lines.push(p.#lines[k]);
        columns.push(p.#columns[k]);
      }
    });
    return new XlString(parts.map((p) => p.value).join(''), 'string', parts[parts.length - 1].location, lines, columns);
  }

  toJSON(): unknown {
    return { type: this.type, value: this.value, token: this.token, location: this.location };
  }
}

export interface XlList {
  type: 'list';
  items: XlValue[];
  /** Where the `[` is. */
  location: ConfigLocation;
}

export type XlValue = XlString | XlList;

/** One `key = value` or `key += value` statement as written. */
export interface XlStatement {
  name: string;
  op: '=' | '+=';
  value: XlValue;
  /** Where the key is. */
  location: ConfigLocation;
}

/** What xl sees for a key: the newest statement, with earlier `+=` values folded in. */
export interface XlSetting {
  name: string;
  op: '=' | '+=';
  value: XlValue;
  /** The key of the statement that set it last. */
  location: ConfigLocation;
}

/** A whole config file as xl reads it. */
export class XlConfig {
  readonly file: string;
  /** Every statement in file order. */
  readonly statements: XlStatement[];
  /** Effective settings by key, in order of first appearance. */
  readonly settings: Map<string, XlSetting>;
  readonly warnings: ConfigWarning[];

  constructor(file: string, statements: XlStatement[], settings: Map<string, XlSetting>, warnings: ConfigWarning[]) {
    this.file = file;
    this.statements = statements;
    this.settings = settings;
    this.warnings = warnings;
  }

  get(name: string): XlValue | undefined {
    return this.settings.get(name)?.value;
  }

  has(name: string): boolean {
    return this.settings.has(name);
  }

  keys(): string[] {
    return [...this.settings.keys()];
  }

  toJSON(): unknown {
    return { file: this.file, settings: Object.fromEntries(this.settings), warnings: this.warnings };
  }
}

export interface ParseOptions {
  /** The name used in locations and errors; default `<config>`. */
  file?: string;
}

/** Parse xl config text. Throws ConfigError (kind 'config') on anything xl would refuse. */
export function parseXlConfig(text: string, opts: ParseOptions = {}): XlConfig {
  const file = opts.file ?? '<config>';
  if (text.length > CONFIG_BOUNDS.maxBytes) {
    throw new ConfigError({
      rule: 'limit',
      code: 'EFBIG',
      location: { file, line: 1, column: 1 },
      reason: `the config is ${text.length} characters, more than the ${CONFIG_BOUNDS.maxBytes} a config may have`,
      hint: 'xl configs are a few KiB: is this the right text?',
    });
  }
  return new Parser(text, file).parseFile();
}

/**
 * Read and parse a config file. The bytes must be UTF-8 (xl itself passes bytes through;
 * a non-UTF-8 file is refused here rather than silently mangled). I/O failures are
 * ConfigErrors with rule 'io' and the errno name as code.
 */
export async function readXlConfig(path: string): Promise<XlConfig> {
  return parseXlConfig(decodeConfigBytes(await readConfigBytes(path), path), { file: path });
}

/** A ConfigError of rule io at line 0 (the file as a whole). */
function ioError(path: string, code: string, reason: string, hint?: string): ConfigError {
  return new ConfigError({ rule: 'io', code, location: { file: path, line: 0, column: 0 }, reason, hint });
}

/**
 * The bytes of a config file, bounded: only a regular file is read (a FIFO, a device such as
 * /dev/zero or a socket is refused before any read; O_NONBLOCK keeps open() of a FIFO from
 * waiting for a writer), and at most CONFIG_BOUNDS.maxBytes of it (the size is checked before
 * reading, and again while reading, for a file that grows meanwhile).
 */
export async function readConfigBytes(path: string): Promise<Buffer> {
  const max = CONFIG_BOUNDS.maxBytes;
  let fh;
  try {
    fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const code = e.code ?? 'EIO';
    throw ioError(path, code, `cannot read the config file: ${code} open`, code === 'ENOENT' ? 'check the path' : code === 'EISDIR' ? 'give a config file, not a directory' : undefined);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw ioError(path, 'EISDIR', 'cannot read the config file: EISDIR read', 'give a config file, not a directory');
    if (!st.isFile()) {
      const what = st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a regular file';
      throw ioError(path, 'EINVAL', `the config file is ${what}, not a regular file`, 'give the xl config file itself');
    }
    if (st.size > max) throw ioError(path, 'EFBIG', `the config file is ${st.size} bytes, more than the ${max} bytes a config may have`, 'xl configs are a few KiB: is this the right file?');
    const buf = Buffer.allocUnsafe(max + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got > max) throw ioError(path, 'EFBIG', `the config file grew past the ${max} bytes a config may have while it was read`, 'xl configs are a few KiB: is this the right file?');
    }
    return buf.subarray(0, got);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = err as NodeJS.ErrnoException;
    const code = e.code ?? 'EIO';
    throw ioError(path, code, `cannot read the config file: ${code} ${e.syscall ?? 'read'}`);
  } finally {
    await fh.close();
  }
}

/** Strict UTF-8 decoding with a located error. */
export function decodeConfigBytes(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    // Find the first bad byte for the location: decode growing prefixes line by line.
    let line = 1;
    let lineStart = 0;
    const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x0a) {
        try {
          dec.decode(bytes.subarray(lineStart, i));
        } catch {
          break;
        }
        line++;
        lineStart = i + 1;
      }
    }
    throw new ConfigError({
      rule: 'syntax.lexical',
      location: { file, line, column: 1 },
      reason: 'the file is not valid UTF-8',
      hint: 'xen-sshm reads config files as UTF-8; shared memory keys and IDs are plain ASCII',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer: flex's longest match over libxlutil's rules, one token at a time.

type TokKind = 'IDENT' | 'NUMBER' | 'STRING' | 'NEWLINE' | ',' | '[' | ']' | '=' | '+=' | ';' | 'EOF';

interface Token {
  kind: TokKind;
  text: string;
  line: number;
  column: number;
  /** For STRING and NUMBER. */
  str?: XlString;
}

const TOKEN_NAMES: Record<TokKind, string> = {
  IDENT: 'key',
  NUMBER: 'number',
  STRING: 'string',
  NEWLINE: 'end of line',
  ',': "','",
  '[': "'['",
  ']': "']'",
  '=': "'='",
  '+=': "'+='",
  ';': "';'",
  EOF: 'end of file',
};

const isLower = (c: string) => c >= 'a' && c <= 'z';
const isDigit = (c: string) => c >= '0' && c <= '9';
const isIdentChar = (c: string) => isLower(c) || isDigit(c) || c === '.' || c === '_';
const isNumberChar = (c: string) => isDigit(c) || (c >= 'a' && c <= 'f') || c === 'x';
/** C isspace() in the C locale, which strtoul skips. */
const isCSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';

class Parser {
  private pos = 0;
  private line = 1;
  private lineStart = 0;
  private peeked: Token | null = null;
  private readonly warnings: ConfigWarning[] = [];

  constructor(
    private readonly src: string,
    private readonly file: string,
  ) {}

  private loc(line: number, column: number): ConfigLocation {
    return { file: this.file, line, column };
  }

  private fail(rule: RuleId, line: number, column: number, reason: string, hint?: string): never {
    throw new ConfigError({ rule, location: this.loc(line, column), reason, hint, source: this.sourceLine(line) });
  }

  /** The text of source line `line` (1-based), without its newline. */
  private sourceLine(line: number): string {
    let start = 0;
    for (let l = 1; l < line; l++) {
      const nl = this.src.indexOf('\n', start);
      if (nl < 0) return '';
      start = nl + 1;
    }
    const end = this.src.indexOf('\n', start);
    return this.src.slice(start, end < 0 ? this.src.length : end);
  }

  private warn(line: number, column: number, message: string): void {
    this.warnings.push({ kind: 'config-warning', file: this.file, line, column, message });
  }

  private peek(): Token {
    if (!this.peeked) this.peeked = this.lex();
    return this.peeked;
  }

  private next(): Token {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  private lex(): Token {
    const s = this.src;
    for (;;) {
      const i = this.pos;
      const line = this.line;
      const column = i - this.lineStart + 1;
      if (i >= s.length) return { kind: 'EOF', text: '', line, column };
      const c = s[i];
      if (c === ' ' || c === '\t') {
        this.pos++;
        continue;
      }
      const tok = (kind: TokKind, len: number): Token => {
        this.pos = i + len;
        return { kind, text: s.slice(i, i + len), line, column };
      };
      if (c === '\n' || (c === '#' && s.indexOf('\n', i) >= 0)) {
        const end = c === '\n' ? i : s.indexOf('\n', i);
        this.pos = end + 1;
        this.line++;
        this.lineStart = end + 1;
        return { kind: 'NEWLINE', text: s.slice(i, end + 1), line, column };
      }
      if (isLower(c)) {
        let j = i + 1;
        while (j < s.length && isIdentChar(s[j])) j++;
        return tok('IDENT', j - i);
      }
      if (isDigit(c)) {
        let j = i + 1;
        while (j < s.length && isNumberChar(s[j])) j++;
        this.boundToken(j - i, line, column, 'number');
        const t = tok('NUMBER', j - i);
        const lines = new Array<number>(t.text.length + 1).fill(line);
        const columns = Array.from({ length: t.text.length + 1 }, (_, k) => column + k);
        t.str = new XlString(t.text, 'number', this.loc(line, column), lines, columns);
        return t;
      }
      if (c === ',' || c === '[' || c === ']' || c === '=' || c === ';') return tok(c, 1);
      if (c === '+' && s[i + 1] === '=') return tok('+=', 2);
      if (c === '"' || c === "'") {
        const end = this.matchString(i, c);
        if (end >= 0) {
          this.boundToken(end - 1 - i, line, column, 'string');
          const t = tok('STRING', end + 1 - i);
          t.str = this.dequote(t.text, line, column);
          return t;
        }
      }
      this.badCharacter(i, line, column);
      // Only reached when the bad character is ignored (last byte of the file).
    }
  }

  /** Refuses a string or number token longer than CONFIG_BOUNDS.maxStringChars. */
  private boundToken(chars: number, line: number, column: number, what: 'string' | 'number'): void {
    const max = CONFIG_BOUNDS.maxStringChars;
    if (chars > max) this.fail('limit', line, column, `a ${what} of ${chars} characters, more than ${max}`, `xen-sshm reads values of at most ${max} characters`);
  }

  /** Index of the closing quote of a string starting at `i`, or -1 (flex regex semantics). */
  private matchString(i: number, quote: string): number {
    const s = this.src;
    for (let j = i + 1; j < s.length; j++) {
      const ch = s[j];
      if (ch === quote) return j;
      if (ch === '\n') return -1;
      if (ch === '\\') {
        if (j + 1 >= s.length || s[j + 1] === '\n') return -1;
        j++;
      }
    }
    return -1;
  }

  /**
   * A character no rule accepts: flex enters its error state and reports the run of non-blank
   * characters from there, except when the file ends right after a one-byte character, which
   * it drops without a word. We do the same (and warn).
   */
  private badCharacter(i: number, line: number, column: number): void {
    const s = this.src;
    const c = s[i];
    if (i === s.length - 1 && c.charCodeAt(0) < 0x80) {
      this.pos = s.length;
      this.warn(line, column, `xl ignores the final character ${JSON.stringify(c)} (no newline at the end of the file)`);
      return;
    }
    const shown = JSON.stringify(c === '\r' || c === '\t' || c.charCodeAt(0) < 0x20 ? c : String.fromCodePoint(s.codePointAt(i) ?? 0));
    let reason = `character ${shown} is not allowed here`;
    let hint: string | undefined;
    if (c === '\r') {
      reason = 'carriage return in the file';
      hint = 'xl accepts only LF line endings: convert the file (e.g. dos2unix)';
    } else if (c === '#') {
      reason = 'comment on the last line has no newline after it';
      hint = 'end the file with a newline: xl rejects a final comment without one';
    } else if (c === '"' || c === "'") {
      reason = 'unterminated string';
      hint = 'close the string on the same line: xl strings cannot span lines';
    } else if (c >= 'A' && c <= 'Z') {
      hint = 'keys are lowercase and values must be quoted: write "..." around text';
    } else if ('+-.():'.includes(c)) {
      hint = 'xl config files are not Python: values are quoted strings, numbers or [ lists ]';
    } else if (c === '_' || (c >= 'g' && c <= 'z')) {
      hint = 'quote the value: only 0-9, a-f and x continue a bare number';
    }
    this.fail('syntax.lexical', line, column, reason, hint);
  }

  /** libxlutil's xlu__cfgl_dequote, with a source column for every output character. */
  private dequote(text: string, line: number, column: number): XlString {
    const out: string[] = [];
    const columns: number[] = [];
    const bad = (reason: string, at: number): never =>
      this.fail('syntax.escape', line, column + at, reason, 'valid escapes: \\" \\\' \\\\ \\a \\b \\f \\n \\r \\t \\v');
    const end = text.length - 1;
    let p = 1;
    let dropped = false;
    while (p < end) {
      const c = text[p];
      if (c === '\0') bad('NUL character inside a string (xl aborts on it)', p);
      if (c !== '\\') {
        out.push(c);
        columns.push(column + p);
        p++;
        continue;
      }
      const at = p;
      const nc = text[p + 1];
      p += 2;
      const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
      if (nc in simple) {
        out.push(simple[nc]);
        columns.push(column + at);
      } else if (nc === 'x') {
        bad('\\x escapes are refused by xl (libxlutil 4.17 cannot parse them)', at);
      } else if (nc >= '0' && nc <= '7') {
        // strtoul(base 10) over at most 3 characters after the digit; needs 2 or more consumed.
        const win = text.slice(p, p + 3);
        let k = 0;
        while (k < win.length && isCSpace(win[k])) k++;
        if (k < win.length && (win[k] === '+' || win[k] === '-')) k++;
        const digitsFrom = k;
        while (k < win.length && isDigit(win[k])) k++;
        const consumed = k > digitsFrom ? k : 0;
        if (consumed <= 1) bad('invalid octal escape: xl needs two more digits after \\' + nc, at);
        p += consumed;
        dropped = true;
      } else {
        bad(`invalid escape \\${nc}`, at);
      }
    }
    if (dropped) this.warn(line, column, 'xl drops \\0-\\7 escapes and the digits after them from the string');
    columns.push(column + end);
    const lines = new Array<number>(columns.length).fill(line);
    return new XlString(out.join(''), 'string', this.loc(line, column), lines, columns);
  }

  // -------------------------------------------------------------------------------------------
  // Parser: libxlu_cfg_y.y.

  private unexpected(t: Token, expected: string): never {
    const what = t.kind === 'EOF' || t.kind === 'NEWLINE' ? TOKEN_NAMES[t.kind] : `${TOKEN_NAMES[t.kind]} ${t.text}`;
    let hint: string | undefined;
    if (t.kind === 'IDENT' && expected.includes('value')) hint = 'quote text values: name = "vm1"';
    else if (expected === "',' or ']'" && (t.kind === 'STRING' || t.kind === 'NUMBER' || t.kind === '[')) hint = 'separate list items with commas';
    else if (expected.includes('end of statement')) hint = 'one statement per line, or separate statements with ;';
    else if (t.kind === ',' && expected.includes('value')) hint = 'lists take values between commas: [ "a", "b", ]';
    this.fail('syntax.parse', t.line, t.column, `unexpected ${what}, expected ${expected}`, hint);
  }

  parseFile(): XlConfig {
    const statements: XlStatement[] = [];
    // Per key, the values its newest `=` and the `+=` after it add up to, folded at the end.
    const chains = new Map<string, { name: string; op: '=' | '+='; parts: XlValue[]; items: number; location: ConfigLocation }>();
    for (;;) {
      const t = this.next();
      if (t.kind === 'EOF') break;
      if (t.kind === 'NEWLINE' || t.kind === ';') continue;
      if (t.kind !== 'IDENT') this.unexpected(t, 'a key');
      const opTok = this.next();
      if (opTok.kind !== '=' && opTok.kind !== '+=') this.unexpected(opTok, "'=' or '+='");
      const value = this.parseValue(1);
      const after = this.peek();
      if (after.kind !== 'NEWLINE' && after.kind !== ';' && after.kind !== 'EOF') this.unexpected(after, 'end of statement (newline or ;)');
      const op = opTok.kind;
      const location = this.loc(t.line, t.column);
      statements.push({ name: t.text, op, value, location });
      const prev = chains.get(t.text);
      if (op === '+=' && prev) {
        const prevType = prev.parts[0].type;
        if (prevType !== value.type) {
          this.fail(
            'syntax.concat',
            opTok.line,
            opTok.column,
            `+= cannot add a ${value.type} to a ${prevType}`,
            prevType === 'list' ? 'append lists with += [ "..." ]' : 'append strings with += "..."',
          );
        }
        if (value.type === 'list') {
          prev.items += value.items.length;
          if (prev.items > CONFIG_BOUNDS.maxListItems) {
            this.fail('limit', opTok.line, opTok.column, `+= makes a list of more than ${CONFIG_BOUNDS.maxListItems} items`, `xen-sshm reads lists of at most ${CONFIG_BOUNDS.maxListItems} items`);
          }
        }
        prev.parts.push(value);
        prev.op = op;
        prev.location = location;
      } else {
        // A re-assigned key keeps its first position in the map (delete would move it).
        chains.set(t.text, { name: t.text, op, parts: [value], items: value.type === 'list' ? value.items.length : 0, location });
      }
    }
    const settings = new Map<string, XlSetting>();
    for (const [name, c] of chains) settings.set(name, { name, op: c.op, value: fold(c.parts), location: c.location });
    return new XlConfig(this.file, statements, settings, this.warnings);
  }

  private skipNewlines(): void {
    while (this.peek().kind === 'NEWLINE') this.next();
  }

  /** A value at nesting `depth` (1: the value of a key). Recursion is bounded by maxNesting. */
  private parseValue(depth: number): XlValue {
    const t = this.next();
    if ((t.kind === 'STRING' || t.kind === 'NUMBER') && t.str) return t.str;
    if (t.kind !== '[') this.unexpected(t, 'a value (a "string", a number or a [ list ])');
    if (depth > CONFIG_BOUNDS.maxNesting) {
      this.fail('limit', t.line, t.column, `lists nested more than ${CONFIG_BOUNDS.maxNesting} deep`, 'xl keys take a value or a list of values: no config nests lists this deep');
    }
    const list: XlList = { type: 'list', items: [], location: this.loc(t.line, t.column) };
    this.skipNewlines();
    if (this.peek().kind === ']') {
      this.next();
      return list;
    }
    for (;;) {
      if (list.items.length >= CONFIG_BOUNDS.maxListItems) {
        const at = this.peek();
        this.fail('limit', at.line, at.column, `a list of more than ${CONFIG_BOUNDS.maxListItems} items`, `xen-sshm reads lists of at most ${CONFIG_BOUNDS.maxListItems} items`);
      }
      list.items.push(this.parseValue(depth + 1));
      this.skipNewlines();
      const sep = this.next();
      if (sep.kind === ']') return list;
      if (sep.kind !== ',') this.unexpected(sep, "',' or ']'");
      this.skipNewlines();
      if (this.peek().kind === ']') {
        this.next();
        return list;
      }
    }
  }
}

/** A key's value from its `=` and `+=` parts (all of one type: checked when each was read). */
function fold(parts: XlValue[]): XlValue {
  if (parts.length === 1) return parts[0];
  if (parts[0].type === 'string') return XlString.join(parts as XlString[]);
  const lists = parts as XlList[];
  return { type: 'list', items: lists.flatMap((l) => l.items), location: lists[lists.length - 1].location };
}
