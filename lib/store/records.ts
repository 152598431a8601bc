/**
 * Typed reads and writes of the schema (schema.ts). Every function takes XenstoreOps: the
 * manager passes a Transaction for everything it changes; plain reads (ls, polling) may pass
 * the client. Requests of one call are pipelined (Promise.all) and every reply is checked: one
 * failed write rejects the call, and the transaction around it is aborted. Writes of one call
 * go out together too: a daemon handles one connection's requests in order, so a node is still
 * created before its permissions are set and its fields written.
 *
 * The per-domain index (<root>/by-domain, schema.ts) is kept here, by the same calls that write
 * and remove mappings: writeMapping adds the domain's entry, removeMapping and removeRegion
 * remove the entries and the folders they leave empty.
 */
import { XenstoreError, type XenstoreOps } from '../../xenstore-wire';
import { StoreError } from './errors';
import { mapWindowed } from './pipeline';
import {
  CACHE_POLICY_VALUES,
  formatDomid,
  formatHex,
  formatRange,
  MAPPING_STATES,
  MappingRecord,
  MappingRole,
  MappingState,
  MirrorRecord,
  parseDomid,
  parseEnum,
  parseHex,
  parseRange,
  parsePortRecord,
  formatPort,
  PORT_ALLOCATING,
  PortRecord,
  PROT_VALUES,
  REGION_STATES,
  isRegionName,
  RegionRecord,
  RegionState,
  SPELLING_VALUES,
  StorePaths,
} from './schema';

function isEnoent(e: unknown): boolean {
  return e instanceof XenstoreError && e.code === 'ENOENT';
}

const decode = (b: Buffer): string => b.toString('utf8');
const missingAsUndefined = (e: unknown): undefined => {
  if (isEnoent(e)) return undefined;
  throw e;
};

/** The replies of these reads, or null when one of them is ENOENT (any other error rejects). */
function allOrMissing(reads: Array<Promise<Buffer>>): Promise<Buffer[] | null> {
  return Promise.all(reads).catch((e: unknown) => {
    if (isEnoent(e)) return null;
    throw e;
  });
}

/** The node's value, or undefined when it does not exist. */
export function readOptional(ops: XenstoreOps, path: string): Promise<string | undefined> {
  // Not an async function: bulk reads make hundreds of thousands of these, one promise each.
  return ops.read(path).then(decode, missingAsUndefined);
}

/** Children of a node, or [] when it does not exist. */
export async function listOptional(ops: XenstoreOps, path: string): Promise<string[]> {
  try {
    return await ops.directory(path);
  } catch (e) {
    if (isEnoent(e)) return [];
    throw e;
  }
}

/** RM that counts a missing node as removed. */
export async function rmIfExists(ops: XenstoreOps, path: string): Promise<void> {
  try {
    await ops.rm(path);
  } catch (e) {
    if (!isEnoent(e)) throw e;
  }
}

function required(value: string | undefined, path: string): string {
  if (value === undefined) throw new StoreError('ENOENT', path, 'missing from an existing region record');
  return value;
}

/**
 * One mapping record, or null when mappings/<domid> does not exist. The lock is read only when
 * the state says an intent is in progress (mapping, unmapping): the transactions that move a
 * mapping to `mapped` remove its lock, so a committed mapping has none, and reading it would
 * cost a request (an ENOENT) per mapping in every listing.
 */
