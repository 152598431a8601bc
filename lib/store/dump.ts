/**
 * A subtree as text: `xenstore-ls -f PATH` lines (`/full/path = "value"`, children depth
 * first in the daemon's order, the starting node itself not listed), optionally with the
 * permissions as `xenstore-ls -f -p` prints them. Used by `ls --tree`, the demo, and the tests
 * that compare the store before and after an operation.
 */
import { XenstoreError, type XenstoreOps } from '../../xenstore-wire';
import { formatPerms } from '../../xenstore-wire/perms';

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
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let children: string[];
    try {
      children = await ops.directory(dir);
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') return;
      throw e;
    }
    const full = children.map((c) => (dir === '/' ? `/${c}` : `${dir}/${c}`));
    // Pipelined: every value (and permission list) of this level in one burst.
    const values = await Promise.all(full.map((p) => ops.read(p).catch((e) => (e instanceof XenstoreError && e.code === 'ENOENT' ? null : Promise.reject(e)))));
    const perms = opts.perms ? await Promise.all(full.map((p) => ops.getPerms(p).catch(() => null))) : [];
    for (let i = 0; i < full.length; i++) {
      const v = values[i];
      // A child removed between DIRECTORY and READ is skipped, as xenstore-ls does.
      if (v === null) continue;
      let line = `${full[i]} = "${sanitiseValue(v)}"`;
      const p = perms[i];
      if (opts.perms && p) line += `   (${formatPerms(p).join(',')})`;
      lines.push(line);
      await walk(full[i]);
    }
  };
  await walk(path);
  return lines;
}

/**
 * What xen-sshm keeps in xenstore, as `xenstore-ls -f` lines: the records under `root`, then
 * for each domain its guest mirror folder and its set_target record.
 */
export async function sharedMemoryTree(ops: XenstoreOps, root: string, domids: number[], opts: DumpOptions = {}): Promise<string[]> {
  const lines = await dumpTree(ops, root, opts);
  for (const domid of domids) {
    for (const node of [`/local/domain/${domid}/shared_mem`, `/local/domain/${domid}/target`]) {
      let value: Buffer;
      try {
        value = await ops.read(node);
      } catch (e) {
        if (e instanceof XenstoreError && e.code === 'ENOENT') continue;
        throw e;
      }
      let line = `${node} = "${sanitiseValue(value)}"`;
      if (opts.perms) line += `   (${formatPerms(await ops.getPerms(node)).join(',')})`;
      lines.push(line, ...(await dumpTree(ops, node, opts)));
    }
  }
  return lines;
}
