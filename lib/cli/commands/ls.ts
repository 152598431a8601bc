/**
 * `xen-sshm ls [--tree] [--json]`: every region, its owner, who maps it where and in which
 * state, and the set_target records. `--tree` prints the records as `xenstore-ls -f` would.
 * Reads xenstore, and asks Xen (EVTCHNOP_status) only for the live state of doorbell ports.
 */
import type { Command } from 'commander';
import { hex, humanSize } from '../../config/numbers';
import type { ListResult } from '../../manager';
import { optionsOf, printJSON, withCommonOptions, withContext } from '../options';
import { drawTable } from '../table';

interface LsOptions {
  tree?: boolean;
}

function domainLabel(r: ListResult, domid: number): string {
  const name = r.domains.find((d) => d.domid === domid)?.name;
  return name ? `${name} (d${domid})` : `d${domid}`;
}

export function renderList(r: ListResult): string {
  if (r.regions.length === 0) return `no static shared memory under ${r.root}\n` + (r.ports.length > 0 ? renderPorts(r) : '');
  const { roleOf } = require('../../store') as typeof import('../../store');
  const rows = r.regions.map((g) => {
    const maps = [...g.mappings]
      .sort((a, b) => Number(b.domid === g.owner) - Number(a.domid === g.owner) || a.domid - b.domid)
      .map((m) => `${domainLabel(r, m.domid)} ${roleOf(g, m)} ${hex(m.begin)}-${hex(m.end)} +${hex(m.offset)} ${m.prot} ${m.state}${m.lock ? ` [lock ${m.lock}]` : ''}`)
      .join('\n');
    return [g.id, g.state, humanSize(g.size), `${domainLabel(r, g.owner)}\n${hex(g.begin)}, ${g.prot}, ${g.cachePolicy}`, maps || '(none)'];
  });
  let out = drawTable(['ID', 'State', 'Size', 'Owner', 'Mappings (domain, role, range, offset, prot, state)'], rows) + '\n';
  const targets = r.domains.filter((d) => d.target !== null);
  if (targets.length > 0) {
    out += 'set_target (never undone; device-model rights over the owner): ' + targets.map((d) => `${domainLabel(r, d.domid)} -> d${d.target}`).join(', ') + '\n';
  }
  if (r.ports.length > 0) out += renderPorts(r);
  return out;
}

/** A port's live state in words (EVTCHNOP_status). */
export function portStateText(p: ListResult['ports'][number]): string {
  const s = p.live;
  if (p.ownerGone) return `gone with the owner (d${p.owner} is dying or gone)`;
  if (!s) return 'being allocated';
  switch (s.state) {
    case 'unbound':
      return `unbound, for d${s.remoteDom}`;
    case 'interdomain':
      return `bound by d${s.remoteDom} (its port ${s.remotePort})`;
    case 'closed':
      return 'closed (freed by the owner)';
    case 'error':
      return s.code === 'ESRCH' ? 'gone with the owner (ESRCH)' : `unknown (${s.code})`;
    default:
      return `${s.state} (not a doorbell)`;
  }
}

function renderPorts(r: ListResult): string {
  const lines = r.ports.map((p) => {
    const port = typeof p.port === 'number' ? `port ${p.port}` : 'port (allocating)';
    const kept = p.id === null ? ', kept: its region was released' : p.kept ? `, kept: ${domainLabel(r, p.borrower)} was released` : '';
    return `  ${p.id ?? '(released)'}: ${port} of ${domainLabel(r, p.owner)} for ${domainLabel(r, p.borrower)}: ${portStateText(p)}${kept}\n`;
  });
  return 'doorbells (ports in the owner; dom0 cannot close them: they stay until the owner dies):\n' + lines.join('');
}

export function registerLs(program: Command): void {
  withCommonOptions(
    program
      .command('ls')
      .summary('list regions, owners, mappings and states')
      .description('List the static shared memory regions recorded in xenstore.')
      .option('--tree', 'print the records as `xenstore-ls -f` lines'),
  ).action(async (_o: unknown, self: Command) => {
    const opts = optionsOf<LsOptions>(self);
    await withContext(opts, async (ctx) => {
      const r = await ctx.manager.list();
      if (opts.json) {
        printJSON({ ok: true, ...r });
        return;
      }
      if (opts.tree) {
        const { sharedMemoryTree } = (require('../../store') as typeof import('../../store'));
        const lines = await sharedMemoryTree(ctx.xs, r.root, r.domains.map((d) => d.domid));
        process.stdout.write(lines.map((l) => l + '\n').join(''));
        return;
      }
      process.stdout.write(renderList(r));
    });
  });
}
