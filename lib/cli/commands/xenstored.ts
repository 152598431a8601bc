/**
 * `xen-sshm xenstored [--rundir DIR] [--trace] [--persist FILE] [--domains LIST] [--json] [--release V]`:
 * the in-memory xenstored as a foreground daemon on DIR/socket, so xenstore tools can be
 * developed on a machine without Xen. Runs until SIGINT/SIGTERM; exit 0 after a clean stop.
 */
import type { Command } from 'commander';
import type { XenstoreServer } from '../../../xenstore-wire/server';
import { DEFAULT_RELEASE, isXenRelease, XEN_RELEASES } from '../../../xenstore-wire/server/release';
import { elide, UsageError } from '../handle-error';
import { optionsOf } from '../options';

const HELP = `
Clients find it through the environment, like the real daemon's socket:

  XENSTORED_PATH=<rundir>/socket xenstore-ls /

Every client of the socket is dom0 (privileged), as on a real host. To act as a guest, make
the domain exist with --domains, INTRODUCE it from dom0 as a toolstack does, then connect to
<rundir>/domain-<domid>.socket: its clients are that unprivileged domain.

Examples:
  xen-sshm xenstored
  xen-sshm xenstored --rundir /tmp/xs --persist /tmp/xs/tree.json --trace
`;

export interface XenstoredCommandOptions {
  rundir?: string;
  trace?: boolean;
  persist?: string;
  domains?: string;
  json?: boolean;
  /** Xen release whose C xenstored is modelled (4.17, 4.20, 4.21, 4.22). */
  release?: string;
}

/** "1-3,7" -> [1, 2, 3, 7]; a typed error names the bad part. */
export function parseDomainList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m && m[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi < lo || hi >= 0x7ff0) {
      throw new UsageError(`--domains: ${JSON.stringify(elide(part, 80))} is not a domid or range of guest domids (1..32751)`, { option: '--domains' });
    }
    for (let d = lo; d <= hi; d++) out.push(d);
  }
  return out;
}

/** Starts the daemon and resolves once it has stopped after a signal. */
export async function runXenstored(opts: XenstoredCommandOptions, signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): Promise<XenstoreServer> {
  if (opts.release !== undefined && !isXenRelease(opts.release)) {
    throw new UsageError(`--release: ${JSON.stringify(elide(opts.release, 80))} is not one of ${XEN_RELEASES.join(', ')}`, { option: '--release' });
  }
  const release = opts.release ?? DEFAULT_RELEASE;
  const domains = opts.domains ? parseDomainList(opts.domains) : [];
  const { startServer } = (require('../../../xenstore-wire/server') as typeof import('../../../xenstore-wire/server'));
  const server = await startServer({
    release,
    rundir: opts.rundir,
    trace: opts.trace ? (line) => process.stderr.write(line + '\n') : undefined,
    persist: opts.persist,
    // The log cannot be written: nothing more can be acknowledged durably.
    onFatal: (err) => {
      process.stderr.write(`xen-sshm xenstored: ${err.message}\n`);
      process.exit(1);
    },
    domains,
    domainSockets: true,
  });
  const info = { socket: server.socketPath, rundir: server.rundir, persist: opts.persist ?? null, pid: process.pid, release };
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ok: true, xenstored: info }) + '\n');
  } else {
    process.stdout.write(
      `xen-sshm xenstored (in-memory, Xen ${release} semantics) listening on ${server.socketPath}\n` +
        `  export XENSTORED_PATH=${server.socketPath}\n` +
        (opts.persist ? `  tree kept in ${opts.persist}\n` : ''),
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      for (const s of signals) process.off(s, stop);
      server.close().then(resolve, resolve);
    };
    for (const s of signals) process.on(s, stop);
  });
  return server;
}

export function registerXenstored(program: Command): void {
  program
    .command('xenstored')
    .summary('run the in-memory xenstored (no Xen needed)')
    .description('Run the in-memory xenstored in the foreground, serving <rundir>/socket with the C xenstored semantics of a Xen release (--release).')
    .option('--rundir <dir>', 'folder for the socket (default: a fresh temporary folder, printed at start)')
    .option('--trace', 'log every message in and out on stderr')
    .option('--persist <file>', 'keep the tree in this JSON file across restarts')
    .option('--domains <list>', 'guest domids that exist in the simulated hypervisor, e.g. 1-4,7')
    .option('--release <version>', `Xen release whose C xenstored to model: ${XEN_RELEASES.join(', ')} (default ${DEFAULT_RELEASE})`)
    .addHelpText('after', HELP + '\nWith --json: the socket path and pid as JSON at start.\n')
    .action(async (_o: unknown, self: Command) => {
      await runXenstored(optionsOf<XenstoredCommandOptions>(self));
      process.exitCode = 0;
    });
}
