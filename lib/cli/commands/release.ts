/**
 * `xen-sshm release --domid N | --domain NAME [--id ID...] [--force]`: undo what apply did for
 * a domain: its borrowed mappings are removed, then the regions it owns are freed. A region
 * whose borrowers remain turns orphaned (their pages stay valid until they are released too),
 * unless --force releases the borrowers first. A domain that no longer exists counts as
 * already unmapped.
 */
import type { Command } from 'commander';
import { UsageError } from '../handle-error';
import type { ReleaseResult } from '../../manager';
import { attachProgress, optionsOf, parseDomid, printJSON, progressWanted, withCommonOptions, withContext } from '../options';

interface ReleaseOptions {
  domid?: string;
  domain?: string;
  id?: string[];
  force?: boolean;
}

export function renderRelease(r: ReleaseResult): string {
  if (r.entries.length === 0) return `d${r.domid}: nothing to release\n`;
  return r.entries
    .map((e) => {
      const gone = e.hypercalls ? '' : ` (d${e.domid} no longer runs: nothing to unmap)`;
      if (e.action === 'orphaned') return `${e.id}: d${e.domid} released as owner; borrowers remain, region orphaned${gone}\n`;
      return `${e.id}: d${e.domid} released as ${e.role}${gone}\n`;
    })
    .join('');
}

export function registerRelease(program: Command): void {
  withCommonOptions(
    program
      .command('release')
      .summary('undo what apply did for a domain')
      .description("Release a domain's static shared memory: borrowed mappings first, then the regions it owns.")
      .option('--domid <n>', 'the domain id')
      .option('--domain <name>', 'the domain name')
      .option('--id <id...>', 'only these region IDs')
      .option('--force', 'release the borrowers of an owned region first instead of leaving it orphaned'),
  )
    .addHelpText('after', '\nExamples:\n  xen-sshm release --domid 5\n  xen-sshm release --domain vm1 --force\n  xen-sshm release --domain vm2 --id ID1\n')
    .action(async (_o: unknown, self: Command) => {
      const opts = optionsOf<ReleaseOptions>(self);
      if ((opts.domid === undefined) === (opts.domain === undefined)) throw new UsageError('give exactly one of --domid N or --domain NAME');
      const given = opts.domid !== undefined ? parseDomid(opts.domid) : undefined;
      await withContext(opts, async (ctx) => {
        const { findDomainByName } = (require('../../manager/domains') as typeof import('../../manager/domains'));
        const domid = given ?? (await findDomainByName(ctx.xs, opts.domain!));
        const stop = attachProgress(ctx.manager, { enabled: progressWanted(opts) });
        try {
          const result = await ctx.manager.release({ domid, ids: opts.id, force: !!opts.force });
          if (opts.json) printJSON({ ok: true, ...result });
          else process.stdout.write(renderRelease(result));
        } finally {
          stop();
        }
      });
    });
}
