/**
 * `xen-sshm create CFG [apply options]`: a domain and its static shared memory in one command,
 * as `xl create -p CFG`, `xen-sshm apply CFG`, `xl unpause`. When a step fails, what the earlier
 * ones did is undone (release, then `xl destroy` of the half-made domain) and the error names
 * the step. On a real host it runs xl (PATH, or --xl); with --sandbox the sandbox plays xl on
 * its simulated host, with the same steps.
 */
import type { Command } from 'commander';
import { UsageError } from '../handle-error';
import type { CreateResult } from '../../toolstack';
import { ApplyCliOptions, applyFlags, attachProgress, optionsOf, parseDomid, printJSON, progressWanted, withApplyOptions, withCommonOptions, withContext } from '../options';
import { renderApply } from './apply';

interface CreateOptions extends ApplyCliOptions {
  xl?: string;
  paused?: boolean;
  apply?: boolean;
  domid?: string;
  maxmem?: string;
}

const HELP = `
On a real host (dom0), for each domain, owners before borrowers:

  xen-sshm create /etc/xen/vm1.cfg --raise-maxmem        # xl create -p, apply, xl unpause
  xen-sshm create /etc/xen/vm2.cfg --allow-set-target
  xen-sshm destroy vm2                                   # release, then xl destroy

The same in the sandbox (no Xen; the sandbox plays xl on a simulated host):

  xen-sshm create vm1.cfg --raise-maxmem --sandbox

If a step fails, the earlier ones are undone (release, then xl destroy of the half-made domain),
and the command exits with 1 naming the step (check, create, apply, unpause).
--paused leaves the domain paused (start it with xl unpause); --no-apply only creates it.
The apply options are those of \`xen-sshm apply\` (see xen-sshm apply --help).
`;

export function renderCreate(r: CreateResult): string {
  let out = `created ${r.domain} as d${r.domid}${r.detail ? ` (${r.detail})` : ''}${r.toolstack === 'xl' ? ' with xl create -p' : ''}\n`;
  if (r.applied) out += renderApply(r.applied);
  out += r.paused ? `${r.domain} left paused${r.toolstack === 'xl' ? `: xl unpause ${r.domain} starts it` : ''}\n` : `unpaused ${r.domain}\n`;
  return out;
}

export function registerCreate(program: Command): void {
  const cmd = withCommonOptions(
    program
      .command('create')
      .summary('create a domain with its shared memory: xl create -p, apply, xl unpause (undone if a step fails)')
      .description('Create a domain from its xl config, apply its static shared memory and unpause it; undo everything if a step fails.')
      .argument('<cfg>', "the domain's xl config file")
      .option('--paused', 'leave the domain paused')
      .option('--no-apply', 'only create the domain (as xl create -p), apply nothing')
      .option('--xl <path>', 'the xl command (default: xl on PATH)')
      .option('--domid <n>', 'sandbox only: the domid to use (default: the next free one)')
      .option('--maxmem <mib>', "sandbox only: the domain's max memory in MiB (default: the config's maxmem or memory)"),
  );
  withApplyOptions(cmd)
    .addHelpText('after', HELP)
    .action(async (file: string, _o: unknown, self: Command) => {
      const opts = optionsOf<CreateOptions>(self);
      const sandbox = !!opts.sandbox || opts.sandboxDir !== undefined;
      if (!sandbox && (opts.domid !== undefined || opts.maxmem !== undefined)) {
        throw new UsageError('--domid and --maxmem are for the sandbox: on a real host xl takes them from the config', { option: opts.domid !== undefined ? '--domid' : '--maxmem' });
      }
      if (sandbox && opts.xl !== undefined) throw new UsageError('--xl is for a real host: the sandbox plays xl itself', { option: '--xl' });
      const overrides: { domid?: number; maxmemMiB?: number } = {};
      if (opts.domid !== undefined) overrides.domid = parseDomid(opts.domid);
      const { memoryMiB, SandboxToolstack } = require('../../sandbox/toolstack') as typeof import('../../sandbox/toolstack');
      if (opts.maxmem !== undefined) overrides.maxmemMiB = memoryMiB(opts.maxmem, '--maxmem');
      const { readXlConfig } = require('../../config/xl-reader') as typeof import('../../config/xl-reader');
      const config = await readXlConfig(file);
      const { createDomainWithShm, XlToolstack } = require('../../toolstack') as typeof import('../../toolstack');
      await withContext(opts, async (ctx) => {
        const toolstack = ctx.sandbox ? new SandboxToolstack(ctx.xs, ctx.sim!, overrides) : new XlToolstack({ xl: opts.xl });
        const stop = attachProgress(ctx.manager, { enabled: progressWanted(opts) });
        try {
          const r = await createDomainWithShm({
            toolstack, manager: ctx.manager, configPath: file, config,
            apply: opts.apply === false ? false : applyFlags(opts), paused: !!opts.paused,
          });
          if (opts.json) printJSON({ ok: true, ...r });
          else process.stdout.write(renderCreate(r));
        } finally {
          stop();
        }
      });
    });
}
