/**
 * `xen-sshm destroy NAME|DOMID`: release the domain's static shared memory, then `xl destroy`
 * it (with --sandbox, the sandbox plays xl). Regions it owns that others still map turn
 * orphaned (their pages stay valid until those release them too), as with `release`.
 * --no-cleanup skips the release, as plain `xl destroy` would, for a running `xen-sshm daemon`
 * to clean up after.
 */
import type { Command } from 'commander';
import type { DestroyResult } from '../../toolstack';
import { UsageError } from '../handle-error';
import { optionsOf, printJSON, withCommonOptions, withContext } from '../options';
import { renderRelease } from './release';

interface DestroyOptions {
  cleanup?: boolean;
  xl?: string;
}

export function renderDestroy(r: DestroyResult): string {
  return (r.released ? renderRelease(r.released) : '') + `destroyed ${r.domain} (d${r.domid})\n`;
}

export function registerDestroy(program: Command): void {
  withCommonOptions(
    program
      .command('destroy')
      .summary("release a domain's shared memory, then xl destroy it")
      .description("Release a domain's static shared memory, then destroy it with xl (in the sandbox: on the simulated host).")
      .argument('<domain>', 'domain name or domid')
      .option('--no-cleanup', 'do not release first, as plain xl destroy (a running xen-sshm daemon cleans up)')
      .option('--xl <path>', 'the xl command (default: xl on PATH)'),
  )
    .addHelpText('after', '\nExamples:\n  xen-sshm destroy vm2\n  xen-sshm destroy vm2 --sandbox\n')
    .action(async (which: string, _o: unknown, self: Command) => {
      const opts = optionsOf<DestroyOptions>(self);
      const sandbox = !!opts.sandbox || opts.sandboxDir !== undefined;
      if (sandbox && opts.xl !== undefined) throw new UsageError('--xl is for a real host: the sandbox plays xl itself', { option: '--xl' });
      const { destroyDomainWithShm, XlToolstack } = require('../../toolstack') as typeof import('../../toolstack');
      const { SandboxToolstack } = require('../../sandbox/toolstack') as typeof import('../../sandbox/toolstack');
      await withContext(opts, async (ctx) => {
        const toolstack = ctx.sandbox ? new SandboxToolstack(ctx.xs, ctx.sim!) : new XlToolstack({ xl: opts.xl });
        const r = await destroyDomainWithShm({ toolstack, manager: ctx.manager, domain: which, release: opts.cleanup !== false });
        if (opts.json) printJSON({ ok: true, ...r });
        else process.stdout.write(renderDestroy(r));
      });
    });
}