export async function readMapping(ops: XenstoreOps, paths: StorePaths, id: string, domid: number): Promise<MappingRecord | null> {
  const p = paths.mapping(id, domid);
  const [pOffset, pProt, pState] = [paths.mappingField(id, domid, 'offset'), paths.mappingField(id, domid, 'prot'), paths.mappingField(id, domid, 'state')];
  // The four reads with no handler of their own (a listing of the host makes tens of thousands:
  // one promise and one callback fewer per read); an ENOENT among them, a mapping going away or
  // a broken record, is read again field by field below to tell which.
  const raw = await allOrMissing([ops.read(p), ops.read(pOffset), ops.read(pProt), ops.read(pState)]);
  const [range, offset, prot, state] = raw
    ? raw.map(decode)
    : await Promise.all([readOptional(ops, p), readOptional(ops, pOffset), readOptional(ops, pProt), readOptional(ops, pState)]);
  if (range === undefined) return null;
  const r = parseRange(range, p);
  const st = parseEnum(required(state, pState), MAPPING_STATES, pState);
  const lock = st === 'mapped' ? undefined : await readOptional(ops, paths.mappingField(id, domid, 'lock'));
  return {
    domid,
    begin: r.begin,
    end: r.end,
    offset: parseHex(required(offset, pOffset), pOffset),
    prot: parseEnum(required(prot, pProt), PROT_VALUES, pProt),
    state: st,
    lock: lock === undefined || lock === '' ? null : lock,
  };
}

/** The fields every region has; `spelling` and `doorbell` are optional (read when listed). */
const REGION_FIELDS = ['owner', 'begin', 'size', 'prot', 'cache_policy', 'state'] as const;

/** The region record, or null when <root>/<ID> does not exist. */
export async function readRegion(ops: XenstoreOps, paths: StorePaths, id: string): Promise<RegionRecord | null> {
  // One burst: the region's listing, its six fields and the mappings' listing. The listing says
  // whether the optional fields exist, so they are read only then, beside the mappings in the
  // second burst: most regions have neither, and an ENOENT costs the daemon and the client more
  // than a reply (every listing of the host made two per region).
  const at = REGION_FIELDS.map((name) => paths.field(id, name));
  const [listed, raw, children] = await Promise.all([listOptional(ops, paths.region(id)), allOrMissing(at.map((p) => ops.read(p))), listOptional(ops, paths.mappings(id))]);
  // A field missing: no region (nothing listed), or one to read again field by field.
  if (raw === null && listed.length === 0) return null;
  const values = raw ? raw.map(decode) : await Promise.all(at.map((p) => readOptional(ops, p)));
  const [owner, begin, size, prot, cache, state] = values;
  if (owner === undefined && state === undefined && begin === undefined) {
    // Nothing of the region: absent (a bare node left by hand counts as absent too).
    return null;
  }
  const pSpelling = paths.field(id, 'spelling');
  const pDoorbell = paths.field(id, 'doorbell');
  const domids = children.map((c) => parseDomid(c, `${paths.mappings(id)}/${c}`)).sort((a, b) => a - b);
  // Ports are listed only for a region with a doorbell (the others pay nothing for them).
  const withDoorbell = listed.includes('doorbell');
  const [mappings, spelling, doorbell, ports] = await Promise.all([
    Promise.all(domids.map((d) => readMapping(ops, paths, id, d))).then((ms) => ms.filter((m): m is MappingRecord => m !== null)),
    listed.includes('spelling') ? readOptional(ops, pSpelling) : undefined,
    withDoorbell ? readOptional(ops, pDoorbell) : undefined,
    withDoorbell ? readPorts(ops, paths, id) : [],
  ]);
  if (doorbell !== undefined && doorbell !== 'yes') throw new StoreError('EINVAL', pDoorbell, `${JSON.stringify(doorbell)} is not yes`);
  return {
    id,
    owner: parseDomid(required(owner, at[0]), at[0]),
    begin: parseHex(required(begin, at[1]), at[1]),
    size: parseHex(required(size, at[2]), at[2]),
    prot: parseEnum(required(prot, at[3]), PROT_VALUES, at[3]),
    cachePolicy: parseEnum(required(cache, at[4]), CACHE_POLICY_VALUES, at[4]),
    state: parseEnum(required(state, at[5]), REGION_STATES, at[5]),
    spelling: spelling === undefined ? null : parseEnum(spelling, SPELLING_VALUES, pSpelling),
    mappings,
    doorbell: doorbell === 'yes',
    ports: doorbell === 'yes' ? ports : [],
  };
}

