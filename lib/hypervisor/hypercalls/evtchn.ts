/**
 * Event channels, as dom0 uses them for doorbells: EVTCHNOP_alloc_unbound for another domain
 * (a port in `dom` that only `remoteDom` may bind) and EVTCHNOP_status. Both go through the
 * same privcmd hypercall as every other call (event_channel_op, xen/common/event_channel.c).
 */
import { EvtchnOp, EvtchnStat, Hypercall } from '../abi';
import { errnoName, HypercallError } from '../errors';
import { EVTCHN_ALLOC_UNBOUND, EVTCHN_STATUS, readEvtchnAllocUnbound, readEvtchnStatus, writeEvtchnAllocUnbound, writeEvtchnStatus } from '../layout';
import type { EvtchnStatus } from '../types';
import { EINVAL, type HypercallContext } from './context';

/** Ports are evtchn_port_t, a uint32_t; Xen caps them far lower (max_evtchn_port, INT_MAX). */
const MAX_PORT = 0x7fffffff;

export function checkPort(port: number, call: string, domid: number): number {
  if (!(Number.isInteger(port) && port >= 0 && port <= MAX_PORT)) {
    throw new HypercallError({ call, errno: EINVAL, domid, message: `${String(port)} is not an event channel port (0..${MAX_PORT})` });
  }
  return port;
}

export function allocUnbound(cx: HypercallContext, dom: number, remoteDom: number): number {
  const call = 'event_channel_op(alloc_unbound)';
  const b = cx.buf(EVTCHN_ALLOC_UNBOUND.size);
  writeEvtchnAllocUnbound(b.view, 0, { dom, remoteDom, port: 0 });
  const rc = cx.hypercall(Hypercall.event_channel_op, [EvtchnOp.alloc_unbound, b.address]);
  if (rc < 0) {
    // evtchn_alloc_unbound(): -ESRCH for an unknown dom; get_free_port(): -EINVAL for a dying
    // one, -ENOSPC when every port up to max_evtchn_port is in use; XSM: -EPERM.
    const what: Record<string, string> = {
      ESRCH: `d${dom} does not exist`,
      EINVAL: `d${dom} is dying`,
      ENOSPC: `d${dom} has no free port left`,
      EPERM: `the XSM policy refuses a port in d${dom} for d${remoteDom}`,
    };
    const name = errnoName(-rc);
    throw new HypercallError({ call, errno: -rc, domid: dom, remoteDomid: remoteDom, message: `alloc_unbound(d${dom}, remote d${remoteDom}): ${name}${what[name] ? `: ${what[name]}` : ''}` });
  }
  return readEvtchnAllocUnbound(b.view, 0).port;
}

export function status(cx: HypercallContext, dom: number, port: number): EvtchnStatus {
  const call = 'event_channel_op(status)';
  const b = cx.buf(EVTCHN_STATUS.size);
  writeEvtchnStatus(b.view, 0, { dom, port, status: 0, vcpu: 0, remoteDom: 0, remotePort: 0 });
  const rc = cx.hypercall(Hypercall.event_channel_op, [EvtchnOp.status, b.address]);
  if (rc < 0) {
    const what: Record<string, string> = {
      ESRCH: `d${dom} does not exist`,
      EINVAL: `port ${port} is not a valid port of d${dom}`,
      EACCES: `port ${port} of d${dom} is bound to Xen itself`,
    };
    const name = errnoName(-rc);
    throw new HypercallError({ call, errno: -rc, domid: dom, message: `status(d${dom}, port ${port}): ${name}${what[name] ? `: ${what[name]}` : ''}` });
  }
  const s = readEvtchnStatus(b.view, 0);
  switch (s.status) {
    case EvtchnStat.closed:
      return { state: 'closed' };
    case EvtchnStat.unbound:
      return { state: 'unbound', remoteDom: s.remoteDom };
    case EvtchnStat.interdomain:
      return { state: 'interdomain', remoteDom: s.remoteDom, remotePort: s.remotePort };
    case EvtchnStat.pirq:
      return { state: 'pirq', vcpu: s.vcpu };
    case EvtchnStat.virq:
      return { state: 'virq', vcpu: s.vcpu };
    case EvtchnStat.ipi:
      return { state: 'ipi', vcpu: s.vcpu };
    default:
      throw new HypercallError({ call, errno: EINVAL, domid: dom, message: `status(d${dom}, port ${port}): Xen answered an unknown status ${s.status}` });
  }
}
