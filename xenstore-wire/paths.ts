/**
 * Node path rules, checked client-side so a bad path never reaches the daemon.
 *
 * docs/misc/xenstore.txt "Paths" and xenstored_core.c is_valid_nodename(): characters
 * `A-Z a-z 0-9 - / _ @`; absolute paths start with `/`; no `//`; no trailing `/` except the
 * root itself; absolute at most XENSTORE_ABS_PATH_MAX (3072) bytes, relative (to the
 * connection's domain home, /local/domain/<domid>) at most XENSTORE_REL_PATH_MAX (2048).
 * Names starting with `@` are special watch paths (@introduceDomain, @releaseDomain, and on
 * Xen 4.22 `@releaseDomain/<domid>`).
 */
import { XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX, SPECIAL_WATCH_PATHS } from './constants';
import { XenstoreError } from './errors';

export interface PathRules {
  /** Accept `@...` special names (watch paths). Default false. */
  allowSpecial?: boolean;
  /** Accept paths relative to the domain home. Default true. */
  allowRelative?: boolean;
  /** Request name reported in the error, e.g. 'WRITE'. */
  op?: string;
}

const VALID_CHARS = /^[A-Za-z0-9\-/_@]*$/;

/** True for `@...` names (special watch paths). */
export function isSpecialPath(path: string): boolean {
  return path.startsWith('@');
}

/** True for the special watch names xenstored fires itself. */
export function isWellKnownSpecialPath(path: string): boolean {
  return (SPECIAL_WATCH_PATHS as readonly string[]).includes(path);
}

/** Why `path` breaks the rules, or null when it is valid. */
/** The usual shape, checked in one go: absolute, components of valid characters, short enough. */
export const PLAIN_ABSOLUTE = /^\/[A-Za-z0-9\-_@]+(?:\/[A-Za-z0-9\-_@]+)*$/;

export function pathProblem(path: string, rules: PathRules = {}): string | null {
  if (typeof path !== 'string') return 'path is not a string';
  if (path.length <= XENSTORE_ABS_PATH_MAX && PLAIN_ABSOLUTE.test(path)) return null;
  if (path.length === 0) return 'empty path';
  if (!VALID_CHARS.test(path)) {
    const bad = [...path].find((c) => !/[A-Za-z0-9\-/_@]/.test(c)) ?? '?';
    return `character ${JSON.stringify(bad)} not allowed (only A-Z a-z 0-9 - / _ @)`;
  }
  const special = isSpecialPath(path);
  if (special && !rules.allowSpecial) return 'special @ paths are only valid as watch paths';
  const absolute = path.startsWith('/');
  if (!absolute && !special && rules.allowRelative === false) return 'relative path not allowed here';
  // Special names follow the same rules (C xenstored canonicalize()): `@releaseDomain/5`
  // watches one domain on Xen 4.22.
  if (path.includes('//')) return 'contains //';
  if (path.endsWith('/') && path !== '/') return 'trailing /';
  if (special) return path.length > XENSTORE_ABS_PATH_MAX ? `longer than ${XENSTORE_ABS_PATH_MAX} bytes` : null;
  const max = absolute ? XENSTORE_ABS_PATH_MAX : XENSTORE_REL_PATH_MAX;
  // Valid characters are all ASCII, so string length is the byte length here.
  if (path.length > max) return `${absolute ? 'absolute' : 'relative'} path longer than ${max} bytes`;
  return null;
}

/** Throws XenstoreError EINVAL (source 'client') naming the rule `path` breaks. */
export function validatePath(path: string, rules: PathRules = {}): string {
  const problem = pathProblem(path, rules);
  if (problem !== null) {
    throw new XenstoreError('EINVAL', { op: rules.op, path: String(path), source: 'client', detail: problem });
  }
  return path;
}

/** Joins path components with `/`, without doubling separators: joinPath('/a', 'b') = '/a/b'. */
export function joinPath(base: string, ...names: string[]): string {
  let out = base;
  for (const n of names) {
    if (n === '') continue;
    out = out === '/' ? `/${n}` : out.endsWith('/') ? out + n : `${out}/${n}`;
  }
  return out;
}

/** The parent of an absolute path ('/' for top-level nodes and for '/' itself). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}
