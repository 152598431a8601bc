/**
 * A subtree as text: `xenstore-ls -f PATH` lines (`/full/path = "value"`, children depth
 * first in the daemon's order, the starting node itself not listed), optionally with the
 * permissions as `xenstore-ls -f -p` prints them. Used by `ls --tree`, the demo, and the tests
 * that compare the store before and after an operation.
 */
import { XenstoreError, type XenstoreOps } from '../../xenstore-wire';
import { formatPerms } from '../../xenstore-wire/perms';
import { mapWindowed } from './pipeline';

/**
 * xenstore-ls's escaping of a value (sanitise_value() of xs_lib.c, checked byte by byte against
 * the real tool): printable ASCII as is, \t \n \r and \\ as such, bytes below 8 as \00N, others
 * as \xNN.
 */
export function sanitiseValue(value: Buffer): string {
  let out = '';
  for (const c of value) {
    if (c >= 0x20 && c <= 0x7e && c !== 0x5c) out += String.fromCharCode(c);
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 8) out += '\\00' + String(c);
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out;
}

export interface DumpOptions {
  /** Add `   (n0,r5)` like `xenstore-ls -p`. */
  perms?: boolean;
}

/** The lines of `xenstore-ls -f path`; [] when the path does not exist. */
export async function dumpTree(ops: XenstoreOps, path: string, opts: DumpOptions = {}): Promise<string[]> {
  // Pipelined: each level's values (and permissions) in one burst, and sibling subtrees walked
  // at once (a window at a time), their lines put back in the daemon's order.
  const walk = async (dir: string): Promise<string[]> => {
    let children: string[];
    try {
      children = await ops.directory(dir);
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') return [];
      throw e;
    }
    const full = children.map((c) => (dir === '/' ? `/${c}` : `${dir}/${c}`));
    const [values, perms] = await Promise.all([
      Promise.all(full.map((p) => ops.read(p).catch((e) => (e instanceof XenstoreError && e.code === 'ENOENT' ? null : Promise.reject(e))))),
      opts.perms ? Promise.all(full.map((p) => ops.getPerms(p).catch(() => null))) : [],
    ]);
    const below = await mapWindowed(full, (p, i) => (values[i] === null ? Promise.resolve([]) : walk(p)));
    const lines: string[] = [];
    for (let i = 0; i < full.length; i++) {
      const v = values[i];
      // A child removed between DIRECTORY and READ is skipped, as xenstore-ls does.
      if (v === null) continue;
      let line = `${full[i]} = "${sanitiseValue(v)}"`;
      const p = perms[i];
      if (opts.perms && p) line += `   (${formatPerms(p).join(',')})`;
      lines.push(line, ...below[i]);
    }
    return lines;
  };
  return walk(path);
}

/**
 * What xen-sshm keeps in xenstore, as `xenstore-ls -f` lines: the records under `root`, then
 * for each domain its guest mirror folder and its set_target record.
 */
export async function sharedMemoryTree(ops: XenstoreOps, root: string, domids: number[], opts: DumpOptions = {}): Promise<string[]> {
  const node = async (path: string): Promise<string[]> => {
    let value: Buffer;
    try {
      value = await ops.read(path);
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') return [];
      throw e;
    }
    let line = `${path} = "${sanitiseValue(value)}"`;
    if (opts.perms) line += `   (${formatPerms(await ops.getPerms(path)).join(',')})`;
    return [line, ...(await dumpTree(ops, path, opts))];
  };
  const [records, perDomain] = await Promise.all([
    dumpTree(ops, root, opts),
    mapWindowed(domids, async (domid) => (await Promise.all([node(`/local/domain/${domid}/shared_mem`), node(`/local/domain/${domid}/target`)])).flat()),
  ]);
  return [...records, ...perDomain.flat()];
}
