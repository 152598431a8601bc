/**
 * The planner: one pure function, `planConfigs(configs, current)`, holds every rule across
 * domains. It takes several domains' configs plus what is already recorded (the regions of the
 * xenstore schema, seen as peer regions, and the set_target each domain has) and returns the
 * plan: who owns and who borrows each ID, the set_target calls a stock Xen needs, and one
 * decision per entry. `xen-sshm check` calls it with configs alone; the manager calls it with
 * the domain's config and the records, before any change and again inside each claim
 * transaction on what that transaction read. So `check` and `apply` cannot disagree on a rule.
 *
 * Records come first: a recorded region's owner owns the ID whatever the configs say (for
 * static_shared_mem, the first domain to apply an ID owns it), and a recorded target is a
 * domain's first and only owner. Errors always fall on config entries, never on records.
 */
import { didYouMean } from './did-you-mean';
import { boundErrors, ConfigError, ConfigLocation, ConfigWarning } from './errors';
import { hex, humanSize } from './numbers';
import { domainName, parseSharedMemEntries, ShmEntry, StaticShmKey } from './shm-entries';
import { entryError, label, validateDomainEntries, ValidateOptions } from './validate';
import { XlConfig } from './xl-reader';
import { SPELLINGS, type CachePolicy, type MappingRole, type ShmProt, type ShmSpelling } from '../vocabulary';

/** One domain's recorded use of a region (the store's MappingRecord is one). */
export interface PeerMapping {
  domid: number;
  begin: bigint;
  end: bigint;
  offset: bigint;
  prot: ShmProt;
}

/** A region as recorded (the store's RegionRecord is one): the owner's range and every mapping. */
export interface PeerRegion {
  id: string;
  owner: number;
  begin: bigint;
  size: bigint;
  prot: ShmProt;
  cachePolicy: CachePolicy;
  /** null: recorded by a tool that does not say. */
  spelling: ShmSpelling | null;
  /** The region carries a doorbell (docs/doorbells.md); absent or false: none. */
  doorbell?: boolean;
  mappings: readonly PeerMapping[];
}

/** What is recorded now: regions, and the owner each domain was made target of (set_target). */
export interface CurrentRecords<R extends PeerRegion = PeerRegion> {
  regions: readonly R[];
  targets?: ReadonlyMap<number, number>;
}

export const NO_RECORDS: CurrentRecords = { regions: [] };

/** A config, or a config applied to a known domain (so that records of that domid are its own). */
export type PlanInput = XlConfig | { config: XlConfig; domid: number };

export interface PlanOptions extends ValidateOptions {
  /** Plan only this ID across domains (a claim re-checks the one region it read). */
  only?: string;
}

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
  /** Set when this side comes from the records (file is then the xenstore path, line 0). */
  recorded?: true;
  /** The owner: the region carries a doorbell. A borrower: it gets a port (a doorbell region it did not decline). */
  doorbell: boolean;
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
  /**
   * XEN_DOMCTL_set_target calls a stock Xen needs: each borrower domain -> its one owner;
   * `recorded` when the records say it was made already.
   */
  setTarget: Array<{ borrower: string; owner: string; recorded?: true }>;
}

/** What one entry that passed every rule asks of the host, decided against the records. */
export interface EntryDecision<R extends PeerRegion = PeerRegion> {
  entry: ShmEntry;
  /** The domain applied to, when the input named it. */
  domid: number | null;
  role: MappingRole;
  /** The ID's recorded region, or null when nobody applied it yet. */
  region: R | null;
  /** This domain's recorded mapping of the ID, if any (the owner's own one included). */
  existing: PeerMapping | null;
  /** For a borrower: 'needed' when no set_target to its owner is recorded yet. */
  setTarget?: 'needed' | 'recorded';
  /** The owner: its region carries a doorbell. A borrower: it gets a port in the owner. */
  doorbell: boolean;
}

