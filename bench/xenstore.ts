/**
 * `npm run bench:xenstore`: this client against Xen's own C library (libxenstore) and pyxs,
 * all talking to the same C xenstored (started without its trace, which triples its latency).
 *
 * Per trial (a fresh daemon each):
 *   - warm, steady state: sequential READ and WRITE latency of this client (in this process,
 *     after a warm-up), of libxenstore (bench/xenstore-libxs.c, compiled now with `cc -O2 ...
 *     -lxenstore`, a process per round after 200 warm-up reads) and sequential READ of pyxs
 *     (Debian's python3-pyxs), in interleaved rounds (ours, libxenstore, pyxs, ours, ...) so that
 *     load from other work on the machine spreads over every client alike;
 *   - cold: the first `coldRequests` READs of a fresh process, for each client, over
 *     `coldProcesses` processes started in turn (ours: bench/xenstore-cold.ts);
 *   - pipelined READ throughput of this client (Promise.all of `batch`), beside the daemon's own
 *     ceiling: its CPU time per pipelined read (from /proc/PID/stat), since xenstored is
 *     single-threaded.
 * Every latency is reported as mean, median and 99th percentile over all samples.
 *
 * Writes bench/results/xenstore.json and bench/results/xenstore.md (every trial, and the spread
 * of the ratios over trials). `node dist/bench/xenstore.js --help` lists the options.
 *
 * Extension point: BENCH_TARGETS lists the daemons to measure (C xenstored by default); add an
 * entry (e.g. the in-memory server, bench/server.ts) or call benchEndpoint() directly.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { connect } from '../xenstore-wire';
import { projectRoot, startDaemon, XenRelease, XEN_RELEASES } from '../test/harness/daemons';
import { PYTHON } from '../test/harness/clients';

const execFileP = promisify(execFile);

export interface Stats {
  samples: number;
  meanUs: number;
  medianUs: number;
  p99Us: number;
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
   * CPU time the daemon spent per pipelined read (from /proc/PID/schedstat), when its pid is known.
   * xenstored is single-threaded, so 1e6 / this is the most reads per second any client can
   * get from it on this machine: the ceiling for pipelining.
   */
  daemonCpuUsPerRead?: number;
  daemonCeilingReadsPerSec?: number;
  /** readsPerSec / daemonCeilingReadsPerSec. Target >= 0.7. */
  fractionOfCeiling?: number;
}

export interface EndpointResults {
  label: string;
  client: { readLatency: Stats; writeLatency: Stats; pipelinedRead: PipelinedStats };
  libxenstore: { readLatency: Stats; writeLatency: Stats };
  pyxs: { readLatency: Stats };
  ratios: {
    /** This client's mean sequential read latency / libxenstore's. Target <= 1.0. */
    readMeanVsLibxenstore: number;
    /** The same for the medians and the 99th percentiles. */
    readLatencyVsLibxenstore: number;
    readP99VsLibxenstore: number;
    writeMeanVsLibxenstore: number;
    writeLatencyVsLibxenstore: number;
    /** This client's pipelined read throughput / libxenstore's sequential read throughput. */
    pipelinedVsLibxenstoreSequential: number;
    readLatencyVsPyxs: number;
  };
}

export interface ColdClientStats {
  /** Every timed request of every process. */
  read: Stats;
  /** The first request of each process. */
  first: Stats;
  processes: number;
  /** This client only: loading xen-sshm/xenstore and connecting, per process (median ms). */
  requireMs?: number;
  connectMs?: number;
}

export interface ColdResults {
  requestsPerProcess: number;
  client: ColdClientStats;
  libxenstore: ColdClientStats;
  pyxs: ColdClientStats;
  /** Mean latency of the first requests of a fresh process, ours / libxenstore's. Target <= 2. */
  readMeanVsLibxenstore: number;
  readP99VsLibxenstore: number;
}

