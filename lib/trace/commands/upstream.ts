/**
 * Finding the real daemon's socket the way libxenstore does (FACTS.md section 2):
 * XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket.
 * The last resort of libxenstore, /dev/xen/xenbus, is a character device, not a socket, and
 * cannot be proxied this way: it is refused with a clear error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { elide } from '../../elide';
import { TraceError } from '../errors';

export const DEFAULT_RUNDIR = '/var/run/xenstored';

export function upstreamCandidates(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  if (env.XENSTORED_PATH) out.push(env.XENSTORED_PATH);
  out.push(path.join(env.XENSTORED_RUNDIR || DEFAULT_RUNDIR, 'socket'));
  return out;
}

/** The socket to forward to: `explicit` if given, else the first candidate that exists. */
export function resolveUpstream(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  const list = explicit !== undefined ? [explicit] : upstreamCandidates(env);
  for (const p of list) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      if (explicit !== undefined || env.XENSTORED_PATH === p) {
        // An explicit choice that does not exist is an error, not a reason to look elsewhere
        // (libxenstore does not fall back either when XENSTORED_PATH is set).
        throw new TraceError('ENOENT', `xenstored socket ${elide(p)} does not exist`, { path: p, option: explicit !== undefined ? '--upstream' : undefined });
      }
      continue;
    }
    if (st.isCharacterDevice()) {
      throw new TraceError('ENOTSOCK', `${elide(p)} is a device (/dev/xen/xenbus); xs-trace proxies the xenstored Unix socket only`, { path: p });
    }
    if (!st.isSocket()) throw new TraceError('ENOTSOCK', `${elide(p)} is not a Unix socket`, { path: p });
    return p;
  }
  throw new TraceError('ENOENT', `no xenstored socket found (tried ${list.map((x) => elide(x)).join(', ')}); is xenstored running? Use --upstream PATH`, { path: list[list.length - 1] });
}