export interface PlanResult<R extends PeerRegion = PeerRegion> {
  plan: Plan;
  errors: ConfigError[];
  warnings: ConfigWarning[];
  /** The entries that passed every rule, in config order. */
  decisions: EntryDecision<R>[];
  /** The errors whose other party is the records (a recorded owner, mapping or target), and the entry each is about. */
  againstRecords: ReadonlyMap<ConfigError, ShmEntry>;
}

const SET_TARGET_HINT =
  'on stock Xen a domU can map another domU\'s pages only after dom0 makes the owner its target (XEN_DOMCTL_set_target), ' +
  'which can be done once per domain and never undone, so a domain can borrow from one owner only; ' +
  "it also gives the borrower device-model rights over all of that owner's memory. " +
  'Let one domain own every region this domain borrows, or use a Xen built with FLASK whose policy allows the mapping.';

const SHM_KEYS: readonly string[] = SPELLINGS;

/** One valid config entry with its domain's identity. */
interface Claimant {
  entry: ShmEntry;
  /** Domain identity: `d<domid>` when known (records use it too), else `n:<name or file>`. */
  key: string;
  domid: number | null;
}

const recordKey = (domid: number): string => `d${domid}`;

function toMapping(e: ShmEntry, doorbell: boolean): PlanMapping {
  return { domain: label(e), file: e.file, location: e.location, begin: e.begin, end: e.end, size: e.size, offset: e.offset, prot: e.prot, role: e.role, doorbell };
}

/**
 * The doorbell rules (docs/doorbells.md): the owner decides; a borrower that omits the key
 * follows it, `doorbell=no` declines, `doorbell=yes` needs the owner's region to have one.
 * Returns whether the borrower gets a port, or the error when it asks for a missing doorbell.
 */
function borrowerDoorbell(b: ShmEntry, regionHasDoorbell: boolean, id: string, ownerLabel: string, ownerEntry?: ShmEntry): boolean | ConfigError {
  if (b.doorbell === true && !regionHasDoorbell) {
    return entryError(
      b,
      'doorbell.owner',
      b.keys.doorbell ? 'doorbell' : 'id',
      `${label(b)} asks for a doorbell on ${id}, but its owner ${ownerLabel}${ownerEntry ? '' : ', as recorded,'} gives the region none`,
      b.keys.doorbell
        ? `the owner decides: add doorbell=yes to the owner's entry of ${id}, or remove doorbell=yes here (a borrower follows its owner)`
        : `the owner decides: apply the owner with --doorbell (static_shared_mem) or doorbell=yes (static_shm), or apply this domain without --doorbell`,
      ownerEntry,
    );
  }
  return regionHasDoorbell && b.doorbell !== false;
}

function recordedOwner(r: PeerRegion): PlanMapping & { cachePolicy: CachePolicy | null } {
  const where = { file: r.id, line: 0, column: 0 };
  return { domain: `d${r.owner}`, file: where.file, location: where, begin: r.begin, end: r.begin + r.size, size: r.size, offset: 0n, prot: r.prot, role: 'owner', recorded: true, cachePolicy: r.cachePolicy, doorbell: !!r.doorbell };
}

/** One config read and validated on its own: the first stage of the planner. */
export interface ReadDomain {
  config: XlConfig;
  /** The domain it is applied to, when known: records of that domid are its own. */
  domid: number | null;
  name: string | null;
  /** Entries written (valid or not). */
  entries: number;
  /** The entries that passed every per-entry and per-domain rule. */
  valid: ShmEntry[];
}

export interface ReadResult {
  /** Every config's file, in the order given (errors are sorted by it). */
  files: string[];
  domains: ReadDomain[];
  errors: ConfigError[];
  warnings: ConfigWarning[];
}

/**
 * Stage one: each config on its own (its name, its entries, the per-entry and per-domain rules
 * of validate.ts), and names unique across configs. Nothing here depends on other domains or on
 * the records, so `apply` can refuse a broken config before it looks at the host.
 */
