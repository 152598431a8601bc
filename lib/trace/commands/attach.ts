/**
 * `xs-trace attach`: follow a running xenstore daemon's own log of every connection (guests'
 * rings included), decoded, until SIGINT, SIGTERM or SIGHUP; then the daemon's logging is put
 * back as it was (lib/trace/attach.ts). The trace goes to stdout (or --output), what was done
 * to the daemon to stderr.
 */
import { elide } from '../../elide';
import { AttachedSession, attach, detach, PreviousLogging } from '../attach';
import { TraceError, usageError } from '../errors';
import { CommonOptions, LIVE_BATCH_MS, outputFrom } from './options';
import { resolveUpstream } from './upstream';

export interface AttachOptions extends CommonOptions {
  upstream?: string;
  pid?: string;
  dir?: string;
  rotateSize?: string;
  log?: boolean;
}

function pidOption(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 0x3fffffff) throw usageError(`--pid expects a process id, got ${JSON.stringify(elide(s))}`, '--pid');
  return Number(s);
}

function describePrevious(p: PreviousLogging | null): string {
  if (p === null) return 'nothing to restore: the daemon is not changed';
  const sw = p.switches ? `, trace switches ${p.switches.length ? p.switches.join(' ') : 'none'}` : '';
  if (p.on && p.file !== null) return `logging into ${p.file}${p.deleted ? ' (a deleted file: it is recreated)' : ''}${sw}`;
  return `logging off${p.file !== null ? ` (its -T file ${p.file})` : ''}${sw}`;
}

export async function attachCommand(o: AttachOptions, ready?: (s: AttachedSession) => void): Promise<number> {
  const socketPath = resolveUpstream(o.upstream, process.env);
  const pid = pidOption(o.pid);
  let rotateBytes: number | undefined;
  if (o.rotateSize !== undefined) {
    const m = /^(\d+)([KMG]?)$/i.exec(o.rotateSize.trim());
    if (!m) throw usageError(`--rotate-size expects a size such as 64M, got ${JSON.stringify(elide(o.rotateSize))}`, '--rotate-size');
    rotateBytes = Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
    if (rotateBytes < 64 * 1024) throw usageError('--rotate-size must be at least 64K', '--rotate-size');
  }
  // Options are checked (and the output opened) before the daemon is touched; the stats
  // columns follow the source, known once attached.
  const caps = { latency: false, bytes: true };
  const output = outputFrom(o, process.stdout, LIVE_BATCH_MS, caps, true);
  let session: AttachedSession;
  try {
    session = await attach({
      socketPath,
      pid,
      parentDir: o.dir,
      rotateBytes,
      timeZone: o.utc ? 'utc' : 'local',
      logLines: o.log ?? false,
      onRecord: (r) => output.write(r),
    });
  } catch (e) {
    await output.close();
    throw e;
  }
  Object.assign(caps, session.caps);
  const d = session.daemon;
  const name = d.kind === 'cxenstored' ? `C xenstored (${d.format} log format)` : 'oxenstored';
  process.stderr.write(
    [
      `xs-trace: attached to ${name}, pid ${d.pid}, following ${session.logPath}`,
      `xs-trace: on exit its logging returns to: ${describePrevious(session.restoresTo)}`,
      ...(session.dir ? [`xs-trace: if xs-trace is killed with SIGKILL the daemon keeps logging into ${session.dir}: run \`xs-trace detach\``] : []),
      `xs-trace: this log does not show: ${session.lacks.join('; ')}`,
      '',
    ].join('\n'),
  );
  ready?.(session);
  const why = await new Promise<TraceError | null>((resolve) => {
    const stop = (): void => resolve(null);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, stop);
    void session.ended.then(resolve);
    // A closed stdout (`| head`) ends the trace too.
    const poll = setInterval(() => {
      if (output.writer.error) resolve(null);
    }, 200);
    poll.unref();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
  try {
    await session.stop();
  } finally {
    await output.close();
  }
  if (why) throw why;
  process.stderr.write(`xs-trace: detached; the daemon's logging is back to: ${describePrevious(session.restoresTo)}\n`);
  return 0;
}

export interface DetachOptions {
  upstream?: string;
  pid?: string;
  dir?: string;
  force?: boolean;
  json?: boolean;
}

export async function detachCommand(o: DetachOptions): Promise<number> {
  const socketPath = resolveUpstream(o.upstream, process.env);
  const r = await detach({ socketPath, pid: pidOption(o.pid), parentDir: o.dir, force: o.force ?? false });
  if (o.json) {
    process.stdout.write(JSON.stringify({ ok: true, ...r }) + '\n');
    return 0;
  }
  const lines: string[] = [];
  if (r.found === 'nothing') lines.push(`xenstored (pid ${r.daemonPid}) does not log into an xs-trace attach folder: nothing to repair`);
  else {
    lines.push(`xenstored (pid ${r.daemonPid}) was logging into ${r.dir}, left by a killed xs-trace attach${r.state ? ` (pid ${r.state.ownerPid}, started ${r.state.startedAt})` : ' (no readable state: logging turned off)'}`);
    lines.push(`sent: ${r.commands.map((c) => `CONTROL ${c}`).join(', ')}; its logging is back to: ${describePrevious(r.state?.previous ?? { on: false, file: null })}`);
  }
  for (const d of r.removed) lines.push(`removed ${d} (an attach folder the daemon no longer uses)`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
