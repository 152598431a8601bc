/**
 * `npm run bench:xenstore`: this client against Xen's own C library (libxenstore) and pyxs,
 * all talking to the same daemon in one process tree.
 *
 * Measured per target daemon:
 *   - this client: sequential READ latency, sequential WRITE latency, pipelined READ
 *     throughput (Promise.all of 1000 reads: one burst on the wire);
 *   - libxenstore: sequential READ and WRITE latency (bench/xenstore-libxs.c, compiled now
 *     with `cc -O2 ... -lxenstore` into a temporary folder);
 *   - pyxs (Debian's python3-pyxs): sequential READ latency.
 * Rounds are interleaved (ours, libxenstore, pyxs, ours, ...) so that load from other work on
 * the machine spreads over every client alike; medians are over all samples of all rounds.
 *
 * Writes bench/results/xenstore.json and bench/results/xenstore.md.
 *
 * Extension point: BENCH_TARGETS lists the daemons to measure (C xenstored by default); add
 * an entry (e.g. the in-memory server) or call benchEndpoint(label, socketPath) directly.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect } from '../xenstore-wire';
import { projectRoot, startDaemon } from '../test/harness/daemons';
import { PYTHON } from '../test/harness/clients';

const execFileP = promisify(execFile);

export interface Stats {
  samples: number;
  medianUs: number;
  p99Us: number;
  meanUs: number;
  /** 1e6 / median: operations per second one caller gets, one at a time. */
  opsPerSec: number;
}

export interface PipelinedStats {
  batch: number;
  batches: number;
  medianBatchMs: number;
  /** batch / median batch time. */
  readsPerSec: number;
  /**
   * CPU time the daemon spent per pipelined read (from /proc/PID/stat), when its pid is known.
   * xenstored is single-threaded, so 1e6 / this is the most reads per second any client can
   * get from it on this machine: the ceiling for pipelining.
   */
  daemonCpuUsPerRead?: number;
  daemonCeilingReadsPerSec?: number;
}

export interface EndpointResults {
  label: string;
  client: { readLatency: Stats; writeLatency: Stats; pipelinedRead: PipelinedStats };
  libxenstore: { readLatency: Stats; writeLatency: Stats };
  pyxs: { readLatency: Stats };
  ratios: {
    /** This client's median sequential read latency / libxenstore's. Target <= 1.0. */
    readLatencyVsLibxenstore: number;
    writeLatencyVsLibxenstore: number;
    /** This client's pipelined read throughput / libxenstore's sequential read throughput. Target >= 5. */
    pipelinedVsLibxenstoreSequential: number;
    readLatencyVsPyxs: number;
  };
}

export interface BenchTarget {
  label: string;
  /** `pid` (a separate daemon process) lets the bench measure the daemon's CPU per request. */
  start(): Promise<{ socketPath: string; stop(): Promise<void>; pid?: number }>;
}

/** The daemons measured by main(). */
export const BENCH_TARGETS: BenchTarget[] = [
  {
    label: 'C xenstored 4.17',
    start: async () => {
      const d = await startDaemon('cxenstored');
      return { socketPath: d.socketPath, stop: () => d.stop(), pid: d.pid };
    },
  },
];

export interface BenchOptions {
  rounds?: number;
  reads?: number;
  writes?: number;
  pyxsReads?: number;
  batch?: number;
  batchesPerRound?: number;
  /** The compiled libxenstore program (see buildLibxsBench). */
  libxsBinary: string;
  /** The daemon's pid, to measure its CPU time per pipelined read. */
  daemonPid?: number;
}

/** utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15). */
function processTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

let clockTicks: number | undefined;
async function ticksPerSecond(): Promise<number> {
  clockTicks ??= Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  return clockTicks;
}

