/**
 * Validation of static shared memory entries: each entry alone and each domain's entries
 * together. The rules across domains (and against the current records) are in plan.ts. One
 * rule per kind of mistake; errors.ts lists them and docs/config.md explains each.
 */
import { ConfigError, ConfigLocation, RuleId } from './errors';
import { hex, PAGE_SIZE, U64_MAX } from './numbers';
import { ShmEntry, StaticShmKey } from './shm-entries';
import { MAX_DOM0LESS_ID_LENGTH, MAX_ID_LENGTH, SHM_ID_RE } from '../vocabulary';

export interface ValidateOptions {
  /** The entries are to be exported as dom0less device-tree nodes (xen,shm-id <= 15 chars). */
  dom0less?: boolean;
}

export { MAX_DOM0LESS_ID_LENGTH, MAX_ID_LENGTH } from '../vocabulary';

/** How an entry's domain is named in messages: its `name =`, else its file. */
export function label(e: ShmEntry): string {
  return e.domain ?? e.file;
}

function at(e: ShmEntry, key?: StaticShmKey): ConfigLocation {
  return (key && e.keys[key]) || e.location;
}

/** A ConfigError about entry `e` (at `key` when given), with `related` as the other party. */
export function entryError(e: ShmEntry, rule: RuleId, key: StaticShmKey | undefined, reason: string, hint?: string, related?: ShmEntry, note?: string): ConfigError {
  return new ConfigError({
    rule,
    location: at(e, key),
    reason,
    hint,
    entry: e.text,
    domain: e.domain ?? undefined,
    related: related ? { ...related.location, note: note ?? `${label(related)}: ${JSON.stringify(related.text)}` } : undefined,
  });
}

/** Rules that concern one entry alone. */
export function validateEntry(e: ShmEntry, opts: ValidateOptions = {}): ConfigError[] {
  const errors: ConfigError[] = [];
  // ID: letters, digits and _, 1..128 characters; 15 for dom0less device trees.
  if (!SHM_ID_RE.test(e.id)) {
    errors.push(entryError(e, 'id.syntax', 'id', `ID ${JSON.stringify(e.id)} may only use letters, digits and _`, 'IDs name xenstore nodes: use e.g. ID1 or ring_0'));
  } else if (e.id.length > MAX_ID_LENGTH) {
    errors.push(entryError(e, 'id.length', 'id', `ID is ${e.id.length} characters long, more than ${MAX_ID_LENGTH}`, 'shorten the ID'));
  } else if (opts.dom0less && e.id.length > MAX_DOM0LESS_ID_LENGTH) {
    errors.push(
      entryError(e, 'id.dom0less-length', 'id', `ID ${JSON.stringify(e.id)} is ${e.id.length} characters long; a dom0less xen,shm-id holds at most ${MAX_DOM0LESS_ID_LENGTH}`, 'shorten the ID to 15 characters or fewer for a dom0less export'),
    );
  }
  // 64 bits: END is exclusive, so the last byte begin + size - 1 must be addressable and the
  // exclusive end itself must be writable as a 64-bit number (xenstore records "0xBEGIN-0xEND").
  const sizeKey: StaticShmKey = e.keys.size ? 'size' : 'end';
  let overflow = false;
  if (e.end > U64_MAX) {
    overflow = true;
    errors.push(entryError(e, 'range.overflow', sizeKey, `begin ${hex(e.begin)} + size ${hex(e.size)} goes past the 64-bit address space`, 'lower begin or size'));
  }
  if (e.offset + (e.size > 0n ? e.size : 0n) > U64_MAX) {
    overflow = true;
    errors.push(entryError(e, 'range.overflow', 'offset', `offset ${hex(e.offset)} + size ${hex(e.size)} does not fit in 64 bits`, 'lower offset or size'));
  }
  if (e.size <= 0n) {
    const reason = e.keys.size ? 'size is 0' : `begin ${hex(e.begin)} is not below end ${hex(e.end)}`;
    errors.push(entryError(e, 'range.order', sizeKey, reason, e.keys.size ? 'a region is at least one 4 KiB page' : 'end is exclusive and must be above begin (or give size= instead)'));
  }
  // Page alignment (4 KiB) of everything that is written.
  const aligned = (n: bigint) => n % PAGE_SIZE === 0n;
  const down = (n: bigint) => n - (n % PAGE_SIZE);
  const alignHint = (n: bigint) => `use ${hex(down(n))} or ${hex(down(n) + PAGE_SIZE)}: static shared memory is mapped in 4 KiB pages`;
  if (!aligned(e.begin)) errors.push(entryError(e, 'align', 'begin', `begin ${hex(e.begin)} is not 4 KiB aligned`, alignHint(e.begin)));
  if (!overflow && e.size > 0n) {
    if (e.keys.size && !aligned(e.size)) errors.push(entryError(e, 'align', 'size', `size ${hex(e.size)} is not a multiple of 4 KiB`, alignHint(e.size)));
    if (!e.keys.size && !aligned(e.end)) errors.push(entryError(e, 'align', 'end', `end ${hex(e.end)} is not 4 KiB aligned`, alignHint(e.end)));
  }
  if (!aligned(e.offset)) errors.push(entryError(e, 'align', 'offset', `offset ${hex(e.offset)} is not 4 KiB aligned`, alignHint(e.offset)));
  // Role-specific keys.
  if (e.role === 'owner' && e.keys.offset) {
    errors.push(entryError(e, 'offset.owner', 'offset', 'offset= is given on an owner', "offset= says where a borrower's window starts inside the owner's region: remove it from the owner"));
  }
  if (e.role === 'borrower' && e.keys.cache_policy) {
    errors.push(entryError(e, 'cache-policy.borrower', 'cache_policy', 'cache_policy= is given on a borrower', "the owner's cache_policy applies to every mapping: remove it here, or add role=owner if this domain owns the region"));
  }
  return errors;
}