/** <root>/<ID>/ports: the owner's port (or the intent to allocate one) per borrower, sorted. */
export async function readPorts(ops: XenstoreOps, paths: StorePaths, id: string): Promise<PortRecord[]> {
  const names = await listOptional(ops, paths.ports(id));
  const borrowers = names.map((c) => parseDomid(c, paths.port(id, Number(c)))).sort((a, b) => a - b);
  const values = await Promise.all(borrowers.map((b) => readOptional(ops, paths.port(id, b))));
  const out: PortRecord[] = [];
  borrowers.forEach((b, i) => {
    const v = values[i];
    if (v !== undefined) out.push({ borrower: b, port: parsePortRecord(v, paths.port(id, b)) });
  });
  return out;
}

/** The recorded port of one borrower, or undefined. */
export function portOf(region: Pick<RegionRecord, 'ports'>, borrower: number): PortRecord['port'] | undefined {
  return region.ports?.find((p) => p.borrower === borrower)?.port;
}

/** Records a borrower's port, or the intent to allocate it (the claim). */
export async function writePort(tx: XenstoreOps, paths: StorePaths, id: string, borrower: number, port: PortRecord['port']): Promise<void> {
  await tx.write(paths.port(id, borrower), port === PORT_ALLOCATING ? PORT_ALLOCATING : formatPort(port));
}

/** Removes a borrower's port record (an intent that allocated nothing), and `ports` once empty. */
export async function removePort(tx: XenstoreOps, paths: StorePaths, id: string, borrower: number): Promise<void> {
  const [, left] = await Promise.all([rmIfExists(tx, paths.port(id, borrower)), listOptional(tx, paths.ports(id))]);
  if (left.length === 0) await rmIfExists(tx, paths.ports(id));
}

/**
 * Adds or removes one borrower's port in the owner's mirror (doorbells/<borrower>), when the
 * owner's mirror of the region exists (an orphaned region's owner has none).
 */
export async function writeOwnerDoorbell(tx: XenstoreOps, paths: StorePaths, owner: number, id: string, borrower: number, port: number | null): Promise<void> {
  if (!(await tx.exists(paths.mirrorDoorbells(owner, id)))) return;
  if (port === null) await rmIfExists(tx, paths.mirrorDoorbell(owner, id, borrower));
  else await tx.write(paths.mirrorDoorbell(owner, id, borrower), formatPort(port));
}

/** The regions of these IDs (null where none), read a window at a time, pipelined. */
export function readRegions(ops: XenstoreOps, paths: StorePaths, ids: readonly string[]): Promise<Array<RegionRecord | null>> {
  return mapWindowed(ids, (id) => readRegion(ops, paths, id));
}

/** The IDs under the root (the index node left out), sorted. */
export async function listRegionIds(ops: XenstoreOps, paths: StorePaths): Promise<string[]> {
  return (await listOptional(ops, paths.root)).filter(isRegionName).sort();
}

/** Every region under the root, sorted by ID. */
export async function readAllRegions(ops: XenstoreOps, paths: StorePaths): Promise<RegionRecord[]> {
  const regions = await readRegions(ops, paths, await listRegionIds(ops, paths));
  return regions.filter((r): r is RegionRecord => r !== null);
}

/** The owner this tool made `domid`'s set_target point to, or null. */
export async function readTarget(ops: XenstoreOps, paths: StorePaths, domid: number): Promise<number | null> {
  const v = await readOptional(ops, paths.target(domid));
  return v === undefined ? null : parseDomid(v, paths.target(domid));
}

// ---- writes (inside transactions) --------------------------------------------------------------

