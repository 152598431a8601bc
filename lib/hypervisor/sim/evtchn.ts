/**
 * Event channels of the simulated host: each domain's ports (free, unbound with the domain
 * allowed to bind, interdomain, pending) and the operations on them, with the rules and errors of
 * xen/common/event_channel.c (lines at RELEASE-4.17.0; the rules are the same through 4.22, the
 * code was reorganised). dom0 allocates and reads status (as the Hypervisor interface does); a
 * guest binds, sends and closes its own ports (as the sandbox's simulated guests do).
 * Only interdomain channels are simulated: no VIRQs, PIRQs, IPIs, vCPUs or masking.
 */
import * as os from 'node:os';
import { DOMID_SELF } from '../../vocabulary';
import type { EvtchnStatus } from '../types';
import type { SimHost } from './host';

const E = os.constants.errno;

/**
 * Ports come in buckets (EVTCHNS_PER_BUCKET, include/xen/sched.h:79: PAGE_SIZE over the size of
 * struct evtchn rounded up to a power of two, 64 bytes on 64-bit builds): a port is valid once its
 * bucket exists (port_is_valid(), include/xen/event.h:142-155), free or not.
 */
export const EVTCHNS_PER_BUCKET = 64;
/** A domU's highest port: libxl's default `max_event_channels` is 1023 (max_evtchn_port). */
export const DOMU_MAX_PORT = 1023;
/** dom0's: Xen's opt_dom0_max_evtchn default is far above what the sim needs; 4095 here. */
export const DOM0_MAX_PORT = 4095;

export type PortState =
  | { state: 'reserved' }
  | { state: 'unbound'; remote: number }
  | { state: 'interdomain'; remoteDom: number; remotePort: number };

/** One domain's ports. */
export class EvtchnTable {
  readonly ports = new Map<number, PortState>();
  readonly pending = new Set<number>();
  /** d->valid_evtchns: ports below this one are valid (their bucket exists). */
  valid = EVTCHNS_PER_BUCKET;

  constructor(readonly maxPort: number) {
    // evtchn_init(): bucket 0 exists, port 0 is ECS_RESERVED (common/event_channel.c:1498-1528).
    this.ports.set(0, { state: 'reserved' });
  }

  isValid(port: number): boolean {
    return Number.isInteger(port) && port >= 0 && port < this.valid;
  }
}

/**
 * get_free_port() (common/event_channel.c:256-275): the lowest free port up to max_evtchn_port,
 * growing the valid range by buckets (evtchn_allocate_port(), :205-254); -EINVAL for a dying
 * domain, -ENOSPC when none is left.
 */
function freePort(h: SimHost, domid: number): number {
  const d = h.domains.get(domid)!;
  if (d.dying) return -E.EINVAL;
  const t = d.evtchn;
  for (let port = 0; port <= t.maxPort; port++) {
    if (t.ports.has(port)) continue;
    if (port >= t.valid) t.valid = (Math.floor(port / EVTCHNS_PER_BUCKET) + 1) * EVTCHNS_PER_BUCKET;
    return port;
  }
  return -E.ENOSPC;
}

/** What a call answers: the port (>= 0) or -errno. */
export type PortResult = number;

/**
 * EVTCHNOP_alloc_unbound by `caller` (common/event_channel.c:324-365): a fresh port in `dom`
 * (DOMID_SELF: the caller) that only `remote` may bind (DOMID_SELF: the caller). -ESRCH for an
 * unknown dom; the remote domain is not looked up. XSM_TARGET (xsm/dummy.h, xsm_evtchn_unbound):
 * the caller must be dom, its device model (dom has the caller as... the caller has dom as its
 * target), or the control domain (dom0), else -EPERM.
 */
export function allocUnbound(h: SimHost, caller: number, dom: number, remote: number): PortResult {
  const d = h.byAnyId(dom, caller);
  if (!d) return -E.ESRCH;
  const c = h.domains.get(caller);
  if (!(caller === 0 || d.domid === caller || c?.target === d.domid)) return -E.EPERM;
  const port = freePort(h, d.domid);
  if (port < 0) return port;
  d.evtchn.ports.set(port, { state: 'unbound', remote: remote === DOMID_SELF ? caller : remote });
  h.dirty = true;
  return port;
}

/**
 * EVTCHNOP_bind_interdomain by `caller`, always for itself (common/event_channel.c:388-462): a
 * fresh local port bound to (remoteDom, remotePort), which must be unbound and allow the caller;
 * else -EINVAL (an invalid port too), -ESRCH for an unknown remote domain. The local port is set
 * pending once ("we may have lost notifications on the remote unbound port").
 */
