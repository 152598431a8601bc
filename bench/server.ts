/**
 * The in-memory xenstored beside C xenstored under the same workload (issue 3: at least 50 %
 * of C xenstored's operations per second).
 *
 * The server runs as its own process (`xen-sshm xenstored`), like the real daemon, so clients
 * and server do not share an event loop and the daemon's CPU time per request is measurable.
 *
 * - `IN_MEMORY_TARGET` is a BenchTarget for bench/xenstore.ts (add it to BENCH_TARGETS to get
 *   the full client table against this server too).
 * - `compareServers()` runs bench/xenstore.ts's benchEndpoint() against both daemons and
 *   reports the throughput ratios; `node dist/bench/server.js` writes bench/results/server.json
 *   and server.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot, startDaemon } from '../test/harness/daemons';
import { BenchTarget, buildLibxsBench, benchEndpoint, EndpointResults, BenchOptions } from './xenstore';

/** Start `xen-sshm xenstored` in a child process; resolves with its socket and pid. */
export async function startInMemoryDaemon(): Promise<{ socketPath: string; pid: number; stop(): Promise<void> }> {
  const rundir = mkdtempSync(join(tmpdir(), 'xen-sshm-bench-xenstored-'));
  const cli = join(projectRoot(), 'dist', 'lib', 'cli', 'xen-sshm.js');
  const child = spawn(process.execPath, [cli, 'xenstored', '--rundir', rundir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const socketPath = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) {
        try {
          resolve((JSON.parse(line) as { xenstored: { socket: string } }).xenstored.socket);
        } catch (e) {
          reject(new Error(`xen-sshm xenstored printed ${JSON.stringify(line)}: ${(e as Error).message}`));
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`xen-sshm xenstored exited with ${code} before listening`)));
    child.once('error', reject);
  });
  return {
    socketPath,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
      rmSync(rundir, { recursive: true, force: true });
    },
  };
}

export const IN_MEMORY_TARGET: BenchTarget = {
  label: 'in-memory xenstored (xen-sshm)',
  start: startInMemoryDaemon,
};

