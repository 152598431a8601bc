/**
 * The two spellings of static shared memory in an xl config, parsed into one normalised
 * ShmEntry each:
 *
 *   static_shm = [ "id=ID1, begin=0x40000000, end=0x40100000, role=owner, prot=rw,
 *                   cache_policy=ARM_normal", "id=ID2, begin=..., size=1M, offset=0x1000" ]
 *      (the 2017 libxl series: role owner|borrower, master|slave accepted, borrower default)
 *   static_shared_mem = [ "0x40000000-0x40100000 = ID1", "0x40100000+1M = ID2" ]
 *      (the original proposal: END exclusive, role decided by who applies first)
 *
 * Only the text of each entry is checked here (keys, numbers, enumerated values). Rules on
 * values (alignment, ranges, IDs) are in validate.ts so that one entry can break several.
 */
import { ConfigError, ConfigLocation } from './errors';
import { didYouMean } from './did-you-mean';
import { ERRORS_PER_ENTRY, tooManyErrors } from './errors';
import { parseEntryNumber } from './numbers';
import { XlConfig, XlString, XlValue } from './xl-reader';
import { CACHE_POLICIES, PROTS, ROLE_ALIASES, SPELLINGS, type CachePolicy, type MappingRole, type ShmProt, type ShmSpelling } from '../vocabulary';

export type { CachePolicy, ShmProt, ShmSpelling } from '../vocabulary';
export { CACHE_POLICIES, PROTS } from '../vocabulary';
/** As written: 'auto' for static_shared_mem (the first domain to apply an ID owns it). */
export type ShmRole = MappingRole | 'auto';

/** Keys of a static_shm entry. */
export const STATIC_SHM_KEYS = ['id', 'begin', 'end', 'size', 'offset', 'role', 'prot', 'cache_policy', 'doorbell'] as const;
export type StaticShmKey = (typeof STATIC_SHM_KEYS)[number];

export const ROLES = ROLE_ALIASES;

/** Values of `doorbell=` (docs/doorbells.md): an event channel with the region, or none. */
export const DOORBELL_VALUES = ['yes', 'no'] as const;

/** One shared memory region as one domain declares it. Numbers are bigint, END exclusive. */
export interface ShmEntry {
  id: string;
  role: ShmRole;
  begin: bigint;
  /** begin + size; may exceed 64 bits in an invalid entry (validate.ts reports it). */
  end: bigint;
  size: bigint;
  /** Offset into the owner's region; 0 unless a borrower says otherwise. */
  offset: bigint;
  prot: ShmProt;
  /** null: not given, the host's default applies (ARM_normal on Arm). */
  cachePolicy: CachePolicy | null;
  spelling: ShmSpelling;
  /**
   * `doorbell=yes|no` as written (static_shm), or set for every entry by `apply --doorbell`;
   * null when not said: an owner's region then has none, a borrower follows its owner.
   */
  doorbell: boolean | null;
  /** The `name =` of the config, or null when it has none. */
  domain: string | null;
  file: string;
  /** The entry string in the file (its opening quote). */
  location: ConfigLocation;
  /** The entry text, dequoted. */
  text: string;
  /** Position of the entry in its list. */
  index: number;
  /** Where each key written in the entry is; for static_shared_mem: begin, end or size, id. */
  keys: Partial<Record<StaticShmKey, ConfigLocation>>;
}

export interface EntriesResult {
  entries: ShmEntry[];
  errors: ConfigError[];
}

/** The domain name of a config (`name = "..."`), or an error. */
export function domainName(cfg: XlConfig): { name: string | null; error?: ConfigError } {
  const st = cfg.settings.get('name');
  if (!st) {
    return {
      name: null,
      error: new ConfigError({
        rule: 'domain.name',
        location: { file: cfg.file, line: 1, column: 1 },
        reason: 'the config has no `name =`',
        hint: 'add name = "vm1": xl needs it and xen-sshm names domains by it',
      }),
    };
  }
  if (st.value.type !== 'string' || st.value.value === '') {
    return {
      name: null,
      error: new ConfigError({
        rule: 'domain.name',
        location: st.value.location,
        reason: st.value.type === 'list' ? '`name` is a list' : '`name` is empty',
        hint: 'write name = "vm1"',
      }),
    };
  }
  return { name: st.value.value };
}