export interface DomainValidation {
  errors: ConfigError[];
  /** The entries that passed every rule (the ones a plan is made of). */
  valid: ShmEntry[];
}

/** Rules within one domain: each entry, an ID at most once, no overlapping ranges. */
export function validateDomainEntries(entries: ShmEntry[], opts: ValidateOptions = {}): DomainValidation {
  const errors: ConfigError[] = [];
  const ok: ShmEntry[] = [];
  for (const e of entries) {
    const errs = validateEntry(e, opts);
    errors.push(...errs);
    if (errs.length === 0) ok.push(e);
  }
  const valid: ShmEntry[] = [];
  const byId = new Map<string, ShmEntry>();
  for (const e of entries) {
    const first = byId.get(e.id);
    if (first) {
      errors.push(entryError(e, 'id.repeated', 'id', `ID ${e.id} is already listed by this domain`, 'a domain lists each ID once: remove one of the entries', first, 'first listed here'));
      continue;
    }
    byId.set(e.id, e);
    if (ok.includes(e)) valid.push(e);
  }
  // Overlaps between the valid entries (owned or borrowed: both occupy guest physical space).
  const kept: ShmEntry[] = [];
  for (const e of valid) {
    const other = kept.find((k) => e.begin < k.end && k.begin < e.end);
    if (other) {
      errors.push(
        entryError(
          e,
          'range.overlap',
          'begin',
          `range ${hex(e.begin)}-${hex(e.end)} (${e.id}) overlaps ${hex(other.begin)}-${hex(other.end)} (${other.id}) in the same domain`,
          'give each region of a domain its own guest physical range',
          other,
          `${other.id} is at ${hex(other.begin)}-${hex(other.end)}`,
        ),
      );
      continue;
    }
    kept.push(e);
  }
  return { errors, valid: kept };
}

/** The brief's `validateDomain(entries)`: every per-entry and per-domain error. */
export function validateDomain(entries: ShmEntry[], opts: ValidateOptions = {}): ConfigError[] {
  return validateDomainEntries(entries, opts).errors;
}
