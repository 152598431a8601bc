/**
 * A simulated guest's doorbell (docs/doorbells.md): what xen-sshm-guest does in a real domU,
 * played on the sandbox. The guest reads its own mirror through its own, unprivileged xenstore
 * connection (the sandbox's DIR/domain-<N>.socket) and uses the simulated host's event channels
 * as itself (SimHypervisor.guestEvtchn*): a borrower binds the owner's port (bind_interdomain);
 * the owner uses the port dom0 made in it. Ringing is EVTCHNOP_send; waiting is the guest's
 * upcall noticing its pending bit, which the sim keeps in its folder, so guests in other
 * processes of the same sandbox ring each other too.
 *
 *   const vm2 = await SimGuest.open(sandbox, sim, 2);
 *   const bell = await vm2.doorbell('ID1');          // binds d1's port for d2
 *   await bell.wait(1000);                           // true once vm1 rang
 */
import { connect, XenstoreError, type XenstoreClient } from '../../xenstore-wire';
import type { SimHypervisor } from '../hypervisor/sim';
import { ManagerError } from '../manager';
import { parseDomid, parsePort, StorePaths } from '../store';
import type { Sandbox } from './sandbox';

export interface SimDoorbell {
  /** The region and the two ends: this guest's port, and the peer domain. */
  readonly id: string;
  readonly domid: number;
  readonly peer: number;
  readonly port: number;
  /** EVTCHNOP_send on this guest's port: the peer's end turns pending. */
  ring(): Promise<void>;
  /** Waits (up to timeoutMs) for a notification; true when one came, which it consumes. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Consumes a notification already pending (Xen sets the borrower's port pending at bind). */
  drain(): Promise<boolean>;
  /** EVTCHNOP_close of a borrower's bound port (the owner's goes back to unbound); the owner's stays. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class SimGuest {
  private constructor(
    readonly domid: number,
    private readonly xs: XenstoreClient,
    private readonly hv: SimHypervisor,
  ) {}

  /** Connects as guest `domid` (it must be introduced in the sandbox's xenstored). */
  static async open(sandbox: Sandbox, hv: SimHypervisor, domid: number): Promise<SimGuest> {
    return new SimGuest(domid, await connect({ path: sandbox.domainSocketPath(domid) }), hv);
  }

  /** A key of this guest's mirror of region `id`, read as the guest (null when absent). */
  private async key(id: string, rel: string): Promise<string | null> {
    const path = `${new StorePaths().mirror(this.domid, id)}/${rel}`;
    try {
      return (await this.xs.read(path)).toString('utf8');
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * The doorbell of region `id` as this guest's mirror names it: a borrower binds the owner's
   * port; an owner takes the port dom0 made for borrower `peer` (the only one when not given).
   */
  async doorbell(id: string, peer?: number): Promise<SimDoorbell> {
    const mirror = new StorePaths().mirror(this.domid, id);
    const role = await this.key(id, 'role');
    if (role === null) throw new ManagerError({ code: 'ENOENT', reason: 'not-found', id, domid: this.domid, path: mirror, message: `d${this.domid} has no mirror of ${id}` });
    if (role === 'borrower') {
      const [owner, port] = await Promise.all([this.key(id, 'owner'), this.key(id, 'doorbell')]);
      if (owner === null || port === null) throw new ManagerError({ code: 'ENOENT', reason: 'not-found', id, domid: this.domid, path: `${mirror}/doorbell`, message: `${id} gives d${this.domid} no doorbell` });
      const o = parseDomid(owner, `${mirror}/owner`);
      const local = await this.hv.guestEvtchnBindInterdomain(this.domid, o, parsePort(port, `${mirror}/doorbell`));
      return this.bell(id, o, local, true);
    }
    let borrowers: string[];
    try {
      borrowers = await this.xs.directory(`${mirror}/doorbells`);
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') borrowers = [];
      else throw e;
    }
    const chosen = peer !== undefined ? String(peer) : borrowers.length === 1 ? borrowers[0] : null;
    if (chosen === null || !borrowers.includes(chosen)) {
      throw new ManagerError({
        code: borrowers.length > 1 && peer === undefined ? 'EINVAL' : 'ENOENT', reason: 'not-found', id, domid: this.domid, path: `${mirror}/doorbells`,
        message: `${id}: d${this.domid} has doorbells for ${borrowers.length === 0 ? 'no borrower' : borrowers.map((b) => `d${b}`).join(', ')}${peer !== undefined ? `, not d${peer}` : ': name one'}`,
      });
    }
    const port = parsePort((await this.key(id, `doorbells/${chosen}`)) ?? '', `${mirror}/doorbells/${chosen}`);
    return this.bell(id, parseDomid(chosen, `${mirror}/doorbells/${chosen}`), port, false);
  }

  private bell(id: string, peer: number, port: number, bound: boolean): SimDoorbell {
    const { hv, domid } = this;
    return {
      id, domid, peer, port,
      ring: () => hv.guestEvtchnSend(domid, port),
      drain: () => hv.guestEvtchnTakePending(domid, port),
      async wait(timeoutMs) {
        // The sim has no upcall to block on: its pending bit is looked at every few ms.
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if (await hv.guestEvtchnTakePending(domid, port)) return true;
          if (Date.now() >= deadline) return false;
          await sleep(2);
        }
      },
      close: async () => {
        if (bound) await hv.guestEvtchnClose(domid, port);
      },
    };
  }

  async close(): Promise<void> {
    await this.xs.close();
  }
}
