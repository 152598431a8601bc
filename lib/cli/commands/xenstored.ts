/**
 * `xen-sshm xenstored [--rundir DIR] [--trace] [--persist FILE] [--domains LIST] [--json] [--release V]`:
 * the in-memory xenstored as a foreground daemon on DIR/socket, so xenstore tools can be
 * developed on a machine without Xen. Runs until SIGINT/SIGTERM; exit 0 after a clean stop.
 */
import type { Command } from 'commander';
import { DEFAULT_RELEASE, isXenRelease, startServer, XEN_RELEASES, XenstoreServer, XenstoredServerError } from '../../../xenstore-wire/server';

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
      throw new XenstoredServerError('domain', 'EINVAL', `--domains: ${JSON.stringify(part)} is not a domid or range of guest domids (1..32751)`);
    }
    for (let d = lo; d <= hi; d++) out.push(d);
  }
  return out;
}

/** Starts the daemon and resolves once it has stopped after a signal. */
export async function runXenstored(opts: XenstoredCommandOptions, signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): Promise<XenstoreServer> {
  if (opts.release !== undefined && !isXenRelease(opts.release)) {
    // A usage error: exit code 2, like commander's own.
    throw Object.assign(new XenstoredServerError('options', 'EINVAL', `--release: ${JSON.stringify(opts.release)} is not one of ${XEN_RELEASES.join(', ')}`), { exitCode: 2 });
  }
  const release = opts.release ?? DEFAULT_RELEASE;
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
    domains: opts.domains ? parseDomainList(opts.domains) : [],
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
    .option('--json', 'print the socket path and pid as JSON at start')
    .option('--release <version>', `Xen release whose C xenstored to model: ${XEN_RELEASES.join(', ')} (default ${DEFAULT_RELEASE})`)
    .addHelpText('after', HELP)
    .action(async (opts: XenstoredCommandOptions) => {
      await runXenstored(opts);
      process.exitCode = 0;
    });
}
