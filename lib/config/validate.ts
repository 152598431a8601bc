/**
 * Validation of static shared memory entries: each entry alone, each domain's entries
 * together, and several domains' configs together (the plan). One rule per kind of mistake;
 * errors.ts lists them and docs/config.md explains each.
 */
import { ConfigError, ConfigLocation, ConfigWarning, RuleId } from './errors';
import { didYouMean } from './did-you-mean';
import { boundErrors } from './errors';
import { hex, humanSize, PAGE_SIZE, U64_MAX } from './numbers';
import { CachePolicy, domainName, parseSharedMemEntries, ShmEntry, ShmProt, ShmSpelling, StaticShmKey } from './shm-entries';
import { XlConfig } from './xl-reader';

export interface ValidateOptions {
  /** The entries are to be exported as dom0less device-tree nodes (xen,shm-id <= 15 chars). */
  dom0less?: boolean;
}

/** The longest ID (the 2017 syntax: "no longer than 128 characters"). */
export const MAX_ID_LENGTH = 128;
/** The longest `xen,shm-id` Xen's dom0less static shared memory accepts. */
export const MAX_DOM0LESS_ID_LENGTH = 15;

const ID_RE = /^[A-Za-z0-9_]+$/;

function label(e: ShmEntry): string {
  return e.domain ?? e.file;
}

function at(e: ShmEntry, key?: StaticShmKey): ConfigLocation {
  return (key && e.keys[key]) || e.location;
}

