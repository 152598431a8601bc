/**
 * `xen-sshm create CFG --sandbox`: in the sandbox, play `xl create -p CFG`: a simulated domain
 * with the config's name and memory, its /local/domain/<domid> records, and INTRODUCE. On a
 * real host it refuses and points to xl.
 */
import type { Command } from 'commander';
import { readXlConfig } from '../../config/xl-reader';
import { ManagerError } from '../../manager/errors';
import { createDomain, domainSpecFromConfig } from '../../sandbox/toolstack';
import { CommonOptions, parseDomid, printJSON, withCommonOptions, withContext } from '../options';

interface CreateOptions extends CommonOptions {
  domid?: string;
  maxmem?: string;
}

export function realHostRefusal(what: 'create' | 'destroy'): ManagerError {
  const xl = what === 'create' ? 'xl create -p CFG' : 'xl destroy NAME';
  return new ManagerError({
    code: 'EPERM', reason: 'domain',
    message: `${what} only plays the toolstack in the sandbox; on a real host domains are made by xl`,
    hint: `run \`${xl}\`${what === 'create' ? ', then xen-sshm apply CFG, then xl unpause NAME' : ' (with xen-sshm daemon running, its shared memory is released)'}; or add --sandbox`,
  });
}

export function registerCreate(program: Command): void {
  withCommonOptions(
    program
      .command('create')
      .summary('sandbox only: play `xl create -p CFG` (a paused simulated domain)')
      .description("In the sandbox, create a simulated domain from an xl config's name and memory, as `xl create -p` would.")
      .argument('<cfg>', 'xl config file')
      .option('--domid <n>', 'the domid to use (default: the next free one)')
      .option('--maxmem <mib>', "the domain's max memory in MiB (default: the config's maxmem or memory)"),
  )
    .addHelpText('after', '\nExample:\n  xen-sshm create vm1.cfg --sandbox && xen-sshm apply vm1.cfg --sandbox\n')
    .action(async (file: string, opts: CreateOptions) => {
      if (!opts.sandbox && !opts.sandboxDir && !opts.sim) throw realHostRefusal('create');
      const spec = domainSpecFromConfig(await readXlConfig(file));
      if (opts.domid !== undefined) spec.domid = parseDomid(opts.domid);
      if (opts.maxmem !== undefined) {
        if (!/^\d+$/.test(opts.maxmem)) throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: `--maxmem ${JSON.stringify(opts.maxmem)} is not a number of MiB` });
        spec.maxmemMiB = Number(opts.maxmem);
      }
      await withContext(opts, async (ctx) => {
        if (!ctx.sim) throw realHostRefusal('create');
        const d = await createDomain(ctx.xs, ctx.sim, spec);
        if (opts.json) printJSON({ ok: true, ...d });
        else process.stdout.write(`created ${d.name} as d${d.domid} (${d.memoryMiB} MiB, max ${d.maxPages / 256} MiB), paused as after xl create -p\n`);
      });
    });
}