/** Creates <root>/<ID> (dom0 only) with its fields. The mappings come separately. */
export async function writeRegion(tx: XenstoreOps, paths: StorePaths, r: Omit<RegionRecord, 'mappings'>): Promise<void> {
  const dir = paths.region(r.id);
  // Perms first, so that the fields created below inherit n0 from their parent (one burst: the
  // daemon handles the requests in order).
  const writes: Promise<void>[] = [
    tx.mkdir(dir),
    tx.setPerms(dir, ['n0']),
    tx.write(paths.field(r.id, 'owner'), formatDomid(r.owner)),
    tx.write(paths.field(r.id, 'begin'), formatHex(r.begin)),
    tx.write(paths.field(r.id, 'size'), formatHex(r.size)),
    tx.write(paths.field(r.id, 'prot'), r.prot),
    tx.write(paths.field(r.id, 'cache_policy'), r.cachePolicy),
    tx.write(paths.field(r.id, 'state'), r.state),
  ];
  if (r.spelling) writes.push(tx.write(paths.field(r.id, 'spelling'), r.spelling));
  if (r.doorbell) writes.push(tx.write(paths.field(r.id, 'doorbell'), 'yes'));
  await Promise.all(writes);
}

export async function writeRegionState(tx: XenstoreOps, paths: StorePaths, id: string, state: RegionState): Promise<void> {
  await tx.write(paths.field(id, 'state'), state);
}

/**
 * Removes <root>/<ID> and its index entries (its owner's and every mapping's, the region as read
 * in the same transaction), with the index folders they leave empty.
 */
export async function removeRegion(tx: XenstoreOps, paths: StorePaths, region: Pick<RegionRecord, 'id' | 'owner' | 'mappings' | 'ports'>): Promise<void> {
  const domids = [...new Set([region.owner, ...region.mappings.map((m) => m.domid)])];
  // Its ports outlive it (dom0 cannot close them): recorded under kept-ports until the owner dies.
  const kept = (region.ports ?? []).filter((p): p is { borrower: number; port: number } => p.port !== PORT_ALLOCATING);
  await Promise.all([
    rmIfExists(tx, paths.region(region.id)),
    ...domids.map((d) => rmIfExists(tx, paths.indexEntry(d, region.id))),
    ...kept.map((p) => writeKeptPort(tx, paths, region.owner, p.port, p.borrower)),
  ]);
  await pruneIndex(tx, paths, domids);
}

/** Records a port of a removed region: <root>/kept-ports/<owner>/<port> = "<borrower>" (dom0 only). */
export async function writeKeptPort(tx: XenstoreOps, paths: StorePaths, owner: number, port: number, borrower: number): Promise<void> {
  // dom0's only, like the regions: the folders made by the write inherit n0 (one burst, in order).
  await Promise.all([tx.mkdir(paths.keptPorts()), tx.setPerms(paths.keptPorts(), ['n0']), tx.write(paths.keptPorts(owner, port), formatDomid(borrower))]);
}

/** The ports kept for `owner` (regions gone), sorted. */
export async function readKeptPorts(ops: XenstoreOps, paths: StorePaths, owner: number): Promise<Array<{ port: number; borrower: number }>> {
  const names = await listOptional(ops, paths.keptPorts(owner));
  const ports = names.map((n) => parsePortRecord(n, paths.keptPorts(owner, Number(n)))).filter((p): p is number => p !== PORT_ALLOCATING).sort((a, b) => a - b);
  const values = await Promise.all(ports.map((p) => readOptional(ops, paths.keptPorts(owner, p))));
  const out: Array<{ port: number; borrower: number }> = [];
  ports.forEach((port, i) => {
    const v = values[i];
    if (v !== undefined) out.push({ port, borrower: parseDomid(v, paths.keptPorts(owner, port)) });
  });
  return out;
}

/** The owners with kept ports. */
export async function listKeptPortOwners(ops: XenstoreOps, paths: StorePaths): Promise<number[]> {
  return (await listOptional(ops, paths.keptPorts())).map((n) => parseDomid(n, `${paths.keptPorts()}/${n}`)).sort((a, b) => a - b);
}

