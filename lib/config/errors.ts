/**
 * Typed config errors. Every problem found in an xl config file, from a stray character to a
 * borrower that would need two set_target owners, is one ConfigError naming the file, line,
 * column, the entry text involved, the rule broken and a hint. docs/config.md lists the rules.
 */

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
    super(`${file}:${line}:${column}: ${init.reason} [${init.rule}]`);
    this.name = 'ConfigError';
    this.code = init.code ?? RULES[init.rule].code;
    this.rule = init.rule;
    this.file = file;
    this.line = line;
    this.column = column;
    this.reason = init.reason;
    if (init.hint !== undefined) this.hint = init.hint;
    if (init.entry !== undefined) this.entry = init.entry;
    if (init.source !== undefined) this.source = init.source;
    if (init.domain !== undefined) this.domain = init.domain;
    if (init.related !== undefined) this.related = init.related;
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
      const pad = this.source.slice(0, Math.max(0, this.column - 1)).replace(/[^\t]/g, ' ');
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