export interface BenchTarget {
  label: string;
  /** `pid` (a separate daemon process) lets the bench measure the daemon's CPU per request. */
  start(): Promise<{ socketPath: string; stop(): Promise<void>; pid?: number }>;
}

/** C xenstored of one Xen release (4.17: the machine's own; 4.20: the harness's Debian 13 root). */
export function cxenstoredTarget(release: XenRelease): BenchTarget {
  return {
    label: `C xenstored ${release}`,
    start: async () => {
      const d = await startDaemon('cxenstored', { release });
      return { socketPath: d.socketPath, stop: () => d.stop(), pid: d.pid };
    },
  };
}

/** The daemons measured by main() unless --release says otherwise. */
export const BENCH_TARGETS: BenchTarget[] = [cxenstoredTarget('4.17')];

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

export interface ColdOptions {
  /** Fresh processes per client. Default 20. */
  processes?: number;
  /** Requests timed in each. Default 100. */
  requests?: number;
  libxsBinary: string;
}

/**
 * CPU time a process has run, in ns: /proc/PID/schedstat's first field (the scheduler's own
 * account, to the nanosecond). /proc/PID/stat's utime + stime count whole clock ticks (10 ms),
 * too coarse for the ~60 ms a round of pipelined batches costs the daemon: the ceiling it gave
 * moved by a tick's worth between rounds. Falls back to the ticks where schedstat is missing.
 */
function processCpuNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e9) / clockTicks;
  }
}

let clockTicks = 100;
async function readClockTicks(): Promise<void> {
  clockTicks = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
}

