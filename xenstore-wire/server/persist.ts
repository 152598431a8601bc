/**
 * `--persist FILE`: the tree (global nodes, generation count, special-watch permissions) as
 * JSON, written atomically (temp file + rename) so a crash leaves the old or the new tree.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { StoredNode, XenstoredCore, XsPerm } from './core';
import { XenstoredServerError } from './errors';

const FORMAT = 'xen-sshm-xenstored-tree';
const VERSION = 1;

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

export function saveTree(core: XenstoredCore, file: string): void {
  const snap = core.snapshot();
  const nodes: Record<string, PersistedNode> = {};
  for (const [name, n] of snap.nodes) {
    nodes[name] = { generation: n.generation, perms: n.perms.map((p) => ({ ...p })), data: n.data.toString('base64'), children: [...n.children] };
  }
  const tree: PersistedTree = {
    format: FORMAT,
    version: VERSION,
    generation: snap.generation,
    nodes,
    specialPerms: Object.fromEntries([...core.specialPerms].map(([k, v]) => [k, v.map((p) => ({ ...p }))])),
  };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(tree));
    renameSync(tmp, file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new XenstoredServerError('persist', err.code ?? 'EIO', `cannot write the xenstore tree to ${file}: ${err.message}`, file);
  }
}

/** Loads `file` into `core` if it exists; returns whether it did. */
export function loadTree(core: XenstoredCore, file: string): boolean {
  if (!existsSync(file)) return false;
  let tree: PersistedTree;
  try {
    tree = JSON.parse(readFileSync(file, 'utf8')) as PersistedTree;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new XenstoredServerError('persist', err.code ?? 'EINVAL', `cannot read the xenstore tree from ${file}: ${err.message}`, file);
  }
  if (tree.format !== FORMAT || tree.version !== VERSION || typeof tree.nodes !== 'object' || !tree.nodes['/']) {
    throw new XenstoredServerError('persist', 'EINVAL', `${file} is not a xen-sshm xenstored tree (format ${FORMAT} v${VERSION} with a root node)`, file);
  }
  const nodes: [string, StoredNode][] = Object.entries(tree.nodes).map(([name, n]) => [
    name,
    { generation: n.generation, perms: n.perms, data: Buffer.from(n.data, 'base64'), children: n.children },
  ]);
  core.restore({ generation: tree.generation, nodes });
  for (const [k, v] of Object.entries(tree.specialPerms ?? {})) if (core.specialPerms.has(k) && v.length > 0) core.specialPerms.set(k, v);
  return true;
}
