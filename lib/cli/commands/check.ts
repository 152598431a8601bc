/**
 * `xen-sshm check CFG... [--json] [--dom0less]`: validate xl configs alone and together and
 * print the plan (who owns each ID, who borrows it, where). Exit 0 when valid, 1 otherwise.
 * Collecting (lib/config/check.ts) is kept apart from printing, so --json is the same data.
 */
import type { Command } from 'commander';
import type { CheckResult } from '../../config/check';
import type { Plan } from '../../config/plan';
import { elide, printable } from '../handle-error';
import { optionsOf } from '../options';
import { drawTable } from '../table';

const SYNTAX_HELP = `
Shared memory is declared in the domains' own xl config files, in either spelling:

  name = "vm1"
  static_shm = [ "id=ID1, begin=0x40000000, size=1M, role=owner, prot=rw, cache_policy=ARM_normal" ]

  name = "vm2"
  static_shm = [ "id=ID1, begin=0x50000000, size=0x1000, offset=0x2000" ]   # role=borrower

  name = "vm3"
  static_shared_mem = [ "0x40000000-0x40100000 = ID2", "0x40100000+64K = ID3" ]

static_shm keys: id, begin, end (exclusive) or size, offset (borrowers), role=owner|borrower
(master|slave accepted; borrower is the default), prot=r|rw, cache_policy=ARM_normal|x86_normal
(owners), doorbell=yes|no (an event channel per borrower: the owner decides, a borrower follows
or declines). static_shared_mem: "BEGIN-END = ID" or "BEGIN+SIZE = ID"; the first config given
that lists an ID owns it, the others borrow all of it (--doorbell: doorbell=yes for them). Numbers are decimal or 0x hex, sizes and
offsets may end in K, M or G; everything is 4 KiB aligned. IDs: letters, digits, _ (<= 128).

Check the configs of all the domains that share memory together: one owner per ID, sizes and
windows fit, and (stock Xen, set_target) each borrower borrows from a single owner.
See docs/config.md for every rule.

Examples:
  xen-sshm check vm1.cfg vm2.cfg vm3.cfg
  xen-sshm check --json /etc/xen/*.cfg
`;

function printPlan(plan: Plan): string {
  const { hex, humanSize } = require('../../config/numbers') as typeof import('../../config/numbers');
  const rows = plan.regions.map((r) => {
    const o = r.owner;
    const ownerText = `${o.domain}\n${o.role === 'auto' ? 'first to apply' : 'owner'}, ${o.prot}${o.cachePolicy ? `, ${o.cachePolicy}` : ''}${o.doorbell ? '\ndoorbell: a port per borrower' : ''}`;
    const bell = (b: { doorbell: boolean }): string => (o.doorbell ? (b.doorbell ? ', doorbell' : ', no doorbell') : '');
    const range = `${hex(o.begin)}-${hex(o.end)}\n${humanSize(o.size)}`;
    const borrowers = r.borrowers.length
      ? r.borrowers.map((b) => `${b.domain} ${hex(b.begin)}-${hex(b.end)} offset ${hex(b.offset)} (${humanSize(b.size)}, ${b.prot}${bell(b)})`).join('\n')
      : '(none)';
    return [r.id, ownerText, range, borrowers];
  });
  const lines = [
    `${plan.domains.length} domain${plan.domains.length === 1 ? '' : 's'} (${plan.domains.map((d) => d.name).join(', ')}), ` +
      `${plan.regions.length} shared memory region${plan.regions.length === 1 ? '' : 's'}: OK`,
  ];
  if (plan.regions.length) lines.push(drawTable(['ID', 'Owner', 'Owner range', 'Borrowers (range, offset into the region)'], rows));
  if (plan.setTarget.length) {
    lines.push(
      'Borrowing domUs need XEN_DOMCTL_set_target (stock Xen; once per domain, never undone, gives device-model rights over the owner): ' +
        plan.setTarget.map((s) => `${s.borrower} -> ${s.owner}`).join(', '),
    );
  }
  return lines.join('\n') + '\n';
}

export function renderCheck(result: CheckResult, json: boolean): { stdout: string; stderr: string } {
  const { formatWarning } = require('../../config/errors') as typeof import('../../config/errors');
  const { planToJSON } = require('../../config/plan') as typeof import('../../config/plan');
  if (json) {
    const body = { ok: result.ok, plan: result.ok ? planToJSON(result.plan) : null, errors: result.errors.map((e) => e.toJSON()), warnings: result.warnings };
    return { stdout: JSON.stringify(body, null, 2) + '\n', stderr: '' };
  }
  // Config text echoed in messages is shown escaped and each message bounded, as by the handler.
  const shown = (text: string): string => printable(elide(text)) + '\n';
  const warnings = result.warnings.map((w) => shown(formatWarning(w))).join('');
  if (result.ok) return { stdout: printPlan(result.plan), stderr: warnings };
  const n = result.errors.length;
  const errors = result.errors.map((e) => shown(e.format())).join('');
  return { stdout: '', stderr: warnings + errors + `${n} error${n === 1 ? '' : 's'}\n` };
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .summary('validate xl configs and print the shared memory plan')
    .description('Validate the static shared memory of xl config files, each alone and all together, and print the plan.')
    .argument('<cfg...>', 'xl config files of the domains that share memory')
    .option('--dom0less', 'also check the limits of a dom0less device-tree export (IDs <= 15 characters)')
    .option('--doorbell', 'doorbell=yes for every entry that does not say (as apply --doorbell; static_shared_mem)')
    .addHelpText('after', SYNTAX_HELP + '\nWith --json: { ok, plan, errors, warnings } on stdout.\n')
    .action(async (files: string[], _o: unknown, cmd: Command) => {
      const opts = optionsOf<{ dom0less?: boolean; doorbell?: boolean }>(cmd);
      const { checkConfigFiles } = (require('../../config/check') as typeof import('../../config/check'));
      const result = await checkConfigFiles(files, { dom0less: !!opts.dom0less, doorbell: !!opts.doorbell });
      const out = renderCheck(result, !!opts.json);
      if (out.stderr) process.stderr.write(out.stderr);
      if (out.stdout) process.stdout.write(out.stdout);
      process.exitCode = result.ok ? 0 : 1;
    });
}