/** Mean, median and 99th percentile (nearest rank) of samples in nanoseconds, in µs. */
export function stats(samplesNs: number[]): Stats {
  const s = [...samplesNs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const median = q(0.5) / 1000;
  return {
    samples: s.length,
    meanUs: round(s.reduce((a, b) => a + b, 0) / s.length / 1000),
    medianUs: round(median),
    p99Us: round(q(0.99) / 1000),
    opsPerSec: Math.round(1e6 / median),
  };
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
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

/** pyxs: `warmup` untimed reads, then `n` timed ones; prints the samples (ns) as JSON. */
const PYXS_BENCH = (path: string, n: number, warmup: number) => `
import json, time, pyxs
with pyxs.Client() as c:
    p = ${JSON.stringify(path)}.encode()
    for _ in range(${warmup}):
        c.read(p)
    s = []
    for _ in range(${n}):
        t = time.perf_counter_ns()
        c.read(p)
        s.append(time.perf_counter_ns() - t)
print(json.dumps(s))
`;

/** The environment of a child client of the daemon at `socketPath`. */
function clientEnv(socketPath: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XENSTORED_PATH: socketPath };
  delete env.LD_PRELOAD;
  return env;
}

const VALUE = 'benchmark-value-0123456789';

/** Warm, steady-state figures of every client against the daemon at `socketPath`. */
export async function benchEndpoint(label: string, socketPath: string, opts: BenchOptions): Promise<EndpointResults> {
  const o = { rounds: 10, reads: 2000, writes: 500, pyxsReads: 500, batch: 1000, batchesPerRound: 6, ...opts };
  const env = clientEnv(socketPath);
  const node = '/bench/node';
  const libPath = '/bench/libxs';
  const pyPath = '/bench/pyxs';
  const xs = await connect({ path: socketPath });
  await Promise.all([xs.write(node, VALUE), xs.write(libPath, VALUE), xs.write(pyPath, VALUE)]);

  const ours = { read: [] as number[], write: [] as number[], batches: [] as number[], daemonNs: 0 };
  await readClockTicks();
  const lib = { read: [] as number[], write: [] as number[] };
  const py: number[] = [];
  try {
    for (let i = 0; i < 2000; i++) await xs.read(node); // warm-up: JIT, socket buffers
    // Samples go to preallocated arrays, as libxenstore's side stores them (calloc): the
    // measuring loop itself should not feed this process's collector.
    const readNs = new Float64Array(o.reads);
    const writeNs = new Float64Array(o.writes);
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < o.reads; i++) {
        const t0 = performance.now();
        await xs.read(node);
        readNs[i] = (performance.now() - t0) * 1e6;
      }
      for (let i = 0; i < o.writes; i++) {
        const t0 = performance.now();
        await xs.write(node, VALUE);
        writeNs[i] = (performance.now() - t0) * 1e6;
      }
      ours.read.push(...readNs);
      ours.write.push(...writeNs);
      const cpu0 = o.daemonPid ? processCpuNs(o.daemonPid) : 0;
      for (let b = 0; b < o.batchesPerRound; b++) {
        const t0 = now();
        const got = await Promise.all(Array.from({ length: o.batch }, () => xs.read(node)));
        ours.batches.push(now() - t0);
        if (got.length !== o.batch) throw new Error('pipelined batch lost replies');
      }
      if (o.daemonPid) ours.daemonNs += processCpuNs(o.daemonPid) - cpu0;
      const libOut = JSON.parse(await runCollect(o.libxsBinary, [libPath, String(o.reads), String(o.writes)], env)) as {
        read: number[];
        write: number[];
      };
      lib.read.push(...libOut.read);
      lib.write.push(...libOut.write);
      py.push(...(JSON.parse(await runCollect(PYTHON, ['-c', PYXS_BENCH(pyPath, o.pyxsReads, 100)], env)) as number[]));
    }
  } finally {
    await xs.close();
  }

  const batchMs = median(ours.batches) / 1e6;
  const client = {
    readLatency: stats(ours.read),
    writeLatency: stats(ours.write),
    pipelinedRead: { batch: o.batch, batches: ours.batches.length, medianBatchMs: round(batchMs, 3), readsPerSec: Math.round(o.batch / (batchMs / 1000)) } as PipelinedStats,
  };
  if (o.daemonPid && ours.daemonNs > 0) {
    const us = ours.daemonNs / 1e3 / (o.batch * ours.batches.length);
    client.pipelinedRead.daemonCpuUsPerRead = round(us);
    client.pipelinedRead.daemonCeilingReadsPerSec = Math.round(1e6 / us);
    client.pipelinedRead.fractionOfCeiling = round(client.pipelinedRead.readsPerSec / client.pipelinedRead.daemonCeilingReadsPerSec, 3);
  }
  const libxenstore = { readLatency: stats(lib.read), writeLatency: stats(lib.write) };
  const pyxs = { readLatency: stats(py) };
  return {
    label,
    client,
    libxenstore,
    pyxs,
    ratios: {
      readMeanVsLibxenstore: round(client.readLatency.meanUs / libxenstore.readLatency.meanUs, 3),
      readLatencyVsLibxenstore: round(client.readLatency.medianUs / libxenstore.readLatency.medianUs, 3),
      readP99VsLibxenstore: round(client.readLatency.p99Us / libxenstore.readLatency.p99Us, 3),
      writeMeanVsLibxenstore: round(client.writeLatency.meanUs / libxenstore.writeLatency.meanUs, 3),
      writeLatencyVsLibxenstore: round(client.writeLatency.medianUs / libxenstore.writeLatency.medianUs, 3),
      pipelinedVsLibxenstoreSequential: round(client.pipelinedRead.readsPerSec / libxenstore.readLatency.opsPerSec, 2),
      readLatencyVsPyxs: round(client.readLatency.medianUs / pyxs.readLatency.medianUs, 3),
    },
  };
}

function coldStats(perProcess: number[][]): ColdClientStats {
  return { read: stats(perProcess.flat()), first: stats(perProcess.map((p) => p[0])), processes: perProcess.length };
}

/**
 * The first `requests` READs of fresh processes: ours (bench/xenstore-cold.js under this Node),
 * libxenstore and pyxs, one process of each in turn, `processes` times.
 */