/**
 * Every static_shm and static_shared_mem entry of a config, normalised, plus the errors of the
 * entries that could not be read (those entries are left out of `entries`).
 */
export function parseSharedMemEntries(cfg: XlConfig): EntriesResult {
  const out: EntriesResult = { entries: [], errors: [] };
  const domain = domainName(cfg).name;
  for (const spelling of SPELLINGS) {
    const st = cfg.settings.get(spelling);
    if (!st) continue;
    const items = listItems(st.value, spelling, domain, out.errors);
    items.forEach((item, index) => {
      const r = spelling === 'static_shm' ? parseStaticShm(item, cfg.file, domain, index) : parseStaticSharedMem(item, cfg.file, domain, index);
      if (r instanceof Array) out.errors.push(...r);
      else out.entries.push(r);
    });
  }
  return out;
}

function listItems(value: XlValue, spelling: ShmSpelling, domain: string | null, errors: ConfigError[]): XlString[] {
  const example = spelling === 'static_shm' ? '[ "id=ID1, begin=0x40000000, size=1M, role=owner" ]' : '[ "0x40000000-0x40100000 = ID1" ]';
  if (value.type === 'string') {
    errors.push(
      new ConfigError({
        rule: 'shm.not-list',
        location: value.location,
        reason: `${spelling} is a single value, not a list`,
        hint: `put the entries in brackets: ${spelling} = ${example}`,
        entry: value.value,
        domain: domain ?? undefined,
      }),
    );
    return [];
  }
  const items: XlString[] = [];
  for (const item of value.items) {
    if (item.type === 'string') items.push(item);
    else
      errors.push(
        new ConfigError({
          rule: 'shm.not-string',
          location: item.location,
          reason: `${spelling} holds a nested list`,
          hint: `each entry is one quoted string: ${spelling} = ${example}`,
          domain: domain ?? undefined,
        }),
      );
  }
  return items;
}

interface Part {
  key: string;
  value: string;
  /** Index in the entry text of the key and of the value. */
  keyAt: number;
  valueAt: number;
}

/** Trimmed substring with its start index. */
function trimAt(s: string, from: number, to: number): { text: string; at: number } {
  while (from < to && /\s/.test(s[from])) from++;
  while (to > from && /\s/.test(s[to - 1])) to--;
  return { text: s.slice(from, to), at: from };
}

