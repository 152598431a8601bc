/**
 * `--persist FILE`: the tree (global nodes, generation count, special-watch permissions)
 * kept durably across daemon lifetimes, as a snapshot plus a write-ahead log.
 *
 * - FILE is a JSON snapshot, replaced only by renaming a complete, fsync'ed temporary file
 *   (`FILE.tmp-<pid>`) over it, then fsync'ing the folder: a crash leaves the old or the new.
 * - FILE.log holds one JSON line per flush that changed the tree, appended and fdatasync'ed
 *   *before* the replies of that flush are handed out (XenstoredCore's journal hook): every
 *   acknowledged change is on disk. Records hold absolute values, so replaying one twice is
 *   harmless; a last line cut short by a crash was never acknowledged and is ignored.
 * - On load: the snapshot, then the log replayed, then both folded into a new snapshot and
 *   the log emptied (also when the log grows past COMPACT_BYTES, and at close).
 * - Temporary files left by processes that no longer exist are removed on load.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { TreeChange, XenstoredCore } from './core';
import type { StoredNode, XsPerm } from './model';
import { XenstoredServerError } from './errors';

const FORMAT = 'xen-sshm-xenstored-tree';
const VERSION = 1;
/** Fold the log into the snapshot once it is this long. */
const COMPACT_BYTES = 4 * 1024 * 1024;

interface PersistedNode {
  generation: number;
  perms: XsPerm[];
  /** base64 of the value bytes */
  data: string;
  children: string[];
}

interface PersistedTree {
  format: typeof FORMAT;
  version: number;
  generation: number;
  nodes: Record<string, PersistedNode>;
  specialPerms: Record<string, XsPerm[]>;
}

/** One log line: the generation after the flush, records written (null: deleted), special perms. */
interface LogRecord {
  g: number;
  n: Record<string, PersistedNode | null>;
  p?: Record<string, XsPerm[]>;
}

const encodeNode = (n: StoredNode): PersistedNode => ({ generation: n.generation, perms: n.perms.map((p) => ({ ...p })), data: n.data.toString('base64'), children: [...n.children] });
const decodeNode = (n: PersistedNode): StoredNode => ({ generation: n.generation, perms: n.perms, data: Buffer.from(n.data, 'base64'), children: n.children });
const specialRecord = (perms: Iterable<[string, readonly XsPerm[]]>) => Object.fromEntries([...perms].map(([k, v]) => [k, v.map((p) => ({ ...p }))]));

function persistError(e: unknown, what: string, file: string): XenstoredServerError {
  const err = e as NodeJS.ErrnoException;
  return new XenstoredServerError('persist', err.code ?? 'EIO', `${what} ${file}: ${err.message}`, file);
}

