/**
 * `npm run bench:trace`: the round-trip latency xs-trace's proxy adds, and what `xs-trace
 * attach` costs the daemon (bench/trace-logging.ts), in one run (`--part proxy|logging`).
 *
 * One private C xenstored (test/harness), one `xs-trace --listen` process in front of it
 * (decoding and formatting every message, output to /dev/null), and one client in this
 * process that sends READ requests one at a time, alternating blocks over the direct socket
 * and over the proxy so that machine load affects both alike. Reports the median and p90 of
 * each, the median added latency (proxy - direct) and the ratio proxy/direct, in
 * bench/results/trace.json and .md. Target: at most 30 microseconds added.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeFrame, decodeHeader } from '../xenstore-wire/codec';
import { MessageType, XS_HEADER_SIZE } from '../xenstore-wire/constants';
import { request } from '../xenstore-wire/payload';
import { startDaemon, projectRoot } from '../test/harness/daemons';
import { LOGGING_DAEMONS, benchLogging } from './trace-logging';


const TARGET_ADDED_US = 30;

interface Options {
  warmup: number;
  rounds: number;
  block: number;
  format: 'human' | 'json';
  part: 'all' | 'proxy' | 'logging';
  loggingRounds: number;
  loggingBlock: number;
}

/** Command-line options (node:util parseArgs: unknown options and bad numbers are refused). */
function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '8000' },
      warmup: { type: 'string', default: '3000' },
      block: { type: 'string', default: '200' },
      'json-format': { type: 'boolean', default: false },
      part: { type: 'string', default: 'all' },
      'logging-rounds': { type: 'string', default: '6' },
      'logging-block': { type: 'string', default: '2000' },
    },
    strict: true,
  });
  const int = (name: 'rounds' | 'warmup' | 'block' | 'logging-rounds' | 'logging-block', min: number): number => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} expects an integer >= ${min}, got ${JSON.stringify(values[name])}`);
    return v;
  };
  const part = values.part as string;
  if (part !== 'all' && part !== 'proxy' && part !== 'logging') throw new Error(`--part expects all, proxy or logging, got ${JSON.stringify(part)}`);
  return {
    rounds: int('rounds', 1),
    warmup: int('warmup', 0),
    block: int('block', 1),
    format: values['json-format'] ? 'json' : 'human',
    part,
    loggingRounds: int('logging-rounds', 1),
    loggingBlock: int('logging-block', 1),
  };
}

/** A minimal synchronous-style client: one outstanding READ at a time. */
class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;
  private constructor(private readonly sock: net.Socket) {
    sock.on('close', () => {
      this.closed = true;
      const w = this.waiter;
      this.waiter = null;
      w?.();
    });
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.buf.length >= XS_HEADER_SIZE) {
        const h = decodeHeader(this.buf);
        if (this.buf.length >= XS_HEADER_SIZE + h.len) {
          this.buf = this.buf.subarray(XS_HEADER_SIZE + h.len);
          const w = this.waiter;
          this.waiter = null;
          w?.();
        }
      }
    });
  }

  static connect(p: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** One round trip; returns nanoseconds. */
  roundTrip(frame: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('connection closed'));
      const t0 = process.hrtime.bigint();
      this.waiter = () => (this.closed ? reject(new Error('connection closed during a round trip')) : resolve(Number(process.hrtime.bigint() - t0)));
      this.sock.write(frame);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

async function waitForSocket(p: string, child: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`xs-trace exited with ${child.exitCode} before listening`);
    if (fs.existsSync(p)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`xs-trace did not listen on ${p} within ${ms} ms`);
}

async function main(o: Options): Promise<void> {
  if (o.part !== 'logging') await proxyPart(o);
  if (o.part !== 'proxy') {
    const md = await benchLogging(projectRoot(), { rounds: o.loggingRounds, block: o.loggingBlock, warmup: 1000, daemons: LOGGING_DAEMONS });
    process.stdout.write('\n' + md);
  }
}

/** The added round-trip latency of the proxy: bench/results/trace.{json,md}. */
async function proxyPart(o: Options): Promise<void> {
  const root = projectRoot();
  const daemon = await startDaemon('cxenstored');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-trace-bench-'));
  const listenPath = path.join(dir, 'socket');
  const args = [path.join(root, 'dist/lib/cli/xs-trace.js'), '--listen', listenPath, '--upstream', daemon.socketPath, '-o', '/dev/null'];
  if (o.format === 'json') args.push('--json');
  const proxy = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // The floor: the same hop through a Node process that forwards and looks at nothing.
  const plainPath = path.join(dir, 'plain');
  const plain = spawn(process.execPath, [__filename, '--plain-forwarder', plainPath, daemon.socketPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitForSocket(listenPath, proxy, 10_000);
    await waitForSocket(plainPath, plain, 10_000);
    const setup = await RawClient.connect(daemon.socketPath);
    const path0 = '/bench/trace/value';
    await setup.roundTrip(encodeFrame({ type: MessageType.WRITE, reqId: 1, txId: 0, payload: request.write(path0, 'x'.repeat(32)) }));
    setup.close();

    const direct = await RawClient.connect(daemon.socketPath);
    const viaProxy = await RawClient.connect(listenPath);
    const viaPlain = await RawClient.connect(plainPath);
    const frame = encodeFrame({ type: MessageType.READ, reqId: 7, txId: 0, payload: request.read(path0) });
    // Warm-up: JIT of both ends, the daemon's caches.
    for (let i = 0; i < o.warmup; i++) {
      await direct.roundTrip(frame);
      await viaProxy.roundTrip(frame);
      await viaPlain.roundTrip(frame);
    }
    const d: number[] = [];
    const p: number[] = [];
    const f: number[] = [];
    for (let done = 0; done < o.rounds; done += o.block) {
      const n = Math.min(o.block, o.rounds - done);
      for (let i = 0; i < n; i++) d.push(await direct.roundTrip(frame));
      for (let i = 0; i < n; i++) p.push(await viaProxy.roundTrip(frame));
      for (let i = 0; i < n; i++) f.push(await viaPlain.roundTrip(frame));
    }
    direct.close();
    viaProxy.close();
    viaPlain.close();
    d.sort((a, b) => a - b);
    p.sort((a, b) => a - b);
    f.sort((a, b) => a - b);
    const us = (ns: number) => Math.round(ns / 100) / 10;
    const result = {
      date: new Date().toISOString(),
      host: { cpus: os.cpus().length, load: os.loadavg().map((x) => Math.round(x * 100) / 100), node: process.version },
      daemon: 'cxenstored (xen-utils-4.17)',
      request: 'READ of a 32-byte value, one outstanding',
      proxyOutput: `${o.format} text to /dev/null`,
      rounds: o.rounds,
      warmup: o.warmup,
      directUs: { median: us(quantile(d, 0.5)), p90: us(quantile(d, 0.9)), p99: us(quantile(d, 0.99)) },
      proxyUs: { median: us(quantile(p, 0.5)), p90: us(quantile(p, 0.9)), p99: us(quantile(p, 0.99)) },
      plainForwarderUs: { median: us(quantile(f, 0.5)), p90: us(quantile(f, 0.9)), p99: us(quantile(f, 0.99)) },
      plainAddedMedianUs: us(quantile(f, 0.5) - quantile(d, 0.5)),
      addedMedianUs: us(quantile(p, 0.5) - quantile(d, 0.5)),
      ratio: Math.round((quantile(p, 0.5) / quantile(d, 0.5)) * 100) / 100,
      targetAddedUs: TARGET_ADDED_US,
      withinTarget: us(quantile(p, 0.5) - quantile(d, 0.5)) <= TARGET_ADDED_US,
    };
    const outDir = path.join(root, 'bench', 'results');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'trace.json'), JSON.stringify(result, null, 2) + '\n');
    const md = [
      '# xs-trace: added round-trip latency',
      '',
      `${result.date}, ${result.host.cpus} CPUs, load ${result.host.load.join(' ')}, Node ${result.host.node}`,
      `${result.request}, ${result.rounds} rounds per path after ${result.warmup} warm-up, against ${result.daemon}; proxy writes ${result.proxyOutput}.`,
      '',
      '| path | median us | p90 us | p99 us |',
      '|---|---|---|---|',
      `| direct | ${result.directUs.median} | ${result.directUs.p90} | ${result.directUs.p99} |`,
      `| through xs-trace | ${result.proxyUs.median} | ${result.proxyUs.p90} | ${result.proxyUs.p99} |`,
      `| through a plain Node forwarder (floor) | ${result.plainForwarderUs.median} | ${result.plainForwarderUs.p90} | ${result.plainForwarderUs.p99} |`,
      '',
      `Added (median): **${result.addedMedianUs} us** (target <= ${TARGET_ADDED_US} us: ${result.withinTarget ? 'met' : 'NOT met'}); ratio proxy/direct: **${result.ratio}**.`,
      `For scale, a Node process that only forwards (same socket handling, no decoding) adds ${result.plainAddedMedianUs} us in the same run:`,
      `that is the cost of one more process hop on this machine; xs-trace's decoding, pairing and formatting run after forwarding, in batches.`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(outDir, 'trace.md'), md);
    process.stdout.write(md);
  } finally {
    for (const c of [proxy, plain]) {
      c.kill('SIGTERM');
      await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)));
    }
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The floor for comparison: the same socket handling as the proxy, decoding nothing. Like
 * the proxy it retries a connect refused with EAGAIN (C xenstored listens with a backlog of 1).
 */
function plainForwarder(listenPath: string, upstream: string): void {
  const open = (c: net.Socket, attempt: number): void => {
    const u = net.createConnection({
      path: upstream,
      onread: { buffer: Buffer.allocUnsafe(64 * 1024), callback: (n: number, b: Uint8Array) => c.write(Buffer.from(b.subarray(0, n))) },
    });
    u.once('connect', () => {
      c.on('data', (b) => u.write(b));
      c.on('close', () => u.destroy());
      u.on('close', () => c.destroy());
      c.resume();
    });
    u.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EAGAIN' && attempt < 50) setTimeout(() => open(c, attempt + 1), 2);
      else c.destroy();
    });
  };
  net
    .createServer({ pauseOnConnect: true }, (c) => {
      c.on('error', () => undefined);
      open(c, 0);
    })
    .listen(listenPath);
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[2] === '--plain-forwarder') {
  plainForwarder(process.argv[3], process.argv[4]);
} else {
  let parsed: Options | undefined;
  try {
    parsed = options(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench:trace: ${(e as Error).message}\n`);
    process.exitCode = 2;
  }
  if (parsed) main(parsed).catch((e) => {
    process.stderr.write(`bench:trace: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  });
}