export interface ServerComparison {
  reference: EndpointResults;
  inMemory: EndpointResults;
  /** in-memory / C xenstored, for operations per second (higher is better). */
  ratios: {
    libxenstoreReadOps: number;
    libxenstoreWriteOps: number;
    clientReadOps: number;
    clientWriteOps: number;
    pipelinedReadOps: number;
  };
  /** The target: every ratio >= 0.5. */
  targetMet: boolean;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/** Median of numbers. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Per-metric median over rounds: each round is one benchEndpoint() run. */
function combine(rounds: EndpointResults[]): EndpointResults {
  const out = JSON.parse(JSON.stringify(rounds[0])) as EndpointResults;
  const m = (f: (r: EndpointResults) => number) => Math.round(median(rounds.map(f)));
  out.libxenstore.readLatency.opsPerSec = m((r) => r.libxenstore.readLatency.opsPerSec);
  out.libxenstore.writeLatency.opsPerSec = m((r) => r.libxenstore.writeLatency.opsPerSec);
  out.client.readLatency.opsPerSec = m((r) => r.client.readLatency.opsPerSec);
  out.client.writeLatency.opsPerSec = m((r) => r.client.writeLatency.opsPerSec);
  out.client.pipelinedRead.readsPerSec = m((r) => r.client.pipelinedRead.readsPerSec);
  const cpu = rounds.map((r) => r.client.pipelinedRead.daemonCpuUsPerRead).filter((x): x is number => x !== undefined);
  if (cpu.length) out.client.pipelinedRead.daemonCpuUsPerRead = r2(median(cpu));
  return out;
}

/**
 * The same workload (bench/xenstore.ts) against C xenstored and the in-memory server, both
 * running, in alternating rounds so that load from other work on the machine hits both alike;
 * each figure is the median over rounds.
 */
export async function compareServers(opts: Partial<BenchOptions> & { rounds?: number } = {}): Promise<ServerComparison> {
  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-bench-server-'));
  const c = await startDaemon('cxenstored');
  const m = await startInMemoryDaemon();
  try {
    const libxsBinary = await buildLibxsBench(work);
    const refRounds: EndpointResults[] = [];
    const memRounds: EndpointResults[] = [];
    for (let i = 0; i < (opts.rounds ?? 8); i++) {
      refRounds.push(await benchEndpoint('C xenstored 4.17', c.socketPath, { ...opts, rounds: 1, libxsBinary, daemonPid: c.pid }));
      memRounds.push(await benchEndpoint(IN_MEMORY_TARGET.label, m.socketPath, { ...opts, rounds: 1, libxsBinary, daemonPid: m.pid }));
    }
    const reference = combine(refRounds);
    const inMemory = combine(memRounds);
    const ratios = {
      libxenstoreReadOps: r2(inMemory.libxenstore.readLatency.opsPerSec / reference.libxenstore.readLatency.opsPerSec),
      libxenstoreWriteOps: r2(inMemory.libxenstore.writeLatency.opsPerSec / reference.libxenstore.writeLatency.opsPerSec),
      clientReadOps: r2(inMemory.client.readLatency.opsPerSec / reference.client.readLatency.opsPerSec),
      clientWriteOps: r2(inMemory.client.writeLatency.opsPerSec / reference.client.writeLatency.opsPerSec),
      pipelinedReadOps: r2(inMemory.client.pipelinedRead.readsPerSec / reference.client.pipelinedRead.readsPerSec),
    };
    return { reference, inMemory, ratios, targetMet: Object.values(ratios).every((x) => x >= 0.5) };
  } finally {
    await m.stop();
    await c.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

export function serverMarkdown(c: ServerComparison, meta: Record<string, unknown>): string {
  const row = (what: string, a: number, b: number, ratio: number) => `| ${what} | ${a} | ${b} | ${ratio} |`;
  return [
    '# In-memory xenstored against C xenstored',
    '',
    `Generated by \`node dist/bench/server.js\` on ${String(meta.date)}: Node ${String(meta.node)}, ${String(meta.cpus)} CPUs, load average ${String(meta.loadavg)}.`,
    'Same clients, same workload (bench/xenstore.ts), each daemon in its own process, measured in alternating rounds; each figure is the median over rounds. Operations per second are 1e6 / median latency for sequential callers, and reads per second for the pipelined batch.',
    '',
    '| workload | C xenstored ops/s | in-memory ops/s | in-memory / C |',
    '|---|---:|---:|---:|',
    row('libxenstore sequential read', c.reference.libxenstore.readLatency.opsPerSec, c.inMemory.libxenstore.readLatency.opsPerSec, c.ratios.libxenstoreReadOps),
    row('libxenstore sequential write', c.reference.libxenstore.writeLatency.opsPerSec, c.inMemory.libxenstore.writeLatency.opsPerSec, c.ratios.libxenstoreWriteOps),
    row('xen-sshm client sequential read', c.reference.client.readLatency.opsPerSec, c.inMemory.client.readLatency.opsPerSec, c.ratios.clientReadOps),
    row('xen-sshm client sequential write', c.reference.client.writeLatency.opsPerSec, c.inMemory.client.writeLatency.opsPerSec, c.ratios.clientWriteOps),
    row(`xen-sshm client pipelined read (${c.inMemory.client.pipelinedRead.batch} at once)`, c.reference.client.pipelinedRead.readsPerSec, c.inMemory.client.pipelinedRead.readsPerSec, c.ratios.pipelinedReadOps),
    '',
    ...(c.reference.client.pipelinedRead.daemonCpuUsPerRead && c.inMemory.client.pipelinedRead.daemonCpuUsPerRead
      ? [`Daemon CPU per pipelined read: C xenstored ${c.reference.client.pipelinedRead.daemonCpuUsPerRead} µs, in-memory ${c.inMemory.client.pipelinedRead.daemonCpuUsPerRead} µs.`, '']
      : []),
    `Target: at least 0.5 × C xenstored's operations per second on every line: ${c.targetMet ? 'met' : 'not met'}.`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const meta = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg().map(r2).join(' ') };
  const { values } = parseArgs({
    options: {
      /** Fewer rounds and operations: a smoke run, not figures to report. */
      quick: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const c = await compareServers(quick ? { rounds: 3, reads: 500, writes: 200, pyxsReads: 100, batchesPerRound: 3 } : { rounds: 8, reads: 2000, writes: 500, pyxsReads: 200 });
  const outDir = join(projectRoot(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'server.json'), JSON.stringify({ meta, ...c }, null, 2) + '\n');
  const md = serverMarkdown(c, meta);
  writeFileSync(join(outDir, 'server.md'), md);
  process.stdout.write(md + '\n');
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:server failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
