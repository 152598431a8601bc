/**
 * `npm run bench:cli`: the start-up cost of the command line (issue 15, point 5), as a user
 * feels it: the wall time of whole processes, from spawn to exit, side by side with the anchors
 * measured in the same run, in interleaved rounds so that machine load hits all alike:
 *
 *   node -e 0                      Node's own start-up (the anchor)
 *   xenstore-ls                    a C client of a private C xenstored (test/harness)
 *   xen-sshm --version
 *   xen-sshm check vm1 vm2 vm3     the proposal's three-VM configs (fixtures/config/three-vm)
 *   xen-sshm ls                    reading the records of that xenstored
 *   (unbundled) --version, check   the same from tsc's dist/lib/cli/xen-sshm.js, for comparison
 *
 * `xen-sshm` is the installed command, package.json's "bin": dist/lib/cli/xen-sshm.bundle.js,
 * built afresh from dist/ first (scripts/bundle-cli.js). Reports mean, median, p90, p99 and min
 * of each, and each command's ratio to `node -e 0`: of the means, of the p99s, and the median of
 * the per-round ratios, in bench/results/cli.json and .md.
 * Target: `check` within 1.5x of `node -e 0` (mean).
 *
 *   node dist/bench/cli.js [--rounds N] [--warmup N] [--node PATH] [--out DIR]
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot, startDaemon } from '../test/harness/daemons';

const TARGET_CHECK_RATIO = 1.5;

interface Sample {
  label: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  wallMs: number[];
}

function runOnce(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(0, 300)}`));
      else resolve(ms);
    });
  });
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function stats(xs: number[]): { mean: number; median: number; p90: number; p99: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, median: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), min: s[0], max: s[s.length - 1] };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '100' },
      warmup: { type: 'string', default: '3' },
      node: { type: 'string', default: process.execPath },
      out: { type: 'string' },
    },
  });
  const rounds = Number(values.rounds);
  const warmup = Number(values.warmup);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(warmup) || warmup < 0) throw new Error('--rounds and --warmup take whole numbers');
  const root = projectRoot();
  const node = values.node!;
  const three = path.join(root, 'fixtures', 'config', 'three-vm', 'static_shared_mem');
  // The command as installed (package.json "bin"), built from this dist/.
  execFileSync(node, [path.join(root, 'scripts', 'bundle-cli.js')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const bin = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['xen-sshm'];
  const cli = path.join(root, bin);
  const unbundled = path.join(root, 'dist', 'lib', 'cli', 'xen-sshm.js');
  const checkArgs = ['check', ...['vm1', 'vm2', 'vm3'].map((n) => path.join(three, `${n}.cfg`))];
  const daemon = await startDaemon('cxenstored');
  try {
    const env = { ...process.env, XENSTORED_PATH: daemon.socketPath };
    const samples: Sample[] = [
      { label: 'node -e 0', argv: [node, '-e', '0'], wallMs: [] },
      { label: 'xenstore-ls', argv: ['/usr/bin/xenstore-ls'], wallMs: [] },
      { label: 'xen-sshm --version', argv: [node, cli, '--version'], wallMs: [] },
      { label: 'xen-sshm check (three VMs)', argv: [node, cli, ...checkArgs], wallMs: [] },
      { label: 'xen-sshm ls', argv: [node, cli, 'ls', '--xenstore', daemon.socketPath], wallMs: [] },
      { label: '(unbundled) xen-sshm --version', argv: [node, unbundled, '--version'], wallMs: [] },
      { label: '(unbundled) xen-sshm check (three VMs)', argv: [node, unbundled, ...checkArgs], wallMs: [] },
    ];
    const load0 = os.loadavg();
    for (let r = 0; r < warmup + rounds; r++) {
      // Rotated order each round, so that no command always follows the same one.
      for (let i = 0; i < samples.length; i++) {
        const s = samples[(i + r) % samples.length];
        const ms = await runOnce(s.argv, s.env ?? env);
        if (r >= warmup) s.wallMs.push(ms);
      }
    }
    const load1 = os.loadavg();
    const anchor = samples[0];
    const anchorStats = stats(anchor.wallMs);
    const rows = samples.map((s) => {
      const st = stats(s.wallMs);
      const paired = s.wallMs.map((ms, i) => ms / anchor.wallMs[i]).sort((a, b) => a - b);
      return { label: s.label, ...st, ratioOfMeans: st.mean / anchorStats.mean, ratioOfP99: st.p99 / anchorStats.p99, pairedRatioMedian: quantile(paired, 0.5) };
    });
    const check = rows.find((r) => r.label.startsWith('xen-sshm check'))!;
    const result = {
      when: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: spawnVersion(node), loadavgStart: load0, loadavgEnd: load1 },
      rounds, warmup,
      bin,
      rows,
      target: { checkRatioOfMeans: TARGET_CHECK_RATIO, met: check.ratioOfMeans <= TARGET_CHECK_RATIO },
    };
    const outDir = values.out ?? path.join(root, 'bench', 'results');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'cli.json'), JSON.stringify(result, null, 2) + '\n');
    const f = (x: number): string => x.toFixed(1);
    const md = [
      '# bench:cli: start-up of the command line (whole processes, wall time)',
      '',
      `${result.when}, ${result.machine.cpus} CPUs (${result.machine.model}), node ${result.machine.node}; ${rounds} interleaved rounds after ${warmup} warm-up; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end.`,
      `\`xen-sshm\` is package.json's bin, ${bin}; "(unbundled)" is tsc's dist/lib/cli/xen-sshm.js.`,
      '',
      '| command | mean ms | median | p90 | p99 | min | mean / node -e 0 | p99 / node -e 0 | median of per-round ratios |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.label} | ${f(r.mean)} | ${f(r.median)} | ${f(r.p90)} | ${f(r.p99)} | ${f(r.min)} | ${r.ratioOfMeans.toFixed(2)}x | ${r.ratioOfP99.toFixed(2)}x | ${r.pairedRatioMedian.toFixed(2)}x |`),
      '',
      `Target: \`check\` within ${TARGET_CHECK_RATIO}x of \`node -e 0\` (mean): ${check.ratioOfMeans.toFixed(2)}x, ${result.target.met ? 'met' : 'NOT met'}.`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(outDir, 'cli.md'), md);
    process.stdout.write(md);
  } finally {
    await daemon.stop();
  }
}

function spawnVersion(node: string): string {
  try {
    return execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cli: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
