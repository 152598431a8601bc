/**
 * Doorbells (docs/doorbells.md): the event channel port dom0 allocates in a region's owner for
 * each borrower that gets one (EVTCHNOP_alloc_unbound {dom = owner, remote_dom = borrower}: only
 * that borrower may bind it). What Xen lets dom0 do shapes everything here:
 *
 *   - allocating is a hypercall outside every transaction, between a claim that recorded the
 *     intent (`ports/<b> = allocating`) and the commit that records the number;
 *   - dom0 cannot close another domain's port (EVTCHNOP_close acts on the caller's own ports),
 *     so nothing here ever frees one: a released borrower's port stays recorded and is reused;
 *   - after a crash between allocation and commit, the port is found again with EVTCHNOP_status:
 *     an unbound port of the owner whose remote is that borrower and that no record names.
 */
import { HypercallError } from '../hypervisor/errors';
import type { EvtchnStatus } from '../hypervisor/types';
import { mapWindowed, readKeptPorts, type RegionRecord } from '../store';
import type { ManagerContext } from './context';
import { ownRegions } from './own-records';
import { ManagerError } from './errors';

/** The hypervisor's event channel calls, which the interface still declares optional. */
function evtchn(ctx: ManagerContext): { alloc: (dom: number, remote: number) => Promise<number>; status: (dom: number, port: number) => Promise<EvtchnStatus> } {
  const { evtchnAllocUnbound, evtchnStatus } = ctx.hv;
  if (!evtchnAllocUnbound || !evtchnStatus) throw new ManagerError({ code: 'ENOSYS', reason: 'hypercall', message: `this hypervisor backend (${ctx.hv.backend}) has no event channel calls` });
  return { alloc: (d, r) => evtchnAllocUnbound.call(ctx.hv, d, r), status: (d, p) => evtchnStatus.call(ctx.hv, d, p) };
}

/** A port's live state as `ls` shows it: EVTCHNOP_status, or the errno when Xen refused to say. */
export type PortLiveState = EvtchnStatus | { state: 'error'; code: string };

/** EVTCHNOP_status of one port, errors as values (a dead owner answers ESRCH). */
export async function portState(ctx: ManagerContext, owner: number, port: number): Promise<PortLiveState> {
  try {
    return await evtchn(ctx).status(owner, port);
  } catch (e) {
    // Xen's refusal, or a hypervisor that cannot be opened here: shown, not fatal to a listing.
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string') return { state: 'error', code };
    throw e;
  }
}

/** Whether the port is still the borrower's doorbell: unbound for it, or bound by it. */
export function isDoorbellOf(s: PortLiveState, borrower: number): boolean {
  return (s.state === 'unbound' || s.state === 'interdomain') && s.remoteDom === borrower;
}

/** A recorded port that may be reused for the borrower (re-apply): still its doorbell in Xen. */
export async function reusable(ctx: ManagerContext, owner: number, port: number, borrower: number): Promise<boolean> {
  return isDoorbellOf(await portState(ctx, owner, port), borrower);
}

/**
 * EVTCHNOP_alloc_unbound in the owner for the borrower. Xen's refusals become ManagerErrors
 * saying what they mean here (ENOSPC: the owner's max_event_channels is used up).
 */
export async function allocatePort(ctx: ManagerContext, id: string, owner: number, borrower: number): Promise<number> {
  try {
    return await evtchn(ctx).alloc(owner, borrower);
  } catch (e) {
    if (!(e instanceof HypercallError)) throw e;
    return Promise.reject(
      new ManagerError({
        code: e.code, reason: 'hypercall', id, domid: borrower, cause: e,
        message: `${id}: allocating the doorbell of d${borrower} in the owner d${owner} failed: ${e.message}`,
        hint: e.code === 'ENOSPC' ? `d${owner} has no free event channel port: raise max_event_channels in its xl config (ports dom0 made stay until the domain dies)` : undefined,
      }),
    );
  }
}

/**
 * The owner's ports, each with its status, scanned from port 1 until Xen says EINVAL (past the
 * ports the domain has: port_is_valid()). `upTo` bounds the scan (the owner's
 * max_event_channels is at most 2^17 with FIFO).
 */
export async function scanPorts(ctx: ManagerContext, owner: number, upTo = 1 << 17): Promise<Array<{ port: number; status: EvtchnStatus }>> {
  const { status } = evtchn(ctx);
  const out: Array<{ port: number; status: EvtchnStatus }> = [];
  // A bucket (64 ports) at a time, pipelined; the first EINVAL ends the scan.
  for (let first = 1; first <= upTo; first += 64) {
    const ports = Array.from({ length: Math.min(64, upTo - first + 1) }, (_, i) => first + i);
    const answers = await mapWindowed(ports, (p) => status(owner, p).then((s) => s, (e: unknown) => (e instanceof HypercallError && e.code === 'EINVAL' ? null : Promise.reject(e))));
    for (let i = 0; i < ports.length; i++) {
      const s = answers[i];
      if (s === null) return out;
      out.push({ port: ports[i], status: s });
    }
  }
  return out;
}

/** Every port the records name in regions the owner owns (its index) and its kept ports, `except` left out. */
async function namedPorts(ctx: ManagerContext, owner: number, except?: { id: string; borrower: number }): Promise<Set<number>> {
  const [regions, kept] = await Promise.all([ownRegions(ctx, owner).then((rs) => rs.filter((r) => r.owner === owner)), readKeptPorts(ctx.xs, ctx.paths, owner)]);
  const named = new Set<number>(kept.map((k) => k.port));
  for (const r of regions) for (const p of r.ports ?? []) if (typeof p.port === 'number' && !(except && r.id === except.id && p.borrower === except.borrower)) named.add(p.port);
  return named;
}

/**
 * The port a dead apply allocated for `borrower` in region `id` before it could record it: an
 * unbound port of the owner whose remote is the borrower and that no record names (the lowest,
 * should there be several). Null when there is none (the apply died before allocating), or when
 * the owner is gone (its ports went with it).
 */
export async function findUnrecordedPort(ctx: ManagerContext, region: Pick<RegionRecord, 'id' | 'owner'>, borrower: number): Promise<number | null> {
  let ports: Array<{ port: number; status: EvtchnStatus }>;
  try {
    ports = await scanPorts(ctx, region.owner);
  } catch (e) {
    if (e instanceof HypercallError && e.code === 'ESRCH') return null;
    throw e;
  }
  const named = await namedPorts(ctx, region.owner, { id: region.id, borrower });
  const found = ports.find((p) => p.status.state === 'unbound' && p.status.remoteDom === borrower && !named.has(p.port));
  return found ? found.port : null;
}
