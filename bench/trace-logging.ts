/**
 * The second half of `npm run bench:trace`: what `xs-trace attach` costs the daemon. C xenstored
 * serves the same requests in three states, in alternating rounds so that machine load affects
 * all alike:
 * - off: logging off (its normal state);
 * - log: logging on into a file (CONTROL `logfile`), nobody reading it: the daemon's own cost;
 * - attach: `xs-trace attach -o /dev/null` following and decoding the log: the whole cost on
 *   the machine (the attach process competes for the same CPUs).
 * Workloads: READ and WRITE of a 32-byte value with one request outstanding (latency-bound, as
 * most tools are), and READs 32 at a time (throughput-bound: the daemon's CPU is the limit).
 * Reported per workload and state: requests per second, mean and p99 latency, and their ratios
 * to `off` in the same run; bench/results/trace-attach.{json,md}. `costText()` is the summary
 * that `xs-trace attach --help` quotes (lib/trace/commands/attach-help.ts; a test holds the two
 * equal, so a new run of the bench means pasting its summary there).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeHeader, encodeFrame } from '../xenstore-wire/codec';
import { MessageType, XS_HEADER_SIZE } from '../xenstore-wire/constants';
import { request } from '../xenstore-wire/payload';
import { DaemonKind, DaemonOptions, RunningDaemon, startDaemon } from '../test/harness/daemons';

/** A daemon to measure: its name in the report, its kind and the harness options (a release). */
export interface BenchDaemon {
  label: string;
  kind: DaemonKind;
  options: DaemonOptions;
}

/** The C xenstored releases measured: the machine's own (Debian 12's 4.17) and Debian 13's 4.20. */
export const LOGGING_DAEMONS: BenchDaemon[] = [
  { label: 'C xenstored 4.17 (Debian 12)', kind: 'cxenstored', options: {} },
  { label: 'C xenstored 4.20 (Debian 13)', kind: 'cxenstored', options: { release: '4.20' } },
];

export interface LoggingOptions {
  rounds: number;
  /** Requests per block (one workload, one state, one round). */
  block: number;
  warmup: number;
  daemons: BenchDaemon[];
}

type State = 'off' | 'log' | 'attach';
const STATES: State[] = ['off', 'log', 'attach'];

interface Workload {
  name: string;
  what: string;
  type: MessageType;
  /** Requests in flight at once. */
  depth: number;
}

const WORKLOADS: Workload[] = [
  { name: 'read', what: 'READ of a 32-byte value, one outstanding', type: MessageType.READ, depth: 1 },
  { name: 'write', what: 'WRITE of a 32-byte value, one outstanding', type: MessageType.WRITE, depth: 1 },
  { name: 'read-x32', what: 'READs 32 at a time', type: MessageType.READ, depth: 32 },
];

/** A raw socket client: sends bursts of frames, times each until its reply. */
class Client {
  private buf: Buffer = Buffer.alloc(0);
  private pending: Array<{ t0: bigint; done: (ns: number) => void }> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      while (this.buf.length >= XS_HEADER_SIZE) {
        const h = decodeHeader(this.buf);
        if (this.buf.length < XS_HEADER_SIZE + h.len) break;
        this.buf = this.buf.subarray(XS_HEADER_SIZE + h.len);
        const p = this.pending.shift();
        p?.done(Number(process.hrtime.bigint() - p.t0));
      }
    });
  }

  static connect(p: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p);
      s.once('connect', () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  /** `n` requests, `depth` in flight; returns each one's latency in ns. */
  async run(frame: Buffer, n: number, depth: number): Promise<number[]> {
    const out: number[] = [];
    for (let sent = 0; sent < n; sent += depth) {
      const k = Math.min(depth, n - sent);
      const waits: Array<Promise<number>> = [];
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < k; i++) waits.push(new Promise((done) => this.pending.push({ t0, done })));
      this.sock.write(k === 1 ? frame : Buffer.concat(Array.from({ length: k }, () => frame)));
      out.push(...(await Promise.all(waits)));
    }
    return out;
  }

  close(): void {
    this.sock.destroy();
  }
}

