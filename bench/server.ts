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
import { MessageType } from '../xenstore-wire/constants';
import { compareHostile, HostileComparison, HostileScenario, startInMemoryProcess } from '../test/server/hostile';
import { RawConn } from '../test/server/wire';

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

// ------------------------------------------------------------------------------------
// Durability: the cost of --persist per acknowledged write

export interface LatencyStats {
  n: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

function latencyStats(us: number[]): LatencyStats {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(s.length * q))]);
  return { n: s.length, meanUs: Math.round(s.reduce((a, b) => a + b, 0) / s.length), p50Us: at(0.5), p99Us: at(0.99) };
}

export interface DurabilityResult {
  persistOff: { write: LatencyStats; commit: LatencyStats };
  persistOn: { write: LatencyStats; commit: LatencyStats };
  /** Added latency per acknowledged change (mean, µs): what the write-ahead log costs. */
  costPerWriteUs: number;
  costPerCommitUs: number;
  /** Where the persist file was (its file system decides the fdatasync cost). */
  persistDir: string;
}

/**
 * Sequential WRITEs and one-write transaction commits against `xen-sshm xenstored` with and
 * without --persist, in alternating rounds; every reply waited for (each is a durable change
 * with --persist).
 */
export async function benchDurability(opts: { writes?: number; rounds?: number; persistDir?: string } = {}): Promise<DurabilityResult> {
  const writes = opts.writes ?? 500;
  const rounds = opts.rounds ?? 4;
  const base = opts.persistDir ?? tmpdir();
  const persistDir = mkdtempSync(join(base, 'xen-sshm-bench-persist-'));
  const acc = { off: { write: [] as number[], commit: [] as number[] }, on: { write: [] as number[], commit: [] as number[] } };
  const nul = (...x: string[]) => x.map((y) => y + '\0').join('');
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['off', 'on'] as const) {
        const args = mode === 'on' ? ['--persist', join(persistDir, `tree-${r}.json`)] : [];
        const d = await startInMemoryProcess(args);
        const c = await RawConn.open(d.socketPath);
        try {
          for (let i = 0; i < writes; i++) {
            const t0 = process.hrtime.bigint();
            await c.request(MessageType.WRITE, `/bench/d${i % 64}/w${i}\0value-${i}`);
            acc[mode].write.push(Number(process.hrtime.bigint() - t0) / 1000);
          }
          for (let i = 0; i < writes / 5; i++) {
            const t0 = process.hrtime.bigint();
            const start = await c.request(MessageType.TRANSACTION_START, nul(''));
            const tx = Number(start.payload.toString('latin1').replace(/\0$/, ''));
            await c.request(MessageType.WRITE, `/bench/tx${i % 16}\0${i}`, tx);
            const end = await c.request(MessageType.TRANSACTION_END, nul('T'), tx);
            if (end.type !== MessageType.TRANSACTION_END) throw new Error(`commit failed: ${end.payload.toString()}`);
            acc[mode].commit.push(Number(process.hrtime.bigint() - t0) / 1000);
          }
        } finally {
          c.close();
          await d.stop();
        }
      }
    }
  } finally {
    rmSync(persistDir, { recursive: true, force: true });
  }
  const persistOff = { write: latencyStats(acc.off.write), commit: latencyStats(acc.off.commit) };
  const persistOn = { write: latencyStats(acc.on.write), commit: latencyStats(acc.on.commit) };
  return {
    persistOff,
    persistOn,
    costPerWriteUs: persistOn.write.meanUs - persistOff.write.meanUs,
    costPerCommitUs: persistOn.commit.meanUs - persistOff.commit.meanUs,
    persistDir: base,
  };
}

export function durabilityMarkdown(r: DurabilityResult, meta: Record<string, unknown>): string {
  const row = (what: string, off: LatencyStats, on: LatencyStats) =>
    `| ${what} | ${off.meanUs} | ${off.p99Us} | ${on.meanUs} | ${on.p99Us} | ${Math.round((on.meanUs / off.meanUs) * 100) / 100} |`;
  return [
    '# In-memory xenstored: the cost of durability (--persist)',
    '',
    `Generated by \`node dist/bench/server.js --durability\` on ${String(meta.date)}: Node ${String(meta.node)}, load average ${String(meta.loadavg)}; persist file under ${r.persistDir}.`,
    'Sequential requests from one connection to `xen-sshm xenstored` in its own process, each reply awaited; persistence off and on in alternating rounds. With --persist every change is appended to the write-ahead log and fdatasync\'ed before its reply is sent.',
    '',
    '| request | off: mean µs | off: p99 µs | on: mean µs | on: p99 µs | on / off (mean) |',
    '|---|---:|---:|---:|---:|---:|',
    row(`WRITE (${r.persistOff.write.n})`, r.persistOff.write, r.persistOn.write),
    row(`transaction of one WRITE, START to END (${r.persistOff.commit.n})`, r.persistOff.commit, r.persistOn.commit),
    '',
    `Durability costs ${r.costPerWriteUs} µs per acknowledged WRITE and ${r.costPerCommitUs} µs per committed transaction (means).`,
    '',
  ].join('\n');
}