/** Removes kept ports of `owner` (all of them when `ports` is not given), and the folders left empty. */
export async function removeKeptPorts(tx: XenstoreOps, paths: StorePaths, owner: number, ports?: readonly number[]): Promise<void> {
  if (ports === undefined) await rmIfExists(tx, paths.keptPorts(owner));
  else {
    const [, left] = await Promise.all([Promise.all(ports.map((p) => rmIfExists(tx, paths.keptPorts(owner, p)))), listOptional(tx, paths.keptPorts(owner))]);
    if (left.length > 0) return;
    await rmIfExists(tx, paths.keptPorts(owner));
  }
  if ((await listOptional(tx, paths.keptPorts())).length === 0) await rmIfExists(tx, paths.keptPorts());
}

/** Makes <root>/by-domain/<domid>, dom0's only like the regions (the entries inherit it). */
export async function writeIndexDir(tx: XenstoreOps, paths: StorePaths, domid: number): Promise<void> {
  await Promise.all([tx.mkdir(paths.domainIndex(domid)), tx.setPerms(paths.domainIndex(domid), ['n0'])]);
}

/**
 * Writes a mapping and its index entry. `indexDirExists`: the caller read that
 * <root>/by-domain/<domid> exists in this transaction, or made it (writeIndexDir); otherwise the
 * folder is made here.
 */
export async function writeMapping(tx: XenstoreOps, paths: StorePaths, id: string, m: MappingRecord, indexDirExists = false): Promise<void> {
  const range = formatRange(m.begin, m.end);
  const writes = [tx.write(paths.mapping(id, m.domid), range)];
  if (!indexDirExists) writes.push(writeIndexDir(tx, paths, m.domid));
  writes.push(
    tx.write(paths.indexEntry(m.domid, id), range),
    tx.write(paths.mappingField(id, m.domid, 'offset'), formatHex(m.offset)),
    tx.write(paths.mappingField(id, m.domid, 'prot'), m.prot),
    tx.write(paths.mappingField(id, m.domid, 'state'), m.state),
  );
  if (m.lock !== null) writes.push(tx.write(paths.mappingField(id, m.domid, 'lock'), m.lock));
  await Promise.all(writes);
}

/** Moves a mapping to `state`, holding `lock` (null: the intent is over, the lock goes). */
export async function writeMappingState(tx: XenstoreOps, paths: StorePaths, id: string, domid: number, state: MappingState, lock: string | null): Promise<void> {
  await Promise.all([
    tx.write(paths.mappingField(id, domid, 'state'), state),
    lock === null ? rmIfExists(tx, paths.mappingField(id, domid, 'lock')) : tx.write(paths.mappingField(id, domid, 'lock'), lock),
  ]);
}

/**
 * Removes a mapping and its index entry (and the index folders left empty). The owner's entry
 * stays while the region does (orphaned): `release --force` of the owner finds it there.
 */
export async function removeMapping(tx: XenstoreOps, paths: StorePaths, region: Pick<RegionRecord, 'id' | 'owner'>, domid: number): Promise<void> {
  if (domid === region.owner) {
    await rmIfExists(tx, paths.mapping(region.id, domid));
    return;
  }
  await Promise.all([rmIfExists(tx, paths.mapping(region.id, domid)), rmIfExists(tx, paths.indexEntry(domid, region.id))]);
  await pruneIndex(tx, paths, [domid]);
}

/**
 * Removes the index folders of these domains that hold no entry any more, then the index itself
 * once no domain is left in it (so that nothing stays under the root when every region is gone).
 * Only a domain's last entry makes this read <root>/by-domain.
 */
