/**
 * Event channels on the simulated host beyond the contract: the guests' own operations (bind,
 * send, close, noticing a pending event), the rules of xen/common/event_channel.c they follow,
 * what a domain's death does to its peers' ports, and ports kept in a folder across processes.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { HypercallError, SimHypervisor } from '../../lib/hypervisor';
import { EvtchnOp, Hypercall } from '../../lib/hypervisor/abi';
import { writeEvtchnStatus } from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';

const run = promisify(execFile);
const LIB = path.join(__dirname, '..', '..', 'lib', 'hypervisor');

async function pair(opts: { maxEvtchnPort?: number } = {}): Promise<{ hv: SimHypervisor; owner: number; b1: number; b2: number }> {
  const hv = new SimHypervisor();
  const owner = await hv.createDomain({ name: 'owner', maxPages: 16, ...opts });
  const b1 = await hv.createDomain({ name: 'b1', maxPages: 16 });
  const b2 = await hv.createDomain({ name: 'b2', maxPages: 16 });
  return { hv, owner, b1, b2 };
}

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (!(e instanceof HypercallError)) throw e;
    return e.code;
  }
};

test('a doorbell: dom0 allocates in the owner, the borrower binds, both ring, the borrower closes, the port waits unbound', async (t) => {
  const { hv, owner, b1 } = await pair();
  const port = await hv.evtchnAllocUnbound(owner, b1);
  t.is(port, 1, 'the lowest free port: 0 is reserved');
  t.deepEqual(await hv.evtchnStatus(owner, 0), { state: 'closed' }, 'port 0 (reserved) reads as closed');
  t.deepEqual(await hv.evtchnStatus(owner, 2), { state: 'closed' }, 'a free port of the first bucket');
  // The owner rings before anyone is bound: dropped silently.
  await hv.guestEvtchnSend(owner, port);
  const local = await hv.guestEvtchnBindInterdomain(b1, owner, port);
  t.deepEqual(await hv.evtchnStatus(owner, port), { state: 'interdomain', remoteDom: b1, remotePort: local });
  t.deepEqual(await hv.evtchnStatus(b1, local), { state: 'interdomain', remoteDom: owner, remotePort: port });
  t.true(await hv.guestEvtchnTakePending(b1, local), 'binding sets the local port pending once');
  t.false(await hv.guestEvtchnTakePending(b1, local));
  // Rings both ways.
  await hv.guestEvtchnSend(owner, port);
  t.true(await hv.guestEvtchnTakePending(b1, local));
  await hv.guestEvtchnSend(b1, local);
  t.true(await hv.guestEvtchnTakePending(owner, port));
  t.false(await hv.guestEvtchnTakePending(owner, port));
  // The borrower closes its end: the owner's port is unbound again, for the same borrower.
  await hv.guestEvtchnClose(b1, local);
  t.deepEqual(await hv.evtchnStatus(owner, port), { state: 'unbound', remoteDom: b1 });
  t.deepEqual(await hv.evtchnStatus(b1, local), { state: 'closed' });
  t.is(await code(hv.guestEvtchnClose(b1, local)), 'EINVAL', 'closing a free port');
  const again = await hv.guestEvtchnBindInterdomain(b1, owner, port);
  t.is(again, local, 'bound again: the lowest free port');
  await hv.close();
});

test('only the named borrower may bind; a bound port cannot be bound twice; bad ports and domains', async (t) => {
  const { hv, owner, b1, b2 } = await pair();
  const forB1 = await hv.evtchnAllocUnbound(owner, b1);
  const e = await t.throwsAsync(hv.guestEvtchnBindInterdomain(b2, owner, forB1), { instanceOf: HypercallError });
  t.deepEqual([e.code, e.call, e.domid, e.remoteDomid], ['EINVAL', 'event_channel_op(bind_interdomain)', b2, owner]);
  t.deepEqual(await hv.evtchnStatus(b2, 1), { state: 'closed' }, 'the refused bind left no port behind');
  await hv.guestEvtchnBindInterdomain(b1, owner, forB1);
  t.is(await code(hv.guestEvtchnBindInterdomain(b1, owner, forB1)), 'EINVAL', 'no longer unbound');
  t.is(await code(hv.guestEvtchnBindInterdomain(b1, owner, 5000)), 'EINVAL', 'not a valid port');
  t.is(await code(hv.guestEvtchnBindInterdomain(b1, 77, 1)), 'ESRCH', 'no such domain');
  t.is(await code(hv.guestEvtchnSend(b1, 63)), 'EINVAL', 'sending on a free port');
  t.is(await code(hv.guestEvtchnSend(b1, 64)), 'EINVAL', 'sending beyond the valid ports');
  t.is(await code(hv.guestEvtchnClose(b1, 0)), 'EINVAL', 'the reserved port');
  t.is(await code(hv.evtchnStatus(owner, 64)), 'EINVAL', 'beyond the first bucket of 64');
  t.is(await code(hv.evtchnAllocUnbound(99, b1)), 'ESRCH');
  // Xen does not look the remote domain up: a port for a domain that does not exist yet.
  const later = await hv.evtchnAllocUnbound(owner, 123);
  t.deepEqual(await hv.evtchnStatus(owner, later), { state: 'unbound', remoteDom: 123 });
  await hv.close();
});

test('ENOSPC past max_evtchn_port; the valid range grows by buckets of 64', async (t) => {
  const { hv, owner, b1 } = await pair({ maxEvtchnPort: 100 });
  const ports: number[] = [];
  for (;;) {
    try {
      ports.push(await hv.evtchnAllocUnbound(owner, b1));
    } catch (e) {
      t.is((e as HypercallError).code, 'ENOSPC');
      t.regex((e as Error).message, /has no free port left/);
      break;
    }
  }
  t.deepEqual([ports.length, ports[0], ports[ports.length - 1]], [100, 1, 100]);
  t.deepEqual(await hv.evtchnStatus(owner, 100), { state: 'unbound', remoteDom: b1 });
  t.deepEqual(await hv.evtchnStatus(owner, 127), { state: 'closed' }, 'valid up to the end of the second bucket');
  t.is(await code(hv.evtchnStatus(owner, 128)), 'EINVAL');
  await hv.close();
});

test('a domain that dies closes its ports: its peers\' ports return to unbound; a dying domain gets none', async (t) => {
  const { hv, owner, b1 } = await pair();
  const port = await hv.evtchnAllocUnbound(owner, b1);
  const local = await hv.guestEvtchnBindInterdomain(b1, owner, port);
  await hv.destroyDomain(b1);
  t.deepEqual(await hv.evtchnStatus(owner, port), { state: 'unbound', remoteDom: b1 }, 'the borrower died: unbound, remote kept');
  t.is(await code(hv.evtchnStatus(b1, local)), 'ESRCH', 'the borrower is gone');
  // An owner kept alive as a dying domain (a borrower still maps its page) has no ports left to give.
  const b2 = await hv.createDomain({ maxPages: 16 });
  await hv.populatePhysmap(owner, [0x10]);
  await hv.setTarget(b2, owner);
  await hv.addToPhysmapForeign({ borrower: b2, owner, ownerGfns: [0x10], borrowerGfns: [0x20] });
  const p2 = await hv.evtchnAllocUnbound(owner, b2);
  const l2 = await hv.guestEvtchnBindInterdomain(b2, owner, p2);
  await hv.destroyDomain(owner);
  t.true((await hv.domainInfo(owner))!.dying);
  t.deepEqual(await hv.evtchnStatus(b2, l2), { state: 'unbound', remoteDom: owner });
  const e = await t.throwsAsync(hv.evtchnAllocUnbound(owner, b2), { instanceOf: HypercallError });
  t.deepEqual([e.code, e.domid], ['EINVAL', owner]);
  t.regex(e.message, /is dying/);
  await hv.close();
});

test('raw EVTCHNOP_status carries the union as Xen lays it out; unknown ops are ENOSYS', async (t) => {
  const store = new SimStore(undefined, { arch: 'arm', explicitArch: true, xen: { major: 4, minor: 17, extraversion: '.0' }, domctlInterfaceVersion: 0x15 });
  const x = new SimTransport(store);
  await x.exclusive(() => {
    const h = x.current();
    h.createDomain({ domid: 4, maxPages: 4 });
    const b = x.allocBuffer(24);
    writeEvtchnStatus(b.view, 0, { dom: 4, port: 0, status: 99, vcpu: 99, remoteDom: 0xffff, remotePort: 0xffffffff });
    t.is(x.hypercall(Hypercall.event_channel_op, [EvtchnOp.status, b.address]), 0);
    t.deepEqual([b.view.getUint32(8, true), b.view.getUint32(12, true)], [0, 0], 'closed, vcpu 0');
    t.is(x.hypercall(Hypercall.event_channel_op, [EvtchnOp.send, b.address]), -os.constants.errno.ENOSYS, 'dom0\'s own ports are not simulated');
    t.is(x.hypercall(Hypercall.event_channel_op, [EvtchnOp.status, 0x1234n]), -os.constants.errno.EFAULT);
  });
  store.close();
});

test('ports and pending events live in the folder: another process binds and rings', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-evtchn-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const hv = new SimHypervisor({ dir });
  const owner = await hv.createDomain({ maxPages: 4 });
  const b = await hv.createDomain({ maxPages: 4 });
  const port = await hv.evtchnAllocUnbound(owner, b);
  const child = `
    const { SimHypervisor } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      const local = await hv.guestEvtchnBindInterdomain(${b}, ${owner}, ${port});
      await hv.guestEvtchnSend(${b}, local);
      console.log(local);
      await hv.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const local = Number((await run(process.execPath, ['-e', child])).stdout.trim());
  t.deepEqual(await hv.evtchnStatus(owner, port), { state: 'interdomain', remoteDom: b, remotePort: local });
  t.true(await hv.guestEvtchnTakePending(owner, port), 'the child\'s ring is pending here');
  await hv.close();
});