/** Is a process with this pid alive (signal 0: EPERM still means it exists)? */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `FILE.tmp-<pid>` files whose process is gone; returns their names. */
export function removeStaleTemporaries(file: string): string[] {
  const dir = dirname(file);
  const prefix = `${basename(file)}.tmp-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && pidAlive(pid))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** fsync a folder, so a rename or a new file in it survives a crash. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write the snapshot: a complete temporary file, fsync'ed, renamed over FILE, folder fsync'ed. */
export function saveTree(core: XenstoredCore, file: string): void {
  const snap = core.snapshot();
  const nodes: Record<string, PersistedNode> = {};
  for (const [name, n] of snap.nodes) nodes[name] = encodeNode(n);
  const tree: PersistedTree = { format: FORMAT, version: VERSION, generation: snap.generation, nodes, specialPerms: specialRecord(core.specialPerms) };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(tree));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    fsyncDir(dirname(file));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw persistError(e, 'cannot write the xenstore tree to', file);
  }
}

function applyRecord(core: XenstoredCore, rec: LogRecord): void {
  for (const [name, n] of Object.entries(rec.n)) {
    if (n === null) core.db.delete(name);
    else core.db.set(name, decodeNode(n));
  }
  core.generation = rec.g;
  for (const [k, v] of Object.entries(rec.p ?? {})) if (v.length > 0) core.setSpecialPerms(k, v);
}

/** Loads the snapshot and replays the log into `core`; returns whether anything was there. */
export function loadTree(core: XenstoredCore, file: string): boolean {
  removeStaleTemporaries(file);
  const log = `${file}.log`;
  if (!existsSync(file) && !existsSync(log)) return false;
  let snapNodes: [string, StoredNode][] | null = null;
  let generation = 0;
  let special: Record<string, XsPerm[]> = {};
  if (existsSync(file)) {
    let tree: PersistedTree;
    try {
      tree = JSON.parse(readFileSync(file, 'utf8')) as PersistedTree;
    } catch (e) {
      throw persistError(e, 'cannot read the xenstore tree from', file);
    }
    if (tree.format !== FORMAT || tree.version !== VERSION || typeof tree.nodes !== 'object' || !tree.nodes['/']) {
      throw new XenstoredServerError('persist', 'EINVAL', `${file} is not a xen-sshm xenstored tree (format ${FORMAT} v${VERSION} with a root node)`, file);
    }
    snapNodes = Object.entries(tree.nodes).map(([name, n]) => [name, decodeNode(n)]);
    generation = tree.generation;
    special = tree.specialPerms ?? {};
  }
  if (snapNodes) core.restore({ generation, nodes: snapNodes });
  for (const [k, v] of Object.entries(special)) if (v.length > 0) core.setSpecialPerms(k, v);
  if (existsSync(log)) {
    let text: string;
    try {
      text = readFileSync(log, 'latin1');
    } catch (e) {
      throw persistError(e, 'cannot read the xenstore log', log);
    }
    const lines = text.split('\n');
    // The part after the last newline is a record cut short by a crash: never acknowledged.
    lines.pop();
    lines.forEach((line, i) => {
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
        if (typeof rec.g !== 'number' || typeof rec.n !== 'object' || rec.n === null) throw new Error('not a log record');
      } catch (e) {
        throw new XenstoredServerError('persist', 'EINVAL', `${log} line ${i + 1} is not a xen-sshm xenstored log record: ${(e as Error).message}`, log);
      }
      applyRecord(core, rec);
    });
    // Node counts per domain follow the replayed tree.
    core.restore(core.snapshot());
  }
  return true;
}

/**
 * The write-ahead log of one daemon: opened after loadTree(), fed by the core's journal hook,
 * folded into the snapshot by compact().
 */
export class TreeJournal {
  private fd: number | null = null;
  private bytes = 0;
  readonly logPath: string;

  constructor(readonly file: string) {
    this.logPath = `${file}.log`;
  }

  /** Start a fresh log after the snapshot holds everything (call after loadTree + saveTree). */
  open(): void {
    try {
      this.fd = openSync(this.logPath, 'a', 0o600);
      ftruncateSync(this.fd, 0);
      fsyncSync(this.fd);
      fsyncDir(dirname(this.logPath));
    } catch (e) {
      throw persistError(e, 'cannot open the xenstore log', this.logPath);
    }
    this.bytes = 0;
  }

  /** Append one record and wait until it is on disk. */
  append(change: TreeChange): void {
    if (this.fd === null) throw new XenstoredServerError('persist', 'EBADF', `the xenstore log ${this.logPath} is not open`, this.logPath);
    const n: Record<string, PersistedNode | null> = {};
    for (const [name, rec] of change.nodes) n[name] = rec ? encodeNode(rec) : null;
    const rec: LogRecord = { g: change.generation, n };
    if (change.specialPerms) rec.p = specialRecord(change.specialPerms);
    const line = Buffer.from(JSON.stringify(rec) + '\n', 'latin1');
    try {
      let off = 0;
      while (off < line.length) off += writeSync(this.fd, line, off);
      fdatasyncSync(this.fd);
    } catch (e) {
      throw persistError(e, 'cannot append to the xenstore log', this.logPath);
    }
    this.bytes += line.length;
  }

  /** Whether the log is long enough to fold into the snapshot. */
  get wantsCompaction(): boolean {
    return this.bytes >= COMPACT_BYTES;
  }

  /** Snapshot (atomically replaced), then an empty log: a crash between the two replays harmlessly. */
  compact(core: XenstoredCore): void {
    saveTree(core, this.file);
    if (this.fd === null) return;
    try {
      ftruncateSync(this.fd, 0);
      fdatasyncSync(this.fd);
    } catch (e) {
      throw persistError(e, 'cannot empty the xenstore log', this.logPath);
    }
    this.bytes = 0;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
