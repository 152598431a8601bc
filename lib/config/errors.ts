/**
 * Typed config errors. Every problem found in an xl config file, from a stray character to a
 * borrower that would need two set_target owners, is one ConfigError naming the file, line,
 * column, the entry text involved, the rule broken and a hint. docs/config.md lists the rules.
 */

import { elide, elideRuns } from '../elide';

/**
 * Bounds on what one error echoes (docs/config.md, "Bounds"): user input (IDs, keys, values,
 * whole entries, source lines) is elided to these many characters, so an error stays a few
 * lines whatever the input. Reasons quote input inside a sentence: each run of characters
 * without a blank longer than ECHO_MAX (lib/elide.ts) is elided, then the whole reason to
 * REASON_MAX. The file name is elided to ENTRY_ECHO_MAX (paths are never that long but for a
 * mistake).
 */
export const ENTRY_ECHO_MAX = 200;
export const REASON_MAX = 400;
/** Characters of a source line shown around the error's column. */
export const SOURCE_WINDOW = 120;
/** Distinct errors reported per file before "N more errors"; repeats of one error count once. */
export const ERRORS_PER_FILE = 50;
/** Errors of one static_shm entry before the rest of it is skipped (its items are not read on). */
export const ERRORS_PER_ENTRY = 10;

/** `s` with every blank-free run longer than ECHO_MAX elided, then the whole to `max`. */
export function elideEcho(s: string, max: number): string {
  return elide(elideRuns(s), max);
}

/** A place in a config file. Lines and columns count from 1; columns count characters. */
export interface ConfigLocation {
  file: string;
  line: number;
  column: number;
}

/**
 * Every rule, with the errno name libxlutil/xl would give for it (`code`) and a one-line title.
 * The id is what `check` prints and what fixtures/config/broken/<id>.cfg demonstrates.
 */
export const RULES = {
  // Reading the file (the libxlutil grammar).
  io: { code: 'EIO', title: 'the config file cannot be read' },
  'syntax.lexical': { code: 'EINVAL', title: 'a character xl does not accept' },
  'syntax.parse': { code: 'EINVAL', title: 'statement does not follow the xl grammar' },
  'syntax.escape': { code: 'EINVAL', title: 'invalid backslash escape in a quoted string' },
  'syntax.concat': { code: 'EINVAL', title: '+= mixes a list and a string' },
  // Bounds of the reader (docs/config.md, "Bounds"): hostile or mistaken input is refused early.
  limit: { code: 'EOVERFLOW', title: 'the config goes beyond a bound of the reader (nesting, list length, string length, errors)' },
  // The domain as a whole.
  'domain.name': { code: 'EINVAL', title: 'the config has no usable `name =`' },
  'domain.name-repeated': { code: 'EINVAL', title: 'two configs name the same domain' },
  // The shared memory keys and their entries.
  'shm.not-list': { code: 'EINVAL', title: 'static_shm / static_shared_mem must be a list' },
  'shm.not-string': { code: 'EINVAL', title: 'each shared memory entry must be a quoted string' },
  'entry.syntax': { code: 'EINVAL', title: 'entry text is malformed' },
  'entry.unknown-key': { code: 'EINVAL', title: 'unknown key in a static_shm entry' },
  'entry.repeated-key': { code: 'EINVAL', title: 'key given twice in one entry' },
  'entry.missing-key': { code: 'EINVAL', title: 'required key missing from an entry' },
  'entry.end-and-size': { code: 'EINVAL', title: 'both end= and size= given' },
  'entry.number': { code: 'EINVAL', title: 'not a number' },
  'entry.role': { code: 'EINVAL', title: 'unknown role' },
  'entry.prot': { code: 'EINVAL', title: 'unknown prot' },
  'entry.cache-policy': { code: 'EINVAL', title: 'unknown cache_policy' },
  'entry.doorbell': { code: 'EINVAL', title: 'doorbell is not yes or no' },
  'id.syntax': { code: 'EINVAL', title: 'ID uses characters other than letters, digits and _' },
  'id.length': { code: 'EINVAL', title: 'ID longer than 128 characters' },
  'id.dom0less-length': { code: 'EINVAL', title: 'ID longer than 15 characters (dom0less export)' },
  align: { code: 'EINVAL', title: 'address or size not 4 KiB aligned' },
  'range.order': { code: 'EINVAL', title: 'begin is not below end' },
  'range.overflow': { code: 'ERANGE', title: 'value does not fit in 64 bits' },
  'offset.owner': { code: 'EINVAL', title: 'offset= given on an owner' },
  'cache-policy.borrower': { code: 'EINVAL', title: 'cache_policy= given on a borrower' },
  // Per domain.
  'id.repeated': { code: 'EINVAL', title: 'an ID listed twice by one domain' },
  'range.overlap': { code: 'EINVAL', title: 'two shared ranges of one domain overlap' },
  // Across the domains given together.
  'id.mixed-spelling': { code: 'EINVAL', title: 'one ID declared in both spellings' },
  'owner.missing': { code: 'EINVAL', title: 'an ID with borrowers but no owner' },
  'owner.multiple': { code: 'EINVAL', title: 'an ID with more than one owner' },
  'size.mismatch': { code: 'EINVAL', title: 'static_shared_mem sizes of one ID differ' },
  window: { code: 'EINVAL', title: "borrower window (offset + size) outside the owner's region" },
  'prot.above-owner': { code: 'EINVAL', title: "borrower prot above the owner's" },
  'set-target': { code: 'EINVAL', title: 'a domain would borrow from two owners (set_target)' },
  'doorbell.owner': { code: 'EINVAL', title: "a borrower asks for a doorbell the owner's region does not have" },
} as const;

