/**
 * CONTROL (xenstored_control.c): check, log, logfile, memreport, print, quota, quota-soft,
 * help; live-update is ENOSYS (the tree is in memory anyway).
 */
import type { Frame } from '../codec';
import { MessageType } from '../constants';
import { atou, countStrings, firstString, getStrings, strtol } from './cstr';
import { Quotas, ServerConnection, XsErrno } from './model';
import type { Rooms } from './rooms';

interface QuotaRow {
  name: string;
  descr: string;
  get(): number;
  set(v: number): void;
}

/**
 * The log switches C xenstored 4.20 lists for `log` without arguments, with the harness's and
 * Debian's default (obj and io on: xenstored_core.c trace_switches).
 */
const LOG_SWITCHES_420 = 'Log switch settings:\nobj     : on\nio      : on\nwrl     : off\nacc     : off\ntdb     : off\n';

/** 4.20's parameter help where it differs from 4.17's (xenstored_control.c). */
const PARS_420: Record<string, string> = {
  log: '[on|off|+<switch>|-<switch>]',
  quota: '[set <name> <val>|<domid>|max [-r]]',
};

/** xenstored_control.c's command table (names, parameter help, max parameters). */
const CONTROL_COMMANDS: { cmd: string; pars: string; maxPars?: number }[] = [
  { cmd: 'check', pars: '' },
  { cmd: 'log', pars: 'on|off' },
  { cmd: 'live-update', pars: '[-c <cmdline>] [-F] [-t <timeout>] <file>\n    Default timeout is 60 seconds.', maxPars: 5 },
  { cmd: 'logfile', pars: '<file>' },
  { cmd: 'memreport', pars: '[<file>]' },
  { cmd: 'print', pars: '<string>' },
  { cmd: 'quota', pars: '[set <name> <val>|<domid>]' },
  { cmd: 'quota-soft', pars: '[set <name> <val>]' },
  { cmd: 'help', pars: '' },
];

export class Control {
  constructor(private readonly r: Rooms) {}

  doControl(conn: ServerConnection, req: Frame): void {
    if (req.payload.indexOf(0) < 0) throw new XsErrno('EINVAL');
    const cmdName = firstString(req.payload);
    const cmd = CONTROL_COMMANDS.find((c) => c.cmd === cmdName);
    if (!cmd) throw new XsErrno('EINVAL');
    let num = countStrings(req.payload);
    if (cmd.maxPars) num = Math.min(num, cmd.maxPars);
    const args = getStrings(req.payload).slice(1, num);
    const output = this.r.output;
    const reply = (text: string) => output.sendReply(conn, req, MessageType.CONTROL, Buffer.from(text + '\0', 'latin1'));
    const ack = () => output.sendAck(conn, req, MessageType.CONTROL);
    switch (cmd.cmd) {
      case 'check':
        if (args.length) throw new XsErrno('EINVAL');
        // do_control_check() -> check_store(): from 4.20 it corrects the node counts.
        this.r.domains.checkStore();
        return ack();
      case 'log':
        if (args.length === 0 && this.r.state.release.controlTexts420) return reply(LOG_SWITCHES_420);
        if (args.length !== 1 || (args[0] !== 'on' && args[0] !== 'off')) throw new XsErrno('EINVAL');
        return ack();
      case 'logfile':
      case 'print':
        if (args.length !== 1) throw new XsErrno('EINVAL');
        if (cmd.cmd === 'print') this.r.state.trace?.(`control: ${args[0]}`);
        return ack();
      case 'memreport':
        if (args.length > 1) throw new XsErrno('EINVAL');
        return ack();
      case 'live-update':
        // No live update in a process that keeps its tree in memory anyway.
        throw new XsErrno('ENOSYS');
      case 'help':
        if (args.length) throw new XsErrno('EINVAL');
        if (this.r.state.release.controlTexts420) {
          return reply(CONTROL_COMMANDS.map((c) => `${c.cmd.padEnd(16)}${PARS_420[c.cmd] ?? c.pars}\n`).join(''));
        }
        return reply(CONTROL_COMMANDS.map((c) => `${c.cmd}\t${c.pars}\n`).join(''));
      case 'quota':
      case 'quota-soft': {
        const table = cmd.cmd === 'quota' ? this.hardQuotaTable() : this.softQuotaTable();
        if (args.length === 0) {
          return reply('Quota settings:\n' + table.map((q) => `${q.name.padEnd(17)}: ${String(q.get()).padStart(8)} ${q.descr}\n`).join(''));
        }
        if (args[0] === 'set') {
          if (args.length !== 3) throw new XsErrno('EINVAL');
          const val = Number(BigInt.asIntN(32, strtol(args[2], 10).value));
          if (val < 1) throw new XsErrno('EINVAL');
          const q = table.find((x) => x.name === args[1]);
          if (!q) throw new XsErrno('EINVAL');
          q.set(val);
          return ack();
        }
        if (cmd.cmd === 'quota-soft' || args.length !== 1) throw new XsErrno('EINVAL');
        const d = this.r.domains.domains.get(atou(args[0]));
        if (!d) throw new XsErrno('ENOENT');
        const ta = [...d.conns].reduce((n, c) => n + c.transactions.length, 0);
        const ent = (k: string, v: number) => `${k.padEnd(16)}: ${String(v).padStart(8)}\n`;
        return reply(`Domain ${d.domid}:\n${ent('nodes', d.nbentry)}${ent('watches', d.nbwatch)}${ent('transactions', ta)}${ent('outstanding', d.outstanding)}${ent('memory', d.memory)}`);
      }
    }
  }

  private hardQuotaTable(): QuotaRow[] {
    const q = this.r.state.quotas;
    const row = (name: string, key: keyof Quotas, descr: string): QuotaRow => ({ name, descr, get: () => q[key], set: (v) => (q[key] = v) });
    if (this.r.state.release.controlTexts420) {
      return [
        row('nodes', 'nodes', 'Nodes per domain'),
        row('watches', 'watches', 'Watches per domain'),
        row('outstanding', 'outstanding', 'Outstanding requests per domain'),
        row('memory', 'memory', 'Total Xenstore memory per domain (error level)'),
        row('transactions', 'transactions', 'Active transactions per domain'),
        row('transaction-nodes', 'transactionNodes', 'Max. number of accessed nodes per transaction'),
        row('node-permissions', 'permissions', 'Max. number of permissions per node'),
        row('path-max', 'pathMax', 'Max. length of a node path'),
        row('node-size', 'nodeSize', 'Max. size of a node'),
      ];
    }
    return [
      row('nodes', 'nodes', 'Nodes per domain'),
      row('watches', 'watches', 'Watches per domain'),
      row('transactions', 'transactions', 'Transactions per domain'),
      row('outstanding', 'outstanding', 'Outstanding requests per domain'),
      row('transaction-nodes', 'transactionNodes', 'Max. number of accessed nodes per transaction'),
      row('memory', 'memory', 'Total Xenstore memory per domain (error level)'),
      row('node-size', 'nodeSize', 'Max. size of a node'),
      row('path-max', 'pathMax', 'Max. length of a node path'),
      row('permissions', 'permissions', 'Max. number of permissions per node'),
    ];
  }

  private softQuotaTable(): QuotaRow[] {
    const q = this.r.state.quotas;
    return [{ name: 'memory', descr: 'Total Xenstore memory per domain (warning level)', get: () => q.memorySoft, set: (v) => (q.memorySoft = v) }];
  }
}