export async function pruneIndex(tx: XenstoreOps, paths: StorePaths, domids: readonly number[]): Promise<void> {
  const unique = [...new Set(domids)];
  const left = await Promise.all(unique.map((d) => tx.directory(paths.domainIndex(d)).catch((e) => (isEnoent(e) ? null : Promise.reject(e)))));
  const empty = unique.filter((_, i) => left[i]?.length === 0);
  if (empty.length === 0) return;
  const [, rest] = await Promise.all([Promise.all(empty.map((d) => tx.rm(paths.domainIndex(d)))), tx.directory(paths.index())]);
  if (rest.length === 0) await tx.rm(paths.index());
}

/**
 * Writes the guest mirror /local/domain/<domid>/shared_mem/<ID>, readable by that domain only
 * (n0 r<domid>). The fields inherit the node's permissions when they are created.
 */
export async function writeMirror(tx: XenstoreOps, paths: StorePaths, domid: number, id: string, m: MirrorRecord): Promise<void> {
  const perms = ['n0', `r${domid}`];
  const dir = paths.mirrorDir(domid);
  const writes: Promise<void>[] = [];
  if (!(await tx.exists(dir))) writes.push(tx.mkdir(dir), tx.setPerms(dir, perms));
  const node = paths.mirror(domid, id);
  await Promise.all([
    ...writes,
    tx.mkdir(node),
    tx.setPerms(node, perms),
    tx.write(`${node}/role`, m.role),
    tx.write(`${node}/begin`, formatHex(m.begin)),
    tx.write(`${node}/size`, formatHex(m.size)),
    tx.write(`${node}/offset`, formatHex(m.offset)),
    tx.write(`${node}/prot`, m.prot),
    ...(m.owner !== undefined && m.doorbell !== undefined ? [tx.write(`${node}/owner`, formatDomid(m.owner)), tx.write(`${node}/doorbell`, formatPort(m.doorbell))] : []),
    ...(m.doorbells ? [tx.mkdir(`${node}/doorbells`), ...m.doorbells.map((b) => tx.write(`${node}/doorbells/${b.borrower}`, formatPort(b.port)))] : []),
  ]);
}

/** Removes the mirror, and the domain's shared_mem folder once it is empty. */
export async function removeMirror(tx: XenstoreOps, paths: StorePaths, domid: number, id: string): Promise<void> {
  const dir = paths.mirrorDir(domid);
  // The listing goes out after the RM, so it sees the mirror gone.
  const [, left] = await Promise.all([rmIfExists(tx, paths.mirror(domid, id)), tx.directory(dir).catch((e) => (isEnoent(e) ? null : Promise.reject(e)))]);
  if (left !== null && left.length === 0) await tx.rm(dir);
}

/** Records the set_target made for `domid` (the domain may read it, not change it). */
export async function writeTarget(tx: XenstoreOps, paths: StorePaths, domid: number, owner: number): Promise<void> {
  const p = paths.target(domid);
  await tx.write(p, formatDomid(owner));
  await tx.setPerms(p, ['n0', `r${domid}`]);
}

/**
 * The mirror of a mapping. The doorbell keys come from the region's port records: an owner's
 * region with a doorbell lists the ports of its borrowers that are mapped; a borrower with a
 * recorded port gets the owner's domid and the port.
 */
export function mirrorOf(region: RegionRecord, m: MappingRecord): MirrorRecord {
  const role: MappingRole = m.domid === region.owner ? 'owner' : 'borrower';
  const out: MirrorRecord = { role, begin: m.begin, size: m.end - m.begin, offset: m.offset, prot: m.prot };
  if (!region.doorbell) return out;
  if (role === 'owner') {
    const mapped = new Set(region.mappings.filter((x) => x.domid !== region.owner && x.state === 'mapped').map((x) => x.domid));
    out.doorbells = (region.ports ?? []).filter((p): p is { borrower: number; port: number } => p.port !== PORT_ALLOCATING && mapped.has(p.borrower));
    return out;
  }
  const port = portOf(region, m.domid);
  if (typeof port === 'number') {
    out.owner = region.owner;
    out.doorbell = port;
  }
  return out;
}