export function readDomains(configs: readonly PlanInput[], opts: ValidateOptions = {}): ReadResult {
  const out: ReadResult = { files: [], domains: [], errors: [], warnings: [] };
  const names = new Map<string, XlConfig>();
  for (const input of configs) {
    const { config: cfg, domid } = 'config' in input ? input : { config: input, domid: null };
    out.files.push(cfg.file);
    out.warnings.push(...cfg.warnings);
    for (const key of cfg.keys()) {
      if (SHM_KEYS.includes(key)) continue;
      const guess = didYouMean(key, SHM_KEYS);
      const st = cfg.settings.get(key);
      if (guess && st) out.warnings.push({ kind: 'config-warning', ...st.location, message: `key ${key} is not read by xen-sshm; did you mean ${guess}?` });
    }
    const dn = domainName(cfg);
    if (dn.error) out.errors.push(dn.error);
    if (dn.name !== null) {
      const first = names.get(dn.name);
      if (first) {
        const here = cfg.settings.get('name');
        const there = first.settings.get('name');
        out.errors.push(
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
    if (opts.doorbell) for (const e of parsed.entries) e.doorbell ??= true;
    out.errors.push(...parsed.errors);
    const dv = validateDomainEntries(parsed.entries, opts);
    out.errors.push(...dv.errors);
    out.domains.push({ config: cfg, domid, name: dn.name, entries: parsed.entries.length, valid: dv.valid });
  }
  return out;
}

/**
 * Validate several domains' configs together, against the current records, and plan who owns
 * and who borrows each ID. Per-domain rules run first; the cross-domain rules only see entries
 * that passed them, so one mistake gives one error. For static_shared_mem (role automatic) the
 * recorded owner, else the first config in `configs` that lists an ID, owns it: apply them in
 * this order.
 */
export function planConfigs<R extends PeerRegion = PeerRegion>(configs: readonly PlanInput[], current: CurrentRecords<R> = NO_RECORDS as CurrentRecords<R>, opts: PlanOptions = {}): PlanResult<R> {
  return planDomains(readDomains(configs, opts), current, opts);
}

/** Stage two: the rules across domains and against the records, on what readDomains() kept. */
export function planDomains<R extends PeerRegion = PeerRegion>(read: ReadResult, current: CurrentRecords<R> = NO_RECORDS as CurrentRecords<R>, opts: { only?: string } = {}): PlanResult<R> {
  const errors: ConfigError[] = [...read.errors];
  const againstRecords = new Map<ConfigError, ShmEntry>();
  const recordError = (e: ConfigError, about: ShmEntry): void => {
    errors.push(e);
    againstRecords.set(e, about);
  };
  const warnings: ConfigWarning[] = [...read.warnings];
  const plan: Plan = { domains: [], regions: [], setTarget: [] };
  const all: Claimant[] = [];
  const recorded = new Map(current.regions.map((r) => [r.id, r]));

  for (const { config: cfg, domid, name, entries, valid } of read.domains) {
    plan.domains.push({ name: name ?? cfg.file, file: cfg.file, entries });
    const key = domid !== null ? recordKey(domid) : `n:${name ?? cfg.file}`;
    for (const e of valid) {
      if (opts.only !== undefined && e.id !== opts.only) continue;
      // The domain's ranges already taken by other IDs (any state: a claim in progress occupies them too).
      const taken = domid === null ? undefined : overlapping(e, domid, current.regions);
      if (taken) {
        recordError(
          entryError(
            e,
            'range.overlap',
            'begin',
            `${e.id} at ${hex(e.begin)}-${hex(e.end)} overlaps ${taken.region.id} at ${hex(taken.m.begin)}-${hex(taken.m.end)} in d${domid}, as recorded`,
            'give each region of a domain its own guest physical range',
          ),
          e,
        );
        continue;
      }
      all.push({ entry: e, key, domid });
    }
  }

  // Group by ID, keeping the order of first appearance.
  const byId = new Map<string, Claimant[]>();
  for (const c of all) {
    const list = byId.get(c.entry.id) ?? [];
    list.push(c);
    byId.set(c.entry.id, list);
  }

  /** Owner per planned region, as a domain key and a label, and the borrowers' claimants. */
  const planned: Array<{ region: PlanRegion; ownerKey: string; record: R | null; borrowers: Claimant[] }> = [];
  const decisions = new Map<Claimant, EntryDecision<R>>();

  for (const [id, list] of byId) {
    const record = recorded.get(id) ?? null;
    if (record) {
      const p = againstRecord(id, record, list, recordError, decisions);
      if (p) planned.push(p);
      continue;
    }
    const spelling = list[0].entry.spelling;
    const odd = list.find((c) => c.entry.spelling !== spelling);
    if (odd) {
      errors.push(
        entryError(
          odd.entry,
          'id.mixed-spelling',
          'id',
          `ID ${id} is declared with ${odd.entry.spelling} here and with ${spelling} by ${label(list[0].entry)}`,
          'static_shared_mem decides the owner by who applies first and static_shm names it: use one spelling for all entries of an ID',
          list[0].entry,
        ),
      );
      continue;
    }
    let owner: Claimant;
    let borrowers: Claimant[];
    const bells = new Map<Claimant, boolean>();
    if (spelling === 'static_shared_mem') {
      [owner, ...borrowers] = list;
      const mismatched = borrowers.filter((b) => b.entry.size !== owner.entry.size);
      for (const b of mismatched) errors.push(sizeMismatch(b.entry, id, owner.entry.size, label(owner.entry), owner.entry));
      borrowers = borrowers.filter((b) => !mismatched.includes(b));
    } else {
      const owners = list.filter((c) => c.entry.role === 'owner');
      if (owners.length === 0) {
        const e = entryError(
          list[0].entry,
          'owner.missing',
          'role',
          `no config given declares an owner of ${id} (${list.length} borrower${list.length > 1 ? 's' : ''})${current === NO_RECORDS ? '' : ', and nothing is recorded'}`,
          `mark the domain that allocates ${id} with role=owner, and check its config together with the borrowers' (borrower is the default role)`,
        );
        if (current === NO_RECORDS) errors.push(e);
        else recordError(e, list[0].entry);
        continue;
      }
      [owner] = owners;
      for (const o of owners.slice(1)) {
        errors.push(entryError(o.entry, 'owner.multiple', 'role', `${id} already has an owner, ${label(owner.entry)}`, `exactly one domain owns ${id}: make the others role=borrower`, owner.entry));
      }
      borrowers = list.filter((c) => c.entry.role === 'borrower' && !windowOrProt(c.entry, owner.entry.size, owner.entry.prot, label(owner.entry), owner.entry, (e) => errors.push(e)));
    }
    const ownerBell = owner.entry.doorbell === true;
    borrowers = borrowers.filter((b) => {
      const bell = borrowerDoorbell(b.entry, ownerBell, id, label(owner.entry), owner.entry);
      if (bell instanceof ConfigError) return void errors.push(bell), false;
      bells.set(b, bell);
      return true;
    });
    decisions.set(owner, { entry: owner.entry, domid: owner.domid, role: 'owner', region: null, existing: null, doorbell: ownerBell });
    for (const b of borrowers) decisions.set(b, { entry: b.entry, domid: b.domid, role: 'borrower', region: null, existing: null, doorbell: bells.get(b)! });
    planned.push({
      region: { id, spelling, owner: { ...toMapping(owner.entry, ownerBell), cachePolicy: owner.entry.cachePolicy }, borrowers: borrowers.map((b) => toMapping(b.entry, bells.get(b)!)) },
      ownerKey: owner.key,
      record: null,
      borrowers,
    });
  }

  // set_target: one owner per borrowing domain; a recorded target is that domain's owner for good.
  const ownerOf = new Map<string, { ownerKey: string; owner: string; region: PlanRegion | null; first?: Claimant }>();
  for (const [domid, target] of current.targets ?? []) ownerOf.set(recordKey(domid), { ownerKey: recordKey(target), owner: `d${target}`, region: null });
  const listed = new Set<string>();
  for (const p of planned) {
    for (const b of p.borrowers) {
      const d = decisions.get(b)!;
      const seen = ownerOf.get(b.key);
      if (!seen) {
        ownerOf.set(b.key, { ownerKey: p.ownerKey, owner: p.region.owner.domain, region: p.region, first: b });
      } else if (seen.ownerKey !== p.ownerKey) {
        decisions.delete(b);
        if (!seen.first) {
          recordError(
            entryError(
              b.entry,
              'set-target',
              'id',
              `d${b.domid} already has ${seen.owner} as its target (set_target is never undone), so it cannot borrow ${p.region.id} from ${p.region.owner.domain}`,
              SET_TARGET_HINT,
            ),
            b.entry,
          );
        } else {
          const e = entryError(
            b.entry,
            'set-target',
            'id',
            `${label(b.entry)} would borrow ${p.region.id} from ${p.region.owner.domain} and ${seen.region!.id} from ${seen.owner}: a domain can borrow from one owner only`,
            SET_TARGET_HINT,
            seen.first.entry,
            `${label(b.entry)} borrows ${seen.region!.id} from ${seen.owner} here`,
          );
          if (p.record || seen.region!.owner.recorded) recordError(e, b.entry);
          else errors.push(e);
        }
        continue;
      }
      const isRecorded = seen !== undefined && !seen.first;
      d.setTarget = isRecorded ? 'recorded' : 'needed';
      if (listed.has(b.key)) continue;
      listed.add(b.key);
      plan.setTarget.push({ borrower: label(b.entry), owner: p.region.owner.domain, ...(isRecorded ? { recorded: true as const } : {}) });
    }
  }
  plan.regions = planned.map((p) => p.region);

  const order = new Map(read.files.map((f, i) => [f, i]));
  errors.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column);
  const kept = all.filter((c) => decisions.has(c)).map((c) => decisions.get(c)!);
  // Bounded report (docs/config.md, "Bounds"): repeats once, at most ERRORS_PER_FILE per file.
  return { plan, errors: boundErrors(errors), warnings, decisions: kept, againstRecords };
}

/** A recorded mapping of `domid` in another region that overlaps entry `e`. */
function overlapping(e: ShmEntry, domid: number, regions: readonly PeerRegion[]): { region: PeerRegion; m: PeerMapping } | undefined {
  for (const region of regions) {
    if (region.id === e.id) continue;
    const m = region.mappings.find((x) => x.domid === domid);
    if (m && e.begin < m.end && m.begin < e.end) return { region, m };
  }
  return undefined;
}

function sizeMismatch(b: ShmEntry, id: string, ownerSize: bigint, ownerLabel: string, ownerEntry?: ShmEntry): ConfigError {
  return entryError(
    b,
    'size.mismatch',
    b.keys.size ? 'size' : 'end',
    `${id} is ${hex(b.size)} bytes here but ${hex(ownerSize)} in ${ownerLabel}, which owns it`,
    `static_shared_mem maps the whole region: every domain listing ${id} gives the same size (${humanSize(ownerSize)})`,
    ownerEntry,
  );
}

/** A static_shm borrower's window and prot against its owner's region; true when refused. */
function windowOrProt(b: ShmEntry, ownerSize: bigint, ownerProt: ShmProt, ownerLabel: string, ownerEntry: ShmEntry | undefined, report: (e: ConfigError) => void): boolean {
  let bad = false;
  if (b.offset + b.size > ownerSize) {
    bad = true;
    const key: StaticShmKey = b.keys.offset ? 'offset' : b.keys.size ? 'size' : 'end';
    report(
      entryError(
        b,
        'window',
        key,
        `window offset ${hex(b.offset)} + size ${hex(b.size)} = ${hex(b.offset + b.size)} ends past the owner's region of ${hex(ownerSize)} bytes${ownerEntry ? '' : ` (${ownerLabel}, as recorded)`}`,
        `a borrower maps part of the owner's region: keep offset + size <= ${hex(ownerSize)} (${humanSize(ownerSize)})`,
        ownerEntry,
      ),
    );
  }
  if (b.prot === 'rw' && ownerProt === 'r') {
    bad = true;
    report(
      entryError(
        b,
        'prot.above-owner',
        b.keys.prot ? 'prot' : 'id',
        `borrower prot rw is above the owner's prot r${ownerEntry ? '' : ` (${ownerLabel}, as recorded)`}`,
        'a borrower cannot write what the owner shares read-only: use prot=r (rw is the default)',
        ownerEntry,
      ),
    );
  }
  return bad;
}

/**
 * The configs' entries of an ID that is recorded: the recorded owner owns it; each entry is
 * checked against the recorded region (spelling, ownership, size, window, prot).
 */
function againstRecord<R extends PeerRegion>(
  id: string,
  record: R,
  list: Claimant[],
  report: (e: ConfigError, about: ShmEntry) => void,
  decisions: Map<Claimant, EntryDecision<R>>,
): { region: PlanRegion; ownerKey: string; record: R; borrowers: Claimant[] } | null {
  const ownerKey = recordKey(record.owner);
  const ownerLabel = `d${record.owner}`;
  const borrowers: Claimant[] = [];
  const bells = new Map<Claimant, boolean>();
  let spelling: ShmSpelling = record.spelling ?? list[0].entry.spelling;
  for (const c of list) {
    const e = c.entry;
    if (record.spelling !== null && e.spelling !== record.spelling) {
      report(
        entryError(
          e,
          'id.mixed-spelling',
          'id',
          `ID ${id} is declared with ${e.spelling} here and with ${record.spelling} by its owner ${ownerLabel}, as recorded`,
          'static_shared_mem decides the owner by who applies first and static_shm names it: use one spelling for all entries of an ID',
        ),
        e,
      );
      continue;
    }
    spelling = record.spelling ?? e.spelling;
    const existing = c.domid === null ? null : record.mappings.find((m) => m.domid === c.domid) ?? null;
    // Explicit roles stand; static_shared_mem's automatic one: the recorded owner owns it.
    const role: MappingRole = e.role === 'auto' ? (c.key === ownerKey ? 'owner' : 'borrower') : e.role;
    if (role === 'owner') {
      if (c.key !== ownerKey) {
        report(entryError(e, 'owner.multiple', 'role', `${id} is already owned by ${ownerLabel}, as recorded`, `exactly one domain owns ${id}: make ${label(e)} role=borrower`), e);
        continue;
      }
      // What the config asks; the manager refuses a change of a recorded region (its lifecycle).
      decisions.set(c, { entry: e, domid: c.domid, role, region: record, existing, doorbell: e.doorbell === true });
      continue;
    }
    if (e.spelling === 'static_shared_mem') {
      if (e.size !== record.size) {
        report(sizeMismatch(e, id, record.size, `its owner ${ownerLabel}, as recorded`), e);
        continue;
      }
    } else if (windowOrProt(e, record.size, record.prot, ownerLabel, undefined, (x) => report(x, e))) continue;
    const bell = borrowerDoorbell(e, !!record.doorbell, id, ownerLabel);
    if (bell instanceof ConfigError) {
      report(bell, e);
      continue;
    }
    bells.set(c, bell);
    decisions.set(c, { entry: e, domid: c.domid, role, region: record, existing, doorbell: bell });
    borrowers.push(c);
  }
  const region: PlanRegion = { id, spelling, owner: recordedOwner(record), borrowers: borrowers.map((b) => toMapping(b.entry, bells.get(b)!)) };
  return { region, ownerKey, record, borrowers };
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
