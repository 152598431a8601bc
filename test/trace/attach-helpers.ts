/**
 * Helpers for the `xs-trace attach` tests: a running attach (the real CLI), the daemon's open
 * files as /proc shows them, and the per-connection view used to compare what the attach saw
 * with what a proxy saw.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { XS_TRACE } from './helpers';

export interface RunningAttach {
  child: ChildProcess;
  /** stderr so far (the attach's own messages). */
  stderr(): string;
  /** Ends it with `signal` (default SIGTERM) and returns what it printed. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `xs-trace attach ARGS` and resolves once it is attached (its stderr says so). */
export async function startAttach(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunningAttach> {
  const child = spawn(process.execPath, [XS_TRACE, 'attach', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 30_000;
  while (!/this log does not show/.test(err)) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await exited;
      throw new Error(`xs-trace attach exited (${child.exitCode ?? child.signalCode}) before attaching: ${err}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`xs-trace attach did not attach in 30 s: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const r = await exited;
      return { ...r, stdout: Buffer.concat(out).toString('utf8'), stderr: err };
    },
  };
}

/** Regular files the process has open (readlink of /proc/PID/fd). */
export function openFiles(pid: number): string[] {
  return fs
    .readdirSync(`/proc/${pid}/fd`)
    .map((f) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${f}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l.startsWith('/'));
}

/** One message as both sources show it (NULs of values are spaces in the daemon's log). */
export function signature(r: Record<string, any>): string {
  const op = r.kind === 'reply' ? r.op : r.type;
  const value = typeof r.value === 'string' ? r.value.replace(/\\0/g, ' ') : '';
  return [r.kind, op, r.path ?? '', r.token ?? '', r.error ?? '', value, (r.children ?? []).join(',')].join('|');
}

/** Per connection (in order of appearance), the requests and what the daemon sent, each in order. */
export function byConnection(recs: Array<Record<string, any>>): Array<{ sent: string[]; received: string[] }> {
  const m = new Map<number, { sent: string[]; received: string[] }>();
  for (const r of recs) {
    if (r.kind !== 'request' && r.kind !== 'reply' && r.kind !== 'event') continue;
    if (!m.has(r.conn)) m.set(r.conn, { sent: [], received: [] });
    const c = m.get(r.conn)!;
    (r.kind === 'request' ? c.sent : c.received).push(signature(r));
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}