export async function benchCold(socketPath: string, opts: ColdOptions): Promise<ColdResults> {
  const o = { processes: 20, requests: 100, ...opts };
  const env = clientEnv(socketPath);
  const path = '/bench/cold';
  const xs = await connect({ path: socketPath });
  await xs.write(path, VALUE);
  await xs.close();
  const coldScript = join(projectRoot(), 'dist', 'bench', 'xenstore-cold.js');
  const ours: number[][] = [];
  const lib: number[][] = [];
  const py: number[][] = [];
  const requireMs: number[] = [];
  const connectMs: number[] = [];
  for (let i = 0; i < o.processes; i++) {
    const c = JSON.parse(await runCollect(process.execPath, [coldScript, path, String(o.requests)], env)) as { requireNs: number; connectNs: number; read: number[] };
    ours.push(c.read);
    requireMs.push(c.requireNs / 1e6);
    connectMs.push(c.connectNs / 1e6);
    lib.push((JSON.parse(await runCollect(o.libxsBinary, [path, String(o.requests), '0', '0'], env)) as { read: number[] }).read);
    py.push(JSON.parse(await runCollect(PYTHON, ['-c', PYXS_BENCH(path, o.requests, 0)], env)) as number[]);
  }
  const client = { ...coldStats(ours), requireMs: round(median(requireMs)), connectMs: round(median(connectMs)) };
  const libxenstore = coldStats(lib);
  return {
    requestsPerProcess: o.requests,
    client,
    libxenstore,
    pyxs: coldStats(py),
    readMeanVsLibxenstore: round(client.read.meanUs / libxenstore.read.meanUs, 3),
    readP99VsLibxenstore: round(client.read.p99Us / libxenstore.read.p99Us, 3),
  };
}

export interface Trial {
  label: string;
  loadavgBefore: string;
  warm: EndpointResults;
  cold: ColdResults;
}

/** The targets, as checked on one trial. */
export function verdicts(t: Trial): { warmMean: boolean; coldMean: boolean; pipelined: boolean | null } {
  const f = t.warm.client.pipelinedRead.fractionOfCeiling;
  return { warmMean: t.warm.ratios.readMeanVsLibxenstore <= 1, coldMean: t.cold.readMeanVsLibxenstore <= 2, pipelined: f === undefined ? null : f >= 0.7 };
}

const fmt = (s: Stats) => `${s.meanUs} | ${s.medianUs} | ${s.p99Us}`;

function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 1 ? String(s[0]) : `${s[0]} – ${round(median(s), 3)} – ${s[s.length - 1]}`;
}