export function bindInterdomain(h: SimHost, caller: number, remoteDom: number, remotePort: number): PortResult {
  const ld = h.domains.get(caller);
  const rd = h.byAnyId(remoteDom, caller);
  if (!ld || !rd) return -E.ESRCH;
  const lport = freePort(h, caller);
  if (lport < 0) return lport;
  const r = rd.evtchn.isValid(remotePort) ? rd.evtchn.ports.get(remotePort) : undefined;
  if (!rd.evtchn.isValid(remotePort)) return -E.EINVAL;
  if (!r || r.state !== 'unbound' || r.remote !== caller) return -E.EINVAL;
  // Loopback (rd == ld) binds two ports of one domain; Xen allows it too.
  ld.evtchn.ports.set(lport, { state: 'interdomain', remoteDom: rd.domid, remotePort });
  rd.evtchn.ports.set(remotePort, { state: 'interdomain', remoteDom: caller, remotePort: lport });
  ld.evtchn.pending.add(lport);
  h.dirty = true;
  return lport;
}

/**
 * EVTCHNOP_send by `caller` on its own port (common/event_channel.c:776-832): an interdomain
 * port sets the remote port pending; an unbound one drops the event silently (0); an invalid,
 * free or reserved port is -EINVAL.
 */
export function send(h: SimHost, caller: number, port: number): number {
  const d = h.domains.get(caller);
  if (!d) return -E.ESRCH;
  if (!d.evtchn.isValid(port)) return -E.EINVAL;
  const p = d.evtchn.ports.get(port);
  if (!p || p.state === 'reserved') return -E.EINVAL;
  if (p.state === 'interdomain') {
    const rd = h.domains.get(p.remoteDom);
    if (rd) rd.evtchn.pending.add(p.remotePort);
    h.dirty = true;
  }
  return 0;
}

/**
 * EVTCHNOP_close of `caller`'s own port (common/event_channel.c:645-774; do_event_channel_op
 * passes current->domain, so dom0 cannot close another domain's port): -EINVAL for an invalid,
 * free or reserved port; an unbound port is freed; an interdomain one too, and its remote end
 * returns to unbound, bindable again by the caller (remote_domid kept). Freeing clears pending
 * (evtchn_free(), :287-306).
 */
export function close(h: SimHost, caller: number, port: number): number {
  const d = h.domains.get(caller);
  if (!d) return -E.ESRCH;
  return closePort(h, caller, port);
}

function closePort(h: SimHost, domid: number, port: number): number {
  const d = h.domains.get(domid)!;
  if (!d.evtchn.isValid(port)) return -E.EINVAL;
  const p = d.evtchn.ports.get(port);
  if (!p || p.state === 'reserved') return -E.EINVAL;
  if (p.state === 'interdomain') {
    const rd = h.domains.get(p.remoteDom);
    if (rd && rd.evtchn.ports.has(p.remotePort)) rd.evtchn.ports.set(p.remotePort, { state: 'unbound', remote: domid });
  }
  d.evtchn.ports.delete(port);
  d.evtchn.pending.delete(port);
  h.dirty = true;
  return 0;
}

/**
 * EVTCHNOP_status (common/event_channel.c:992-1062): -ESRCH for an unknown domain, -EINVAL for
 * an invalid port; a free or reserved port is closed. XSM_TARGET: dom0 may ask about any domain.
 */
export function status(h: SimHost, caller: number, dom: number, port: number): EvtchnStatus | number {
  const d = h.byAnyId(dom, caller);
  if (!d) return -E.ESRCH;
  if (!d.evtchn.isValid(port)) return -E.EINVAL;
  const c = h.domains.get(caller);
  if (!(caller === 0 || d.domid === caller || c?.target === d.domid)) return -E.EPERM;
  const p = d.evtchn.ports.get(port);
  if (!p || p.state === 'reserved') return { state: 'closed' };
  if (p.state === 'unbound') return { state: 'unbound', remoteDom: p.remote };
  return { state: 'interdomain', remoteDom: p.remoteDom, remotePort: p.remotePort };
}

/**
 * The guest notices and clears the pending bit of its own port (as its upcall handler does in
 * the shared info page). True when it was pending. -EINVAL for an invalid port.
 */
export function takePending(h: SimHost, caller: number, port: number): boolean | number {
  const d = h.domains.get(caller);
  if (!d) return -E.ESRCH;
  if (!d.evtchn.isValid(port)) return -E.EINVAL;
  const was = d.evtchn.pending.delete(port);
  if (was) h.dirty = true;
  return was;
}

/**
 * evtchn_destroy() (common/event_channel.c:1530-1563), when a domain dies: every port is
 * closed, so the remote ends of its interdomain channels return to unbound.
 */
export function closeAll(h: SimHost, domid: number): void {
  const d = h.domains.get(domid);
  if (!d) return;
  for (const port of [...d.evtchn.ports.keys()].sort((a, b) => b - a)) {
    if (port !== 0) closePort(h, domid, port);
  }
}
