/**
 * `xen-sshm daemon`: watch @releaseDomain and clean up after domains that die: their borrowed
 * mappings are released, regions of a dead owner turn orphaned while borrowers remain, and
 * intents of crashed runs are rolled back. Reconnects (and reconciles) when xenstored
 * restarts. Runs until SIGINT or SIGTERM; one line per event (JSON lines with --json).
 */
import type { Command } from 'commander';
import type { DaemonEvent } from '../../manager';
import { hostOf, optionsOf, toJSON, withCommonOptions } from '../options';
import { renderReconcile } from './reconcile';

export function renderDaemonEvent(e: DaemonEvent): string {
  const t = new Date().toISOString();
  switch (e.type) {
    case 'connected':
      return `${t} connected to ${e.path}\n`;
    case 'reconciled':
      if (e.actions.length === 0) return `${t} ${e.trigger === 'connect' ? 'reconciled at connect' : '@releaseDomain'}: nothing to do\n`;
      return renderReconcile({ actions: e.actions }).split('\n').filter(Boolean).map((l) => `${t} ${e.trigger}: ${l}\n`).join('');
    case 'disconnected':
      return `${t} xenstored went away (${e.code}): reconnecting\n`;
    case 'error':
      return `${t} error during ${e.during}: ${e.message}\n`;
    case 'stopped':
      return `${t} stopped\n`;
  }
}

export function registerDaemon(program: Command): void {
  withCommonOptions(
    program
      .command('daemon')
      .summary('clean up after dying domains (watches @releaseDomain)')
      .description('Watch @releaseDomain and release what dying domains held; reconnect and reconcile when xenstored restarts.'),
  )
    .addHelpText('after', '\nRun it as a service after xenstored: `xen-sshm install-units` installs xen-sshm.service\n(reconcile, then daemon).\n')
    .action(async (_o: unknown, self: Command) => {
      const opts = optionsOf(self);
      const host = await hostOf(opts);
      // The real hypervisor is opened at once: a daemon that cannot release should not start.
      const { hv } = await host.openHypervisor({ eager: true });
      const { runDaemon } = (require('../../manager') as typeof import('../../manager'));
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await runDaemon({
          connect: () => host.connect(),
          hypervisor: hv,
          root: opts.root,
          signal: ac.signal,
          onEvent: (e) => {
            if (opts.json) {
              const { error: _error, ...rest } = e as DaemonEvent & { error?: unknown };
              process.stdout.write(toJSON({ time: new Date().toISOString(), ...rest }).replace(/\n\s*/g, ' ').trim() + '\n');
            } else process.stdout.write(renderDaemonEvent(e));
          },
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await hv.close();
      }
    });
}