export type RuleId = keyof typeof RULES;

export function isRuleId(s: string): s is RuleId {
  return Object.prototype.hasOwnProperty.call(RULES, s);
}

export interface ConfigErrorInit {
  rule: RuleId;
  location: ConfigLocation;
  /** Short statement of what is wrong, without the location. */
  reason: string;
  hint?: string;
  /** The entry or statement text the error is about, as the user wrote it (dequoted). */
  entry?: string;
  /** The source line, for syntax errors (printed with a caret under the column). */
  source?: string;
  /** The domain (`name =`) of the config, when known. */
  domain?: string;
  /** Another place involved: the owner's entry for a borrower's error, the first of two. */
  related?: ConfigLocation & { note: string };
  /** Overrides the rule's errno name (io errors carry the real one). */
  code?: string;
}

/** True while withReason copies an error whose fields are bounded already. */
let copying = false;

/** One config problem. `message` is `file:line:col: reason [rule]` so it reads well alone. */
export class ConfigError extends Error {
  readonly kind = 'config' as const;
  readonly code: string;
  readonly rule: RuleId;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly reason: string;
  readonly hint?: string;
  readonly entry?: string;
  readonly source?: string;
  readonly domain?: string;
  readonly related?: ConfigLocation & { note: string };

  constructor(init: ConfigErrorInit) {
    const { file, line, column } = init.location;
    // Every piece of user input is bounded here, once, whatever rule made the error (not again
    // for a copy made by withReason: its fields were bounded already).
    const bounded = !copying;
    const reason = bounded ? elideEcho(init.reason, REASON_MAX) : init.reason;
    const where = bounded ? elide(file, ENTRY_ECHO_MAX) : file;
    super(`${where}:${line}:${column}: ${reason} [${init.rule}]`);
    this.name = 'ConfigError';
    this.code = init.code ?? RULES[init.rule].code;
    this.rule = init.rule;
    this.file = where;
    this.line = line;
    this.column = column;
    this.reason = reason;
    if (init.hint !== undefined) this.hint = bounded ? elideEcho(init.hint, 2 * REASON_MAX) : init.hint;
    if (init.entry !== undefined) this.entry = bounded ? elide(init.entry, ENTRY_ECHO_MAX) : init.entry;
    if (init.source !== undefined) {
      const w = bounded ? sourceWindow(init.source, column) : { text: init.source, caret: column };
      this.source = w.text;
      this.#caret = w.caret;
    }
    if (init.domain !== undefined) this.domain = bounded ? elide(init.domain) : init.domain;
    if (init.related !== undefined) this.related = bounded ? { ...init.related, note: elideEcho(init.related.note, REASON_MAX) } : init.related;
  }

  /** Column of the caret under `source` (differs from `column` when the line was cut). */
  #caret = 0;

  /** The same error with another reason (the rest unchanged). */
  withReason(reason: string): ConfigError {
    const init: ConfigErrorInit = { rule: this.rule, location: this.location, reason: elideEcho(reason, REASON_MAX), code: this.code };
    if (this.hint !== undefined) init.hint = this.hint;
    if (this.entry !== undefined) init.entry = this.entry;
    if (this.source !== undefined) init.source = this.source;
    if (this.domain !== undefined) init.domain = this.domain;
    if (this.related !== undefined) init.related = this.related;
    copying = true;
    try {
      const e = new ConfigError(init);
      e.#caret = this.#caret;
      return e;
    } finally {
      copying = false;
    }
  }

  get location(): ConfigLocation {
    return { file: this.file, line: this.line, column: this.column };
  }

