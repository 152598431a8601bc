/**
 * `xen-sshm destroy NAME|DOMID --sandbox`: in the sandbox, play `xl destroy`: the simulated
 * domain goes, its records go, and xenstored fires @releaseDomain. Then it does what a running
 * `xen-sshm daemon` would (unless --no-cleanup): release what the dead domain held. On a real
 * host it refuses and points to xl.
 */
import type { Command } from 'commander';
import { destroyDomain, resolveDomainArg } from '../../sandbox/toolstack';
import { CommonOptions, printJSON, withCommonOptions, withContext } from '../options';
import { realHostRefusal } from './create';
import { renderReconcile } from './reconcile';

interface DestroyOptions extends CommonOptions {
  cleanup?: boolean;
}

export function registerDestroy(program: Command): void {
  withCommonOptions(
    program
      .command('destroy')
      .summary('sandbox only: play `xl destroy` (then clean up as the daemon would)')
      .description('In the sandbox, destroy a simulated domain as `xl destroy` would, then release what it held.')
      .argument('<domain>', 'domain name or domid')
      .option('--no-cleanup', 'leave the shared memory records for a running xen-sshm daemon to clean'),
  ).action(async (which: string, opts: DestroyOptions) => {
    if (!opts.sandbox && !opts.sandboxDir && !opts.sim) throw realHostRefusal('destroy');
    await withContext(opts, async (ctx) => {
      if (!ctx.sim) throw realHostRefusal('destroy');
      const domid = await resolveDomainArg(ctx.xs, which);
      await destroyDomain(ctx.xs, ctx.sim, domid);
      const report = opts.cleanup === false ? { actions: [] } : await ctx.manager.reconcile({ scope: 'dead-domains' });
      if (opts.json) printJSON({ ok: true, domid, cleanup: report.actions });
      else process.stdout.write(`destroyed d${domid}\n` + (opts.cleanup === false ? '' : renderReconcile(report)));
    });
  });
}