function parseStaticShm(item: XlString, file: string, domain: string | null, index: number): ShmEntry | ConfigError[] {
  const text = item.value;
  const errors: ConfigError[] = [];
  const err = (rule: ConstructorParameters<typeof ConfigError>[0]['rule'], at: number, reason: string, hint?: string) =>
    errors.push(new ConfigError({ rule, location: item.locate(at), reason, hint, entry: text, domain: domain ?? undefined }));
  // Bound (docs/config.md, "Bounds"): an entry's items are read until ERRORS_PER_ENTRY errors.
  const full = (): boolean => {
    if (errors.length < ERRORS_PER_ENTRY) return false;
    if (errors.length === ERRORS_PER_ENTRY) errors.push(tooManyErrors(item, text));
    return true;
  };

  // Split on commas; a trailing comma is allowed ("[<key>=<value>,]*" in the 2017 syntax).
  const parts: Part[] = [];
  // Keys an unknown key probably meant: not reported again as missing.
  const meant = new Set<string>();
  const seen = new Map<string, number>();
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text[i] !== ',') continue;
    if (full()) break;
    const seg = trimAt(text, start, i);
    const last = i === text.length;
    start = i + 1;
    if (seg.text === '') {
      if (last && parts.length > 0) break;
      err('entry.syntax', seg.at, last ? 'the entry is empty' : 'empty item between commas', 'write key=value items separated by commas: "id=ID1, begin=0x40000000, size=1M"');
      continue;
    }
    const eq = text.indexOf('=', seg.at);
    if (eq < 0 || eq >= seg.at + seg.text.length) {
      err('entry.syntax', seg.at, `${JSON.stringify(seg.text)} is not key=value`, 'write key=value items separated by commas');
      continue;
    }
    const k = trimAt(text, seg.at, eq);
    const v = trimAt(text, eq + 1, seg.at + seg.text.length);
    if (!(STATIC_SHM_KEYS as readonly string[]).includes(k.text)) {
      const guess = didYouMean(k.text, STATIC_SHM_KEYS);
      if (guess) meant.add(guess);
      err('entry.unknown-key', k.at, `unknown key ${JSON.stringify(k.text)}`, (guess ? `did you mean ${guess}? ` : '') + `keys: ${STATIC_SHM_KEYS.join(', ')}`);
      continue;
    }
    if (seen.has(k.text)) {
      err('entry.repeated-key', k.at, `${k.text} is given twice in this entry`, 'give each key at most once per entry');
      continue;
    }
    seen.set(k.text, parts.length);
    parts.push({ key: k.text, value: v.text, keyAt: k.at, valueAt: v.at });
  }

  const part = (k: StaticShmKey) => parts.find((p) => p.key === k);
  const keys: Partial<Record<StaticShmKey, ConfigLocation>> = {};
  for (const p of parts) keys[p.key as StaticShmKey] = item.locate(p.keyAt);

  const num = (k: 'begin' | 'end' | 'size' | 'offset'): bigint | undefined => {
    const p = part(k);
    if (!p) return undefined;
    const r = parseEntryNumber(p.value, k, k === 'size' || k === 'offset');
    if (r.ok) return r.value;
    err(r.rule, p.valueAt, r.reason, r.hint);
    return undefined;
  };

  const id = part('id');
  // A malformed item may well be the missing key ("id ID1"): report it alone.
  const malformed = errors.some((e) => e.rule === 'entry.syntax');
  const missing = (k: StaticShmKey) => !part(k) && !meant.has(k) && !malformed;
  if (missing('id')) err('entry.missing-key', 0, 'the entry has no id=', 'every entry needs id=NAME (letters, digits, _)');
  if (missing('begin')) err('entry.missing-key', 0, 'the entry has no begin=', 'give the guest physical address: begin=0x40000000');
  const endP = part('end');
  const sizeP = part('size');
  if (missing('end') && missing('size')) err('entry.missing-key', 0, 'the entry has neither end= nor size=', 'give end= (exclusive) or size=, e.g. size=1M');
  if (endP && sizeP) err('entry.end-and-size', sizeP.keyAt, 'the entry gives both end= and size=', 'keep one of them: end= is begin + size');

  const begin = num('begin');
  const end = num('end');
  const size = num('size');
  const offset = num('offset');

  let role: ShmRole = 'borrower';
  const roleP = part('role');
  if (roleP) {
    // Own keys only: "constructor" or "toString" are not roles.
    const r = Object.prototype.hasOwnProperty.call(ROLES, roleP.value) ? ROLES[roleP.value] : undefined;
    if (r) role = r;
    else {
      const guess = didYouMean(roleP.value, Object.keys(ROLES));
      err('entry.role', roleP.valueAt, `role ${JSON.stringify(roleP.value)} is not a role`, (guess ? `did you mean ${guess}? ` : '') + 'role is owner or borrower (master and slave are accepted too)');
    }
  }
  let prot: ShmProt = 'rw';
  const protP = part('prot');
  if (protP) {
    if ((PROTS as readonly string[]).includes(protP.value)) prot = protP.value as ShmProt;
    else err('entry.prot', protP.valueAt, `prot ${JSON.stringify(protP.value)} is not a protection`, 'prot is r (read-only) or rw (default)');
  }
  let cachePolicy: CachePolicy | null = null;
  const cacheP = part('cache_policy');
  if (cacheP) {
    if ((CACHE_POLICIES as readonly string[]).includes(cacheP.value)) cachePolicy = cacheP.value as CachePolicy;
    else {
      const guess = didYouMean(cacheP.value, CACHE_POLICIES);
      err('entry.cache-policy', cacheP.valueAt, `cache_policy ${JSON.stringify(cacheP.value)} is not a cache policy`, (guess ? `did you mean ${guess}? ` : '') + `cache_policy is ${CACHE_POLICIES.join(' or ')}`);
    }
  }

  let doorbell: boolean | null = null;
  const bellP = part('doorbell');
  if (bellP) {
    if ((DOORBELL_VALUES as readonly string[]).includes(bellP.value)) doorbell = bellP.value === 'yes';
    else {
      const guess = didYouMean(bellP.value, DOORBELL_VALUES);
      err('entry.doorbell', bellP.valueAt, `doorbell ${JSON.stringify(bellP.value)} is not yes or no`, (guess ? `did you mean ${guess}? ` : '') + 'doorbell is yes (an event channel with the region) or no');
    }
  }

  if (errors.length > 0 || !id || begin === undefined || (end === undefined && size === undefined)) return errors;
  const theSize = size ?? (end as bigint) - begin;
  return {
    id: id.value,
    role,
    begin,
    end: end ?? begin + theSize,
    size: theSize,
    offset: offset ?? 0n,
    prot,
    cachePolicy,
    spelling: 'static_shm',
    doorbell,
    domain,
    file,
    location: item.location,
    text,
    index,
    keys,
  };
}

