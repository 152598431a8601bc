/**
 * `xen-sshm reconcile`: roll back what crashed runs left half-done (their lock's process is
 * gone), and release what domains that no longer run held. Intents of live processes are left
 * alone. Prints what it did.
 */
import type { Command } from 'commander';
import type { ReconcileReport } from '../../manager';
import { optionsOf, printJSON, withCommonOptions, withContext } from '../options';

interface ReconcileCliOptions {
  deadDomains?: boolean;
}

const WORDS: Record<string, string> = {
  'rolled-back': 'rolled back the apply left by',
  'completed-release': 'finished the release left by',
  released: 'released (the domain no longer runs)',
  orphaned: 'orphaned (the owner no longer runs, borrowers remain)',
  'skipped-live': 'left alone: its process still runs,',
  'skipped-unknown': 'left alone: locked by another host,',
};

export function renderReconcile(r: ReconcileReport): string {
  if (r.actions.length === 0) return 'nothing to reconcile\n';
  return r.actions.map((a) => `${a.id}: d${a.domid} (${a.role}, ${a.state}): ${WORDS[a.action]}${a.lock ? ` ${a.lock}` : ''}\n`).join('');
}

export function registerReconcile(program: Command): void {
  withCommonOptions(
    program
      .command('reconcile')
      .summary('roll back what crashed runs left, release what dead domains held')
      .description('Roll back intents whose process is gone, and release what domains that no longer run held.')
      .option('--no-dead-domains', 'only roll back intents; leave the records of dead domains'),
  ).action(async (_o: unknown, self: Command) => {
    const opts = optionsOf<ReconcileCliOptions>(self);
    await withContext(opts, async (ctx) => {
      const report = await ctx.manager.reconcile({ deadDomains: opts.deadDomains !== false });
      if (opts.json) printJSON({ ok: true, ...report });
      else process.stdout.write(renderReconcile(report));
    });
  });
}