// ------------------------------------------------------------------------------------
// Hostile clients: memory of both daemons under the same slow readers

export function hostileMarkdown(results: HostileComparison[], meta: Record<string, unknown>): string {
  const lines = [
    '# Hostile clients: in-memory xenstored against C xenstored 4.17',
    '',
    `Generated by \`node dist/bench/server.js --hostile\` on ${String(meta.date)}: Node ${String(meta.node)}, load average ${String(meta.loadavg)}.`,
    'Each daemon in its own process, fresh per run, the same clients (test/server/hostile.ts). The hostile client\'s cost is the peak RSS growth with it minus the growth of the same workload without it. A probe client reads a node every 20 ms throughout.',
    '',
    '| scenario | operations | C: hostile cost MiB | in-memory: hostile cost MiB | ratio | C peak RSS MiB | in-memory peak RSS MiB | C probe p99 / max ms | in-memory probe p99 / max ms | C run s | in-memory run s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of results) {
    const ref = c.runs.find((r) => r.daemon === 'cxenstored' && r.hostile)!;
    const mem = c.runs.find((r) => r.daemon === 'in-memory' && r.hostile)!;
    const ratio = c.hostileCostMiB.cxenstored > 0 ? String(Math.round((c.hostileCostMiB['in-memory'] / c.hostileCostMiB.cxenstored) * 100) / 100) : '-';
    lines.push(
      `| ${c.scenario} | ${c.operations} | ${c.hostileCostMiB.cxenstored} | ${c.hostileCostMiB['in-memory']} | ${ratio} | ${c.peakMiB.cxenstored} | ${c.peakMiB['in-memory']} | ${ref.probe.p99Ms} / ${ref.probe.maxMs} | ${mem.probe.p99Ms} / ${mem.probe.maxMs} | ${ref.ms / 1000} | ${mem.ms / 1000} |`,
    );
  }
  lines.push('', 'The in-memory process starts at about 50 MiB (Node itself); C xenstored at about 2 MiB.', '');
  return lines.join('\n');
}

function parseBenchArgs(): { quick: boolean; durability: boolean; hostile: boolean; persistDir?: string } {
  const { values } = parseArgs({
    options: {
      /** Fewer rounds and operations: a smoke run, not figures to report. */
      quick: { type: 'boolean', default: false },
      /** Only the durability bench (--persist on and off). */
      durability: { type: 'boolean', default: false },
      /** Only the hostile-client memory comparison with C xenstored. */
      hostile: { type: 'boolean', default: false },
      /** Folder for the durability bench's persist files (its file system sets the fsync cost). */
      'persist-dir': { type: 'string' },
    },
    strict: true,
  });
  return { quick: values.quick === true, durability: values.durability === true, hostile: values.hostile === true, persistDir: values['persist-dir'] };
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseBenchArgs>;
  try {
    args = parseBenchArgs();
  } catch (e) {
    process.stderr.write(`bench:server: ${(e as Error).message}\nusage: node dist/bench/server.js [--quick] [--durability | --hostile] [--persist-dir DIR]\n`);
    process.exit(2);
  }
  const { quick } = args;
  const meta = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg().map(r2).join(' ') };
  const outDir = join(projectRoot(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const all = !args.durability && !args.hostile;
  if (all) {
    const c = await compareServers(quick ? { rounds: 3, reads: 500, writes: 200, pyxsReads: 100, batchesPerRound: 3 } : { rounds: 8, reads: 2000, writes: 500, pyxsReads: 200 });
    writeFileSync(join(outDir, 'server.json'), JSON.stringify({ meta, ...c }, null, 2) + '\n');
    const md = serverMarkdown(c, meta);
    writeFileSync(join(outDir, 'server.md'), md);
    process.stdout.write(md + '\n');
  }
  if (all || args.durability) {
    const r = await benchDurability(quick ? { writes: 100, rounds: 1, persistDir: args.persistDir } : { writes: 500, rounds: 4, persistDir: args.persistDir });
    writeFileSync(join(outDir, 'server-durability.json'), JSON.stringify({ meta, ...r }, null, 2) + '\n');
    const md = durabilityMarkdown(r, meta);
    writeFileSync(join(outDir, 'server-durability.md'), md);
    process.stdout.write(md + '\n');
  }
  if (all || args.hostile) {
    const plan: [HostileScenario, number][] = quick
      ? [['same-path', 20000], ['distinct-paths', 5000], ['guest-distinct', 5000], ['pipelined-reads', 2000]]
      : [['same-path', 300000], ['distinct-paths', 20000], ['guest-distinct', 20000], ['pipelined-reads', 5000]];
    const results: HostileComparison[] = [];
    for (const [scenario, n] of plan) results.push(await compareHostile(scenario, n));
    writeFileSync(join(outDir, 'server-hostile.json'), JSON.stringify({ meta, results }, null, 2) + '\n');
    const md = hostileMarkdown(results, meta);
    writeFileSync(join(outDir, 'server-hostile.md'), md);
    process.stdout.write(md + '\n');
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:server failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