export function markdown(trials: Trial[], meta: Record<string, unknown>): string {
  const lines = [
    '# xenstore client benchmark',
    '',
    `Generated by \`npm run bench:xenstore\` on ${String(meta.date)}: Node ${String(meta.node)}, ${String(meta.cpus)} CPUs, load average at start ${String(meta.loadavg)}, ${trials.length} trial(s) with a fresh daemon each.`,
    'Latencies in µs: mean | median | 99th percentile over all samples; every client talks to the same daemon. "Warm": steady state, rounds interleaved with libxenstore and pyxs. "Cold": the first requests of fresh processes, one process of each client in turn.',
    '',
  ];
  if (trials.length > 1) {
    const col = (f: (t: Trial) => number) => spread(trials.map(f));
    lines.push(
      '## Spread over trials (min – median – max)',
      '',
      '| figure | target | spread |',
      '|---|---|---|',
      `| warm mean sequential read, ours / libxenstore | <= 1.0 | ${col((t) => t.warm.ratios.readMeanVsLibxenstore)} |`,
      `| warm p99 sequential read, ours / libxenstore | reported | ${col((t) => t.warm.ratios.readP99VsLibxenstore)} |`,
      `| cold first-${trials[0].cold.requestsPerProcess} mean read, ours / libxenstore | <= 2.0 | ${col((t) => t.cold.readMeanVsLibxenstore)} |`,
      `| cold first-${trials[0].cold.requestsPerProcess} p99 read, ours / libxenstore | reported | ${col((t) => t.cold.readP99VsLibxenstore)} |`,
      `| pipelined reads / the daemon's ceiling | >= 0.7 | ${col((t) => t.warm.client.pipelinedRead.fractionOfCeiling ?? NaN)} |`,
      `| warm mean sequential write, ours / libxenstore | reported | ${col((t) => t.warm.ratios.writeMeanVsLibxenstore)} |`,
      '',
    );
  }
  trials.forEach((t, i) => {
    const w = t.warm;
    const c = t.cold;
    const v = verdicts(t);
    const yes = (b: boolean | null) => (b === null ? 'not measured' : b ? 'met' : 'not met');
    const p = w.client.pipelinedRead;
    lines.push(
      `## Trial ${i + 1}: ${t.label} (load average ${t.loadavgBefore})`,
      '',
      '| client | measurement | samples | mean | median | p99 |',
      '|---|---|---:|---:|---:|---:|',
      `| xen-sshm/xenstore | warm sequential read | ${w.client.readLatency.samples} | ${fmt(w.client.readLatency)} |`,
      `| libxenstore (C) | warm sequential read | ${w.libxenstore.readLatency.samples} | ${fmt(w.libxenstore.readLatency)} |`,
      `| pyxs | warm sequential read | ${w.pyxs.readLatency.samples} | ${fmt(w.pyxs.readLatency)} |`,
      `| xen-sshm/xenstore | warm sequential write | ${w.client.writeLatency.samples} | ${fmt(w.client.writeLatency)} |`,
      `| libxenstore (C) | warm sequential write | ${w.libxenstore.writeLatency.samples} | ${fmt(w.libxenstore.writeLatency)} |`,
      `| xen-sshm/xenstore | cold: first ${c.requestsPerProcess} reads of ${c.client.processes} processes | ${c.client.read.samples} | ${fmt(c.client.read)} |`,
      `| libxenstore (C) | cold: first ${c.requestsPerProcess} reads of ${c.libxenstore.processes} processes | ${c.libxenstore.read.samples} | ${fmt(c.libxenstore.read)} |`,
      `| pyxs | cold: first ${c.requestsPerProcess} reads of ${c.pyxs.processes} processes | ${c.pyxs.read.samples} | ${fmt(c.pyxs.read)} |`,
      `| xen-sshm/xenstore | cold: the first read of each process | ${c.client.first.samples} | ${fmt(c.client.first)} |`,
      `| libxenstore (C) | cold: the first read of each process | ${c.libxenstore.first.samples} | ${fmt(c.libxenstore.first)} |`,
      `| pyxs | cold: the first read of each process | ${c.pyxs.first.samples} | ${fmt(c.pyxs.first)} |`,
      '',
      `Before its first request, a fresh process of ours spent ${c.client.requireMs} ms loading xen-sshm/xenstore and ${c.client.connectMs} ms connecting (medians).`,
      '',
      `Pipelined reads (Promise.all of ${p.batch}): ${p.readsPerSec} reads/s (${w.ratios.pipelinedVsLibxenstoreSequential} × libxenstore's sequential throughput).` +
        (p.daemonCeilingReadsPerSec
          ? ` The daemon spent ${p.daemonCpuUsPerRead} µs of CPU per pipelined read: single-threaded, it cannot serve more than ${p.daemonCeilingReadsPerSec} reads/s here, whatever the client; pipelining reached ${round(100 * (p.fractionOfCeiling ?? 0), 0)} % of that ceiling.`
          : ''),
      '',
      `Targets: warm mean sequential read at most 1.0 × libxenstore's (measured ${w.ratios.readMeanVsLibxenstore}: ${yes(v.warmMean)}); cold first-${c.requestsPerProcess} mean at most 2 × (measured ${c.readMeanVsLibxenstore}: ${yes(v.coldMean)}); pipelined reads at least 70 % of the daemon's ceiling (${yes(v.pipelined)}). p99 ratios: warm ${w.ratios.readP99VsLibxenstore}, cold ${c.readP99VsLibxenstore}.`,
      '',
    );
  });
  return lines.join('\n');
}