async function control(socketPath: string, ...args: string[]): Promise<void> {
  const c = await Client.connect(socketPath);
  await c.run(encodeFrame({ type: MessageType.CONTROL, reqId: 1, txId: 0, payload: request.control(args[0], ...args.slice(1)) }), 1, 1);
  c.close();
}

/** `xs-trace attach -o /dev/null` until stopped. */
async function startAttach(root: string, socketPath: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, [path.join(root, 'dist/lib/cli/xs-trace.js'), 'attach', '--upstream', socketPath, '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const end = Date.now() + 30_000;
  while (!/this log does not show/.test(err)) {
    if (c.exitCode !== null) throw new Error(`xs-trace attach exited: ${err}`);
    if (Date.now() > end) throw new Error(`xs-trace attach did not attach: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return c;
}

interface Cell {
  requests: number;
  seconds: number;
  latencies: number[];
}

export interface StateFigures {
  requestsPerSecond: number;
  meanUs: number;
  p99Us: number;
  /** Requests per second as a fraction of `off`'s. */
  ratioToOff: number;
  /** Mean and p99 latency as multiples of `off`'s. */
  meanRatio: number;
  p99Ratio: number;
}

export interface LoggingResult {
  daemon: string;
  workloads: Array<{
    name: string;
    what: string;
    states: Record<State, StateFigures>;
  }>;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function measure(root: string, label: string, daemon: RunningDaemon, o: LoggingOptions, logDir: string): Promise<LoggingResult> {
  const client = await Client.connect(daemon.socketPath);
  const p = '/bench/logging/value';
  const value = 'x'.repeat(32);
  await client.run(encodeFrame({ type: MessageType.WRITE, reqId: 1, txId: 0, payload: request.write(p, value) }), 1, 1);
  const frames: Record<string, Buffer> = {
    [MessageType.READ]: encodeFrame({ type: MessageType.READ, reqId: 7, txId: 0, payload: request.read(p) }),
    [MessageType.WRITE]: encodeFrame({ type: MessageType.WRITE, reqId: 7, txId: 0, payload: request.write(p, value) }),
  };
  for (const w of WORKLOADS) await client.run(frames[w.type], o.warmup, w.depth);
  const cells = new Map<string, Cell>();
  for (let round = 0; round < o.rounds; round++) {
    // Rotate the order of the states from round to round.
    const order = STATES.map((_, i) => STATES[(i + round) % STATES.length]);
    for (const state of order) {
      const logFile = path.join(logDir, 'bench.log');
      let attach: ChildProcess | null = null;
      if (state === 'log') await control(daemon.socketPath, 'logfile', logFile);
      if (state === 'attach') attach = await startAttach(root, daemon.socketPath);
      for (const w of WORKLOADS) {
        const t0 = process.hrtime.bigint();
        const lat = await client.run(frames[w.type], o.block, w.depth);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const key = `${w.name}/${state}`;
        const c = cells.get(key) ?? { requests: 0, seconds: 0, latencies: [] };
        c.requests += lat.length;
        c.seconds += seconds;
        c.latencies.push(...lat);
        cells.set(key, c);
      }
      if (state === 'log') {
        // A daemon that did not log would make the comparison meaningless.
        const size = fs.statSync(logFile, { throwIfNoEntry: false })?.size ?? 0;
        if (size < o.block) throw new Error(`${label}: CONTROL logfile ${logFile} left the file at ${size} bytes: the daemon did not log`);
        await control(daemon.socketPath, 'logfile', '');
        await control(daemon.socketPath, 'log', 'off');
        fs.rmSync(logFile, { force: true });
      }
      if (attach) {
        attach.kill('SIGTERM');
        await new Promise((r) => (attach!.exitCode !== null ? r(null) : attach!.once('exit', r)));
      }
    }
  }
  client.close();
  return {
    daemon: label,
    workloads: WORKLOADS.map((w) => {
      const states = {} as LoggingResult['workloads'][number]['states'];
      const rps = (s: State) => {
        const c = cells.get(`${w.name}/${s}`)!;
        return c.requests / c.seconds;
      };
      const lat = (s: State) => {
        const c = cells.get(`${w.name}/${s}`)!;
        const sorted = [...c.latencies].sort((a, b) => a - b);
        return { mean: c.latencies.reduce((a, b) => a + b, 0) / c.latencies.length, p99: quantile(sorted, 0.99) };
      };
      const off = lat('off');
      for (const s of STATES) {
        const l = lat(s);
        states[s] = {
          requestsPerSecond: Math.round(rps(s)),
          meanUs: Math.round(l.mean / 100) / 10,
          p99Us: Math.round(l.p99 / 100) / 10,
          ratioToOff: Math.round((rps(s) / rps('off')) * 100) / 100,
          meanRatio: Math.round((l.mean / off.mean) * 10) / 10,
          p99Ratio: Math.round((l.p99 / off.p99) * 10) / 10,
        };
      }
      return { name: w.name, what: w.what, states };
    }),
  };
}

/** Runs the logging bench on each daemon kind and writes bench/results/trace-attach.{json,md}. */
export async function benchLogging(root: string, o: LoggingOptions): Promise<string> {
  const results: LoggingResult[] = [];
  for (const d of o.daemons) {
    const daemon = await startDaemon(d.kind, d.options);
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-trace-bench-log-'));
    try {
      results.push(await measure(root, d.label, daemon, o, logDir));
    } finally {
      await daemon.stop();
      fs.rmSync(logDir, { recursive: true, force: true });
    }
  }
  const out = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, load: os.loadavg().map((x) => Math.round(x * 100) / 100), node: process.version },
    rounds: o.rounds,
    block: o.block,
    warmup: o.warmup,
    results,
  };
  const dir = path.join(root, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'trace-attach.json'), JSON.stringify(out, null, 2) + '\n');
  const lines = [
    '# xs-trace attach: what logging costs the daemon',
    '',
    `${out.date}, ${out.host.cpus} CPUs, load ${out.host.load.join(' ')}, Node ${out.host.node}`,
    `${o.rounds} rounds of ${o.block} requests per workload and state (after ${o.warmup} warm-up), the states' order rotated each round.`,
    'off: logging off; log: logging into a file, nobody reading it (the daemon\'s own cost); attach: `xs-trace attach -o /dev/null` following and decoding it (the whole cost on the machine).',
    '',
  ];
  for (const r of results) {
    lines.push(`## ${r.daemon}`, '', '| workload | state | requests/s | ratio to off | mean us | mean x off | p99 us | p99 x off |', '|---|---|---|---|---|---|---|---|');
    for (const w of r.workloads) {
      for (const s of STATES) {
        const x = w.states[s];
        lines.push(`| ${w.what} | ${s} | ${x.requestsPerSecond} | ${x.ratioToOff} | ${x.meanUs} | ${x.meanRatio} | ${x.p99Us} | ${x.p99Ratio} |`);
      }
    }
    lines.push('');
  }
  lines.push('## Quoted by `xs-trace attach --help`', '', '```', costText(results), '```', '');
  const md = lines.join('\n');
  fs.writeFileSync(path.join(dir, 'trace-attach.md'), md);
  return md;
}

/** A multiple, short: x3.4, x12. */
function times(x: number): string {
  return x < 10 ? `x${x.toFixed(1)}` : `x${Math.round(x)}`;
}

/**
 * The cost summary `xs-trace attach --help` quotes: per daemon and workload, requests per
 * second while logging (file only) and while attached, as a fraction of logging off, and the
 * mean and p99 latency as multiples of off's.
 */
export function costText(results: LoggingResult[]): string {
  const short: Record<string, string> = { read: 'READ, 1 outstanding', write: 'WRITE, 1 outstanding', 'read-x32': 'READ, 32 pipelined' };
  const lines = ['  requests/s as a fraction of logging off; mean, p99 latency as multiples of it', '                          logging to a file            attached (xs-trace following)'];
  for (const r of results) {
    lines.push(`  ${r.daemon}:`);
    for (const w of r.workloads) {
      const cell = (x: StateFigures) => `${x.ratioToOff.toFixed(2)} ${times(x.meanRatio).padStart(5)} ${times(x.p99Ratio).padStart(5)}`.padEnd(29);
      lines.push(`    ${(short[w.name] ?? w.name).padEnd(22)}${cell(w.states.log)}${cell(w.states.attach)}`.trimEnd());
    }
  }
  return lines.join('\n');
}
