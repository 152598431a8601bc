/**
 * The daemon loop: watches @releaseDomain and, on each firing, releases what dead domains held
 * (an owner that died with borrowers left turns its region orphaned): `reconcile({ scope:
 * 'dead-domains' })`, which reads the index of the domains that are gone, not the whole host.
 * The watch's initial firing makes it reconcile the whole host at start (intents of dead
 * processes rolled back, the index checked). When
 * xenstored goes away (restart, live update, crash) it reconnects with backoff, and the new
 * watch's initial firing reconciles what happened meanwhile.
 *
 *   const ac = new AbortController();
 *   await runDaemon({ connect: () => connect(), hypervisor: hv, signal: ac.signal, onEvent: console.log });
 */
import { XenstoreWireError, type XenstoreClient } from '../../xenstore-wire';
import type { Hypervisor } from '../hypervisor/types';
import { SharedMemoryManager } from './manager';
import type { ManagerOptions, ReconcileAction } from './types';

export type DaemonEvent =
  | { type: 'connected'; path: string; attempt: number }
  | { type: 'reconciled'; trigger: 'connect' | '@releaseDomain'; actions: ReconcileAction[] }
  | { type: 'disconnected'; code: string; message: string }
  | { type: 'error'; during: 'connect' | 'reconcile' | 'watch'; code?: string; message: string; error: unknown }
  | { type: 'stopped' };

export interface DaemonOptions {
  /** Opens a new connection to xenstored (called again after each loss). */
  connect: () => Promise<XenstoreClient>;
  hypervisor: Hypervisor;
  root?: string;
  /** Stops the loop; runDaemon() then resolves. */
  signal?: AbortSignal;
  onEvent?: (e: DaemonEvent) => void;
  /** First delay before reconnecting; doubles up to 5 s. Default 100 ms. */
  reconnectDelayMs?: number;
  /** Passed to the manager (lockWaitMs, transaction policy ...). */
  manager?: Omit<ManagerOptions, 'xenstore' | 'hypervisor' | 'root'>;
}

function errorInfo(e: unknown): { code?: string; message: string } {
  const err = e as { code?: string; message?: string };
  return { code: err?.code, message: err?.message ?? String(e) };
}

/** Runs until `signal` aborts. Never rejects for xenstore or hypervisor errors: it reports them. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const emit = (e: DaemonEvent): void => opts.onEvent?.(e);
  const base = opts.reconnectDelayMs ?? 100;
  let delay = base;
  let attempt = 0;
  const aborted = (): boolean => opts.signal?.aborted === true;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (aborted()) return resolve();
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        opts.signal?.removeEventListener('abort', done);
        resolve();
      }
      opts.signal?.addEventListener('abort', done);
    });

  while (!aborted()) {
    attempt++;
    let xs: XenstoreClient;
    try {
      xs = await opts.connect();
    } catch (e) {
      emit({ type: 'error', during: 'connect', ...errorInfo(e), error: e });
      await pause(delay);
      delay = Math.min(5000, delay * 2);
      continue;
    }
    const stop = (): void => void xs.destroy();
    opts.signal?.addEventListener('abort', stop);
    emit({ type: 'connected', path: xs.transport.path, attempt });
    const manager = new SharedMemoryManager({ ...(opts.manager ?? {}), xenstore: xs, hypervisor: opts.hypervisor, root: opts.root });
    let first = true;
    try {
      for await (const _event of xs.watch('@releaseDomain')) {
        void _event;
        if (aborted()) break;
        const trigger = first ? 'connect' : '@releaseDomain';
        first = false;
        try {
          // At connect, the whole host (and the index checked); after @releaseDomain, the dead
          // domains' own records only.
          const report = await manager.reconcile(trigger === 'connect' ? {} : { scope: 'dead-domains' });
          emit({ type: 'reconciled', trigger, actions: report.actions });
          delay = base;
        } catch (e) {
          // A lost connection ends the watch too: the loop reconnects. Anything else is reported
          // and the next firing tries again.
          if (e instanceof XenstoreWireError && e.kind === 'connection') throw e;
          emit({ type: 'error', during: 'reconcile', ...errorInfo(e), error: e });
        }
      }
    } catch (e) {
      if (!aborted()) {
        if (e instanceof XenstoreWireError && e.kind === 'connection') emit({ type: 'disconnected', code: e.code, message: e.message });
        else emit({ type: 'error', during: 'watch', ...errorInfo(e), error: e });
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      manager.dispose();
      await xs.destroy();
    }
    if (!aborted()) {
      // The watch ended without an error (the daemon reset it): treat it as a loss too.
      await pause(delay);
      delay = Math.min(5000, delay * 2);
    }
  }
  emit({ type: 'stopped' });
}