const USAGE = `usage: node dist/bench/xenstore.js [options]
  --trials N          trials, each with a fresh daemon (default 3)
  --rounds N          warm rounds per trial (default 10)
  --reads N           warm sequential reads per round and client (default 2000)
  --writes N          warm sequential writes per round (default 500)
  --pyxs-reads N      warm pyxs reads per round (default 500)
  --batch N           pipelined reads per batch (default 1000)
  --batches N         pipelined batches per round (default 6)
  --cold-processes N  fresh processes per client and trial (default 20)
  --cold-requests N   requests timed in each (default 100)
  --release LIST      C xenstored release(s) to measure, comma-separated: 4.17 (default), 4.20
                      (4.20 from the harness's Debian 13 root); trials alternate between them
  --out DIR           where xenstore.json and xenstore.md go (default bench/results)
  --quick             a short run: 1 trial, small counts`;

function positive(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string' },
      rounds: { type: 'string' },
      reads: { type: 'string' },
      writes: { type: 'string' },
      'pyxs-reads': { type: 'string' },
      batch: { type: 'string' },
      batches: { type: 'string' },
      'cold-processes': { type: 'string' },
      'cold-requests': { type: 'string' },
      out: { type: 'string' },
      release: { type: 'string' },
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const q = values.quick === true;
  const trials = positive('trials', values.trials, q ? 1 : 3);
  const warm = {
    rounds: positive('rounds', values.rounds, q ? 2 : 10),
    reads: positive('reads', values.reads, q ? 500 : 2000),
    writes: positive('writes', values.writes, q ? 100 : 500),
    pyxsReads: positive('pyxs-reads', values['pyxs-reads'], q ? 100 : 500),
    batch: positive('batch', values.batch, 1000),
    batchesPerRound: positive('batches', values.batches, q ? 2 : 6),
  };
  const cold = { processes: positive('cold-processes', values['cold-processes'], q ? 5 : 20), requests: positive('cold-requests', values['cold-requests'], 100) };
  const outDir = values.out ?? join(projectRoot(), 'bench', 'results');
  const releases = (values.release ?? '4.17').split(',').map((r) => r.trim());
  for (const r of releases) {
    if (!(XEN_RELEASES as readonly string[]).includes(r)) throw new Error(`--release: ${JSON.stringify(r)} is not one of ${XEN_RELEASES.join(', ')}`);
  }
  const targets = values.release === undefined ? BENCH_TARGETS : releases.map((r) => cxenstoredTarget(r as XenRelease));

  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-bench-'));
  const meta = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg().map((x) => round(x)).join(' '), options: { trials, ...warm, cold } };
  const results: Trial[] = [];
  try {
    const libxsBinary = await buildLibxsBench(work);
    for (let i = 0; i < trials; i++) {
      for (const target of targets) {
        const t = await target.start();
        try {
          process.stderr.write(`bench:xenstore: trial ${i + 1}/${trials}, ${target.label}...\n`);
          const loadavgBefore = loadavg().map((x) => round(x)).join(' ');
          const w = await benchEndpoint(target.label, t.socketPath, { ...warm, libxsBinary, daemonPid: t.pid });
          const c = await benchCold(t.socketPath, { ...cold, libxsBinary });
          results.push({ label: target.label, loadavgBefore, warm: w, cold: c });
        } finally {
          await t.stop();
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'xenstore.json'), JSON.stringify({ meta, trials: results }, null, 2) + '\n');
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