function parseStaticSharedMem(item: XlString, file: string, domain: string | null, index: number): ShmEntry | ConfigError[] {
  const text = item.value;
  const errors: ConfigError[] = [];
  const err = (rule: ConstructorParameters<typeof ConfigError>[0]['rule'], at: number, reason: string, hint?: string) =>
    errors.push(new ConfigError({ rule, location: item.locate(at), reason, hint, entry: text, domain: domain ?? undefined }));
  const form = 'write "BEGIN-END = ID" (END exclusive) or "BEGIN+SIZE = ID", e.g. "0x40000000+1M = ID1"';

  const eq = text.indexOf('=');
  const lead = trimAt(text, 0, text.length).at;
  if (eq < 0) {
    err('entry.syntax', lead, 'the entry has no "= ID"', form);
    return errors;
  }
  const left = trimAt(text, 0, eq);
  const idPart = trimAt(text, eq + 1, text.length);
  let opAt = -1;
  for (let i = left.at; i < left.at + left.text.length; i++) {
    if (text[i] === '-' || text[i] === '+') {
      opAt = i;
      break;
    }
  }
  if (opAt < 0) {
    err('entry.syntax', left.at, `${JSON.stringify(left.text)} is not a range`, form);
    return errors;
  }
  if (idPart.text === '') err('entry.syntax', eq, 'the entry has no ID after "="', form);
  const bText = trimAt(text, left.at, opAt);
  const eText = trimAt(text, opAt + 1, left.at + left.text.length);
  const isSize = text[opAt] === '+';
  const b = parseEntryNumber(bText.text, 'begin', false);
  if (!b.ok) err(b.rule, bText.at, b.reason, b.hint);
  const e = parseEntryNumber(eText.text, isSize ? 'size' : 'end', isSize);
  if (!e.ok) err(e.rule, eText.at, e.reason, e.hint);
  if (errors.length > 0 || !b.ok || !e.ok) return errors;
  const size = isSize ? e.value : e.value - b.value;
  const keys: Partial<Record<StaticShmKey, ConfigLocation>> = {
    begin: item.locate(bText.at),
    [isSize ? 'size' : 'end']: item.locate(eText.at),
    id: item.locate(idPart.at),
  };
  return {
    id: idPart.text,
    role: 'auto',
    begin: b.value,
    end: b.value + size,
    size,
    offset: 0n,
    prot: 'rw',
    cachePolicy: null,
    spelling: 'static_shared_mem',
    doorbell: null,
    domain,
    file,
    location: item.location,
    text,
    index,
    keys,
  };
}
