/**
 * Shared set-up for tests that talk to a daemon as guests: the toolstack's part (each guest's
 * home /local/domain/<id> owned by it, then INTRODUCE), done over the dom0 socket, and the
 * guest sockets: xs-ring-bridge for C xenstored, domain sockets for the in-memory server.
 */
import { MessageType } from '../../xenstore-wire/constants';
import { startServer, XenstoreServer, XenRelease as ServerRelease } from '../../xenstore-wire/server';
import { DEFAULT_RELEASE, RunningDaemon, startDaemon, XenRelease } from '../harness/daemons';
import { RawConn } from './wire';

/** Quotas small enough for random tests to hit (C xenstored options and server quotas). */
export const SMALL_QUOTAS = { nodes: 40, watches: 6, transactions: 3, nodeSize: 400 };
export const SMALL_QUOTA_ARGS = ['-E', '40', '-W', '6', '-t', '3', '-S', '400'];

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');

/** Create /local/domain/<d> (owned by d, name inside) and INTRODUCE each guest. */
export async function introduceGuests(socketPath: string, guests: number[]): Promise<void> {
  const c = await RawConn.open(socketPath);
  try {
    for (const d of guests) {
      const steps: [number, string][] = [
        [MessageType.WRITE, `/local/domain/${d}/name\0guest${d}`],
        [MessageType.SET_PERMS, nul(`/local/domain/${d}`, `n${d}`)],
        [MessageType.SET_PERMS, nul(`/local/domain/${d}/name`, `n${d}`)],
        [MessageType.INTRODUCE, nul(String(d), '4660', '1')],
      ];
      for (const [type, payload] of steps) {
        const r = await c.request(type, payload);
        if (r.type === MessageType.ERROR) throw new Error(`guest set-up ${MessageType[type]} ${JSON.stringify(payload)}: ${r.payload.toString()}`);
      }
    }
  } finally {
    c.close();
  }
}

export interface GuestTarget {
  label: string;
  socketPath: string;
  guestSocket(domid: number): Promise<string>;
  stop(): Promise<void>;
}

export async function cxenstoredWithGuests(
  guests: number[],
  fakeDomains: number[],
  extraArgs: string[] = [],
  release: XenRelease = DEFAULT_RELEASE,
): Promise<GuestTarget & { daemon: RunningDaemon }> {
  const d = await startDaemon('cxenstored', { fakeDomains, extraArgs, release });
  await introduceGuests(d.socketPath, guests);
  return { label: release === DEFAULT_RELEASE ? 'C xenstored' : `C xenstored ${release}`, daemon: d, socketPath: d.socketPath, guestSocket: (id) => d.guestSocket(id), stop: () => d.stop() };
}

export async function inMemoryWithGuests(
  guests: number[],
  fakeDomains: number[],
  quotas: Partial<typeof SMALL_QUOTAS> = {},
  release?: ServerRelease,
): Promise<GuestTarget & { server: XenstoreServer }> {
  const s = await startServer({ domains: fakeDomains, quotas, release });
  await introduceGuests(s.socketPath, guests);
  return { label: 'in-memory', server: s, socketPath: s.socketPath, guestSocket: (id) => s.domainSocketPath(id), stop: () => s.close() };
}