  /** The multi-line text `check` prints: location and reason, then entry, related, hint. */
  format(): string {
    const lines = [`${this.file}:${this.line}:${this.column}: error [${this.rule}]: ${this.reason}`];
    if (this.entry !== undefined) lines.push(`  entry: ${JSON.stringify(this.entry)}`);
    if (this.source !== undefined) {
      // Keep tabs so the caret lines up under the column in a terminal.
      const pad = this.source.slice(0, Math.max(0, this.#caret - 1)).replace(/[^\t]/g, ' ');
      lines.push(`  line:  ${this.source}`, `         ${pad}^`);
    }
    if (this.related) {
      const r = this.related;
      lines.push(`  see:   ${r.file}:${r.line}:${r.column}: ${r.note}`);
    }
    if (this.hint) lines.push(`  hint:  ${this.hint}`);
    return lines.join('\n');
  }

  toJSON(): Record<string, unknown> {
    return {
      kind: this.kind,
      code: this.code,
      rule: this.rule,
      file: this.file,
      line: this.line,
      column: this.column,
      message: this.reason,
      entry: this.entry,
      source: this.source,
      domain: this.domain,
      related: this.related,
      hint: this.hint,
    };
  }
}

/**
 * At most SOURCE_WINDOW characters of a source line around `column` (1-based), with "..." where
 * it was cut; `caret` is the column within the text shown.
 */
export function sourceWindow(line: string, column: number): { text: string; caret: number } {
  if (line.length <= SOURCE_WINDOW) return { text: line, caret: column };
  const half = Math.floor(SOURCE_WINDOW / 2);
  const start = Math.max(0, Math.min(column - 1 - half, line.length - SOURCE_WINDOW));
  const end = Math.min(line.length, start + SOURCE_WINDOW);
  const before = start > 0 ? '...' : '';
  const after = end < line.length ? '...' : '';
  return { text: before + line.slice(start, end) + after, caret: column - start + before.length };
}

/**
 * The errors to report, bounded (docs/config.md, "Bounds"): per file, an error repeated with the
 * same rule and reason is reported once, with the count of its repeats in its reason; then at
 * most ERRORS_PER_FILE distinct errors, followed by one `limit` error saying how many more there
 * are. Order is kept. Linear in the number of errors.
 */
export function boundErrors(errors: readonly ConfigError[], perFile: number = ERRORS_PER_FILE): ConfigError[] {
  const byFile = new Map<string, { kept: ConfigError[]; repeats: Map<string, number>; firstOf: Map<string, ConfigError>; more: number; last: ConfigError }>();
  const order: ConfigError[] = [];
  for (const e of errors) {
    let f = byFile.get(e.file);
    if (!f) {
      f = { kept: [], repeats: new Map(), firstOf: new Map(), more: 0, last: e };
      byFile.set(e.file, f);
    }
    f.last = e;
    const key = `${e.rule}\0${e.reason}`;
    const first = f.firstOf.get(key);
    if (first) {
      f.repeats.set(key, (f.repeats.get(key) ?? 0) + 1);
      continue;
    }
    if (f.kept.length >= perFile) {
      f.more++;
      continue;
    }
    f.firstOf.set(key, e);
    f.kept.push(e);
    order.push(e);
  }
  const out: ConfigError[] = [];
  const done = new Set<string>();
  for (const e of order) {
    const f = byFile.get(e.file)!;
    const n = f.repeats.get(`${e.rule}\0${e.reason}`) ?? 0;
    out.push(n > 0 ? e.withReason(`${e.reason} (and ${n} more time${n === 1 ? '' : 's'} in this file)`) : e);
    if (f.kept[f.kept.length - 1] === e && !done.has(e.file)) {
      done.add(e.file);
      if (f.more > 0) {
        out.push(
          new ConfigError({
            rule: 'limit',
            location: f.last.location,
            reason: `and ${f.more} more error${f.more === 1 ? '' : 's'} in this file, not shown`,
            hint: `xen-sshm reports at most ${perFile} distinct errors per file: fix these first`,
          }),
        );
      }
    }
  }
  return out;
}

/** The `limit` error closing an entry that reached ERRORS_PER_ENTRY: its other items are not read. */
export function tooManyErrors(item: { location: ConfigLocation }, entry: string): ConfigError {
  return new ConfigError({
    rule: 'limit',
    location: item.location,
    reason: `more than ${ERRORS_PER_ENTRY} errors in this entry: the rest of it is not read`,
    entry,
    hint: 'fix these first; each static_shm entry is a few key=value items',
  });
}

/** Something xl accepts but the user probably did not mean; never fails a check. */
export interface ConfigWarning {
  kind: 'config-warning';
  file: string;
  line: number;
  column: number;
  message: string;
}

export function formatWarning(w: ConfigWarning): string {
  return `${w.file}:${w.line}:${w.column}: warning: ${w.message}`;
}