function stats(samplesNs: number[]): Stats {
  const s = [...samplesNs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const median = q(0.5) / 1000;
  return {
    samples: s.length,
    medianUs: round(median),
    p99Us: round(q(0.99) / 1000),
    meanUs: round(s.reduce((a, b) => a + b, 0) / s.length / 1000),
    opsPerSec: Math.round(1e6 / median),
  };
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const now = () => Number(process.hrtime.bigint());

/** Compiles bench/xenstore-libxs.c against Debian's libxenstore; returns the binary's path. */
export async function buildLibxsBench(outDir: string): Promise<string> {
  const src = join(projectRoot(), 'bench', 'xenstore-libxs.c');
  const bin = join(outDir, 'xenstore-libxs');
  try {
    await execFileP('cc', ['-O2', '-Wall', '-o', bin, src, '-lxenstore']);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`cannot build ${src} (needs a C compiler and Debian package libxen-dev): ${err.stderr ?? err.message}`);
  }
  return bin;
}

function runCollect(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} exited with ${code}: ${err}`))));
  });
}

const PYXS_BENCH = (path: string, n: number) => `
import json, time, pyxs
with pyxs.Client() as c:
    p = ${JSON.stringify(path)}.encode()
    for _ in range(100):
        c.read(p)
    s = []
    for _ in range(${n}):
        t = time.perf_counter_ns()
        c.read(p)
        s.append(time.perf_counter_ns() - t)
print(json.dumps(s))
`;

/** Runs every client against the daemon at `socketPath`. */
export async function benchEndpoint(label: string, socketPath: string, opts: BenchOptions): Promise<EndpointResults> {
  const o = { rounds: 10, reads: 2000, writes: 500, pyxsReads: 500, batch: 1000, batchesPerRound: 6, ...opts };
  const env: NodeJS.ProcessEnv = { ...process.env, XENSTORED_PATH: socketPath };
  delete env.LD_PRELOAD;
  const node = '/bench/node';
  const libPath = '/bench/libxs';
  const pyPath = '/bench/pyxs';
  const xs = await connect({ path: socketPath });
  const value = 'benchmark-value-0123456789';
  await xs.write(node, value);
  await xs.write(pyPath, value);

  const ours = { read: [] as number[], write: [] as number[], batches: [] as number[], daemonTicks: 0 };
  const lib = { read: [] as number[], write: [] as number[] };
  const py: number[] = [];
  try {
    for (let i = 0; i < 200; i++) await xs.read(node); // warm-up (JIT, socket buffers)
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < o.reads; i++) {
        const t0 = now();
        await xs.read(node);
        ours.read.push(now() - t0);
      }
      for (let i = 0; i < o.writes; i++) {
        const t0 = now();
        await xs.write(node, value);
        ours.write.push(now() - t0);
      }
      const ticks0 = o.daemonPid ? processTicks(o.daemonPid) : 0;
      for (let b = 0; b < o.batchesPerRound; b++) {
        const t0 = now();
        const got = await Promise.all(Array.from({ length: o.batch }, () => xs.read(node)));
        ours.batches.push(now() - t0);
        if (got.length !== o.batch) throw new Error('pipelined batch lost replies');
      }
      if (o.daemonPid) ours.daemonTicks += processTicks(o.daemonPid) - ticks0;
      const libOut = JSON.parse(await runCollect(o.libxsBinary, [libPath, String(o.reads), String(o.writes)], env)) as {
        read: number[];
        write: number[];
      };
      lib.read.push(...libOut.read);
      lib.write.push(...libOut.write);
      py.push(...(JSON.parse(await runCollect(PYTHON, ['-c', PYXS_BENCH(pyPath, o.pyxsReads)], env)) as number[]));
    }
  } finally {
    await xs.close();
  }

  const batchMs = [...ours.batches].sort((a, b) => a - b)[Math.floor(ours.batches.length / 2)] / 1e6;
  const client = {
    readLatency: stats(ours.read),
    writeLatency: stats(ours.write),
    pipelinedRead: { batch: o.batch, batches: ours.batches.length, medianBatchMs: round(batchMs, 3), readsPerSec: Math.round(o.batch / (batchMs / 1000)) } as PipelinedStats,
  };
  if (o.daemonPid && ours.daemonTicks > 0) {
    const us = (ours.daemonTicks / (await ticksPerSecond())) * 1e6 / (o.batch * ours.batches.length);
    client.pipelinedRead.daemonCpuUsPerRead = round(us);
    client.pipelinedRead.daemonCeilingReadsPerSec = Math.round(1e6 / us);
  }
  const libxenstore = { readLatency: stats(lib.read), writeLatency: stats(lib.write) };
  const pyxs = { readLatency: stats(py) };
  return {
    label,
    client,
    libxenstore,
    pyxs,
    ratios: {
      readLatencyVsLibxenstore: round(client.readLatency.medianUs / libxenstore.readLatency.medianUs, 3),
      writeLatencyVsLibxenstore: round(client.writeLatency.medianUs / libxenstore.writeLatency.medianUs, 3),
      pipelinedVsLibxenstoreSequential: round(client.pipelinedRead.readsPerSec / libxenstore.readLatency.opsPerSec, 2),
      readLatencyVsPyxs: round(client.readLatency.medianUs / pyxs.readLatency.medianUs, 3),
    },
  };
}

export function markdown(results: EndpointResults[], meta: Record<string, unknown>): string {
  const lines = [
    '# xenstore client benchmark',
    '',
    `Generated by \`npm run bench:xenstore\` on ${String(meta.date)}: Node ${String(meta.node)}, ${String(meta.cpus)} CPUs, load average at start ${String(meta.loadavg)}.`,
    'Latencies are medians (and 99th percentiles) over all samples of interleaved rounds; every client talks to the same daemon.',
    '',
  ];
  for (const r of results) {
    const row = (client: string, op: string, s: Stats, ratio: string) =>
      `| ${client} | ${op} | ${s.medianUs} | ${s.p99Us} | ${s.opsPerSec} | ${ratio} |`;
    lines.push(
      `## ${r.label}`,
      '',
      '| client | operation | median µs | p99 µs | ops/s | vs libxenstore |',
      '|---|---|---:|---:|---:|---:|',
      row('xen-sshm/xenstore', 'sequential read', r.client.readLatency, `${r.ratios.readLatencyVsLibxenstore} × latency`),
      row('xen-sshm/xenstore', 'sequential write', r.client.writeLatency, `${r.ratios.writeLatencyVsLibxenstore} × latency`),
      `| xen-sshm/xenstore | pipelined read (Promise.all of ${r.client.pipelinedRead.batch}) | ${round((r.client.pipelinedRead.medianBatchMs * 1000) / r.client.pipelinedRead.batch)} per read | | ${r.client.pipelinedRead.readsPerSec} | ${r.ratios.pipelinedVsLibxenstoreSequential} × sequential throughput |`,
      row('libxenstore (C)', 'sequential read', r.libxenstore.readLatency, '1'),
      row('libxenstore (C)', 'sequential write', r.libxenstore.writeLatency, '1'),
      row('pyxs', 'sequential read', r.pyxs.readLatency, `${round(r.pyxs.readLatency.medianUs / r.libxenstore.readLatency.medianUs, 3)} × latency`),
      '',
      ...(r.client.pipelinedRead.daemonCeilingReadsPerSec
        ? [
            `The daemon spent ${r.client.pipelinedRead.daemonCpuUsPerRead} µs of CPU per pipelined read: being single-threaded, it cannot serve more than ${r.client.pipelinedRead.daemonCeilingReadsPerSec} reads/s on this machine (${round(r.client.pipelinedRead.daemonCeilingReadsPerSec / r.libxenstore.readLatency.opsPerSec)} × libxenstore's sequential throughput), whatever the client. Pipelining reached ${round((100 * r.client.pipelinedRead.readsPerSec) / r.client.pipelinedRead.daemonCeilingReadsPerSec, 0)} % of that ceiling.`,
            '',
          ]
        : []),
      `Targets: sequential read latency at most 1.0 × libxenstore's (measured ${r.ratios.readLatencyVsLibxenstore}: ${r.ratios.readLatencyVsLibxenstore <= 1 ? 'met' : 'not met'}); pipelined reads at least 5 × libxenstore's sequential throughput (measured ${r.ratios.pipelinedVsLibxenstoreSequential}: ${r.ratios.pipelinedVsLibxenstoreSequential >= 5 ? 'met' : 'not met'}).`,
      '',
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-bench-'));
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadavg: loadavg().map((x) => round(x)).join(' '),
  };
  const results: EndpointResults[] = [];
  try {
    const libxsBinary = await buildLibxsBench(work);
    for (const target of BENCH_TARGETS) {
      const t = await target.start();
      try {
        process.stderr.write(`bench:xenstore: measuring ${target.label}...\n`);
        results.push(await benchEndpoint(target.label, t.socketPath, { libxsBinary, daemonPid: t.pid }));
      } finally {
        await t.stop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const outDir = join(projectRoot(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'xenstore.json'), JSON.stringify({ meta, results }, null, 2) + '\n');
  const md = markdown(results, meta);
  writeFileSync(join(outDir, 'xenstore.md'), md);
  process.stdout.write(md + '\n');
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:xenstore failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