function entryError(e: ShmEntry, rule: RuleId, key: StaticShmKey | undefined, reason: string, hint?: string, related?: ShmEntry, note?: string): ConfigError {
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
  if (!ID_RE.test(e.id)) {
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

// ---------------------------------------------------------------------------------------------
// Across domains.

export interface PlanMapping {
  domain: string;
  file: string;
  location: ConfigLocation;
  begin: bigint;
  end: bigint;
  size: bigint;
  offset: bigint;
  prot: ShmProt;
  /** As written: 'auto' for static_shared_mem. */
  role: 'owner' | 'borrower' | 'auto';
}

export interface PlanRegion {
  id: string;
  spelling: ShmSpelling;
  owner: PlanMapping & { cachePolicy: CachePolicy | null };
  borrowers: PlanMapping[];
}

export interface Plan {
  /** The configs, in the order given (for static_shared_mem the first listing an ID owns it). */
  domains: Array<{ name: string; file: string; entries: number }>;
  regions: PlanRegion[];
  /** XEN_DOMCTL_set_target calls a stock Xen needs: each borrower domain -> its one owner. */
  setTarget: Array<{ borrower: string; owner: string }>;
}

export interface PlanResult {
  plan: Plan;
  errors: ConfigError[];
  warnings: ConfigWarning[];
}

const SHM_KEYS = ['static_shm', 'static_shared_mem'];

const SET_TARGET_HINT =
  'on stock Xen a domU can map another domU\'s pages only after dom0 makes the owner its target (XEN_DOMCTL_set_target), ' +
  'which can be done once per domain and never undone, so a domain can borrow from one owner only; ' +
  "it also gives the borrower device-model rights over all of that owner's memory. " +
  'Let one domain own every region this domain borrows, or use a Xen built with FLASK whose policy allows the mapping.';

function toMapping(e: ShmEntry): PlanMapping {
  return { domain: label(e), file: e.file, location: e.location, begin: e.begin, end: e.end, size: e.size, offset: e.offset, prot: e.prot, role: e.role };
}

/**
 * Validate several domains' configs together and plan who owns and who borrows each ID.
 * Per-domain rules run first; the cross-domain rules only see entries that passed them, so
 * one mistake gives one error. For static_shared_mem (role automatic) the first config in
 * `configs` that lists an ID is planned as its owner: apply them in this order.
 */
export function planConfigs(configs: XlConfig[], opts: ValidateOptions = {}): PlanResult {
  const errors: ConfigError[] = [];
  const warnings: ConfigWarning[] = [];
  const plan: Plan = { domains: [], regions: [], setTarget: [] };
  const all: ShmEntry[] = [];
  const names = new Map<string, XlConfig>();

  for (const cfg of configs) {
    warnings.push(...cfg.warnings);
    for (const key of cfg.keys()) {
      if (SHM_KEYS.includes(key)) continue;
      const guess = didYouMean(key, SHM_KEYS);
      const st = cfg.settings.get(key);
      if (guess && st) warnings.push({ kind: 'config-warning', ...st.location, message: `key ${key} is not read by xen-sshm; did you mean ${guess}?` });
    }
    const dn = domainName(cfg);
    if (dn.error) errors.push(dn.error);
    if (dn.name !== null) {
      const first = names.get(dn.name);
      if (first) {
        const here = cfg.settings.get('name');
        const there = first.settings.get('name');
        errors.push(
          new ConfigError({
            rule: 'domain.name-repeated',
            location: here ? here.value.location : { file: cfg.file, line: 1, column: 1 },
            reason: `domain name ${JSON.stringify(dn.name)} is already used by ${first.file}`,
            hint: 'each config given together describes a different domain: give each its own name',
            domain: dn.name,
            related: there ? { ...there.value.location, note: 'first named here' } : undefined,
          }),
        );
        continue;
      }
      names.set(dn.name, cfg);
    }
    const parsed = parseSharedMemEntries(cfg);
    errors.push(...parsed.errors);
    const dv = validateDomainEntries(parsed.entries, opts);
    errors.push(...dv.errors);
    plan.domains.push({ name: dn.name ?? cfg.file, file: cfg.file, entries: parsed.entries.length });
    all.push(...dv.valid);
  }

  // Group by ID, keeping the order of first appearance.
  const byId = new Map<string, ShmEntry[]>();
  for (const e of all) {
    const list = byId.get(e.id) ?? [];
    list.push(e);
    byId.set(e.id, list);
  }

  for (const [id, list] of byId) {
    const spelling = list[0].spelling;
    const odd = list.find((e) => e.spelling !== spelling);
    if (odd) {
      errors.push(
        entryError(
          odd,
          'id.mixed-spelling',
          'id',
          `ID ${id} is declared with ${odd.spelling} here and with ${spelling} by ${label(list[0])}`,
          'static_shared_mem decides the owner by who applies first and static_shm names it: use one spelling for all entries of an ID',
          list[0],
        ),
      );
      continue;
    }
    let owner: ShmEntry;
    let borrowers: ShmEntry[];
    if (spelling === 'static_shared_mem') {
      [owner, ...borrowers] = list;
      const mismatched = borrowers.filter((b) => b.size !== owner.size);
      for (const b of mismatched) {
        errors.push(
          entryError(
            b,
            'size.mismatch',
            b.keys.size ? 'size' : 'end',
            `${id} is ${hex(b.size)} bytes here but ${hex(owner.size)} in ${label(owner)}, which owns it`,
            `static_shared_mem maps the whole region: every domain listing ${id} gives the same size (${humanSize(owner.size)})`,
            owner,
          ),
        );
      }
      borrowers = borrowers.filter((b) => !mismatched.includes(b));
    } else {
      const owners = list.filter((e) => e.role === 'owner');
      if (owners.length === 0) {
        errors.push(
          entryError(
            list[0],
            'owner.missing',
            'role',
            `no config given declares an owner of ${id} (${list.length} borrower${list.length > 1 ? 's' : ''})`,
            `mark the domain that allocates ${id} with role=owner, and check its config together with the borrowers' (borrower is the default role)`,
          ),
        );
        continue;
      }
      [owner] = owners;
      for (const o of owners.slice(1)) {
        errors.push(entryError(o, 'owner.multiple', 'role', `${id} already has an owner, ${label(owner)}`, `exactly one domain owns ${id}: make the others role=borrower`, owner));
      }
      borrowers = [];
      for (const b of list.filter((e) => e.role === 'borrower')) {
        let bad = false;
        if (b.offset + b.size > owner.size) {
          bad = true;
          errors.push(
            entryError(
              b,
              'window',
              b.keys.offset ? 'offset' : b.keys.size ? 'size' : 'end',
              `window offset ${hex(b.offset)} + size ${hex(b.size)} = ${hex(b.offset + b.size)} ends past the owner's region of ${hex(owner.size)} bytes`,
              `a borrower maps part of the owner's region: keep offset + size <= ${hex(owner.size)} (${humanSize(owner.size)})`,
              owner,
            ),
          );
        }
        if (b.prot === 'rw' && owner.prot === 'r') {
          bad = true;
          errors.push(entryError(b, 'prot.above-owner', b.keys.prot ? 'prot' : 'id', `borrower prot rw is above the owner's prot r`, "a borrower cannot write what the owner shares read-only: use prot=r (rw is the default)", owner));
        }
        if (!bad) borrowers.push(b);
      }
    }
    plan.regions.push({ id, spelling, owner: { ...toMapping(owner), cachePolicy: owner.cachePolicy }, borrowers: borrowers.map(toMapping) });
  }

  // set_target: one owner per borrowing domain.
  const ownerOf = new Map<string, { owner: string; region: PlanRegion }>();
  for (const region of plan.regions) {
    for (const b of region.borrowers) {
      const seen = ownerOf.get(b.domain);
      if (!seen) {
        ownerOf.set(b.domain, { owner: region.owner.domain, region });
        plan.setTarget.push({ borrower: b.domain, owner: region.owner.domain });
        continue;
      }
      if (seen.owner === region.owner.domain) continue;
      const entry = all.find((e) => label(e) === b.domain && e.id === region.id) as ShmEntry;
      const firstEntry = all.find((e) => label(e) === b.domain && e.id === seen.region.id) as ShmEntry;
      errors.push(
        entryError(
          entry,
          'set-target',
          'id',
          `${b.domain} would borrow ${region.id} from ${region.owner.domain} and ${seen.region.id} from ${seen.owner}: a domain can borrow from one owner only`,
          SET_TARGET_HINT,
          firstEntry,
          `${b.domain} borrows ${seen.region.id} from ${seen.owner} here`,
        ),
      );
    }
  }

  const order = new Map(configs.map((c, i) => [c.file, i]));
  errors.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column);
  // Bounded report (docs/config.md, "Bounds"): repeats once, at most ERRORS_PER_FILE per file.
  return { plan, errors: boundErrors(errors), warnings };
}

/** The plan with bigints as 0x hex strings, for JSON. */
export function planToJSON(plan: Plan): unknown {
  const m = (x: PlanMapping) => ({ ...x, begin: hex(x.begin), end: hex(x.end), size: hex(x.size), offset: hex(x.offset) });
  return {
    domains: plan.domains,
    regions: plan.regions.map((r) => ({ id: r.id, spelling: r.spelling, owner: m(r.owner), borrowers: r.borrowers.map(m) })),
    setTarget: plan.setTarget,
  };
}
