/**
 * `xen-sshm apply CFG [--domid N | --domain NAME]`: give a (paused) domain the static shared
 * memory its xl config declares. Owners get frames populated, borrowers get the owner's pages
 * mapped; every record is changed in xenstore transactions. Run between `xl create -p` and
 * `xl unpause`.
 */
import type { Command } from 'commander';
import { hex, humanSize } from '../../config/numbers';
import type { ApplyResult } from '../../manager';
import { PAGE_SIZE_N, PAGES_PER_MIB } from '../../vocabulary';
import { ApplyCliOptions, applyFlags, attachProgress, optionsOf, parseDomid, printJSON, progressWanted, withApplyOptions, withCommonOptions, withContext } from '../options';

interface ApplyOptions extends ApplyCliOptions {
  domid?: string;
  domain?: string;
}

const HELP = `
The domain must exist: create it paused, apply, then let it run.

  xl create -p /etc/xen/vm1.cfg
  xen-sshm apply /etc/xen/vm1.cfg --domain vm1
  xl unpause vm1

(\`xen-sshm create /etc/xen/vm1.cfg\` does all three, and undoes them if one fails.)

For static_shared_mem the first domain to apply an ID owns it; apply owners before borrowers.
An owner's regions are populated in it and count against its max memory: when they do not
fit, apply says how much is missing; --raise-maxmem raises the max itself (Debian's xl 4.17
cannot on Arm).
A domU borrower needs XEN_DOMCTL_set_target(borrower -> owner) on stock Xen: give
--allow-set-target to consent (once per domain, never undone, and the borrower gets
device-model rights over all of the owner's memory). On x86 an HVM/PVH domU can borrow from
Xen 4.19 on (before, and for PV domains, it is refused); dom0 reads and writes any region with
\`xen-sshm peek\`.

Doorbells: doorbell=yes in an owner's static_shm entry (or --doorbell for static_shared_mem)
gives each borrower an event channel port in the owner that only it may bind; the guests'
mirrors name it (docs/doorbells.md). dom0 cannot close such a port: it stays until the owner
dies, and a borrower applied again reuses it.

Applying the same config again changes nothing. If anything fails, what this run created is
undone and the command exits with 1.

Examples:
  xen-sshm apply vm1.cfg --domid 5
  xen-sshm apply vm2.cfg --domain vm2 --allow-set-target
  xen-sshm apply vm1.cfg --domain vm1 --doorbell         (static_shared_mem: a doorbell per borrower)
  xen-sshm apply vm1.cfg --sandbox --raise-maxmem      (in the sandbox: after xen-sshm create vm1.cfg --sandbox)
`;

export function renderApply(r: ApplyResult): string {
  const who = `${r.domain ?? 'domain'} (d${r.domid})`;
  if (r.entries.length === 0) return `${who}: the config declares no shared memory\n`;
  const lines = r.entries.map((e) => {
    const size = humanSize(BigInt(e.pages) * PAGE_SIZE_N);
    const where = `${hex(e.begin)}-${hex(e.end)}`;
    if (e.role === 'owner') {
      const bell = e.doorbell ? ', with a doorbell' : '';
      return e.action === 'unchanged' ? `${e.id}: owner, already in place at ${where} (${size})${bell}` : `${e.id}: owner, ${size} populated at ${where}${bell}`;
    }
    const st = e.setTarget === 'done' ? `; set_target(d${r.domid} -> d${e.owner}) made and recorded` : '';
    const bell = e.port !== undefined ? `; doorbell: port ${e.port} of d${e.owner}` : '';
    return e.action === 'unchanged'
      ? `${e.id}: borrower of d${e.owner}, already mapped at ${where}${bell}`
      : `${e.id}: borrower of d${e.owner}, ${size} mapped at ${where} (offset ${hex(e.offset)} in the region)${st}${bell}`;
  });
  if (r.maxMemRaised) {
    const { fromPages, toPages } = r.maxMemRaised;
    lines.unshift(`max memory raised from ${fromPages / PAGES_PER_MIB} to ${toPages / PAGES_PER_MIB} MiB for the frames it owns (XEN_DOMCTL_max_mem)`);
  }
  return `${who}:\n` + lines.map((l) => `  ${l}\n`).join('');
}

export function registerApply(program: Command): void {
  const cmd = withCommonOptions(
    program
      .command('apply')
      .summary("set up a domain's static shared memory from its xl config")
      .description('Set up the static shared memory an xl config declares, for a domain that exists (created paused).')
      .argument('<cfg>', "the domain's xl config file")
      .option('--domid <n>', 'the domain id')
      .option('--domain <name>', 'the domain name (default: the config\'s name)'),
  );
  withApplyOptions(cmd)
    .addHelpText('after', HELP)
    .action(async (file: string, _o: unknown, self: Command) => {
      const opts = optionsOf<ApplyOptions>(self);
      const domid = opts.domid !== undefined ? parseDomid(opts.domid) : undefined;
      const { readXlConfig } = (require('../../config/xl-reader') as typeof import('../../config/xl-reader'));
      const config = await readXlConfig(file);
      await withContext(opts, async (ctx) => {
        const stop = attachProgress(ctx.manager, { enabled: progressWanted(opts) });
        try {
          const result = await ctx.manager.apply({ config, domid, domain: opts.domain, ...applyFlags(opts) });
          if (opts.json) printJSON({ ok: true, ...result });
          else process.stdout.write(renderApply(result));
        } finally {
          stop();
        }
      });
    });
}
