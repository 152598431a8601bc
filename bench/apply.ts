/**
 * `npm run bench:apply`: apply and release of a 1 GiB region (262,144 pages) on the sandbox
 * (a background in-memory xenstored process and the simulated host kept in a folder): the
 * owner's apply (populate), a borrower's apply (set_target and the mapping), a second apply of
 * the same config (nothing to do), the borrower's release and the owner's release, through the
 * library in this process, 3 runs, with wall time, CPU time and memory; then the same apply and
 * release as a user runs them (`xen-sshm apply ... --sandbox-dir`, one process each).
 * Writes bench/results/apply.json and .md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseXlConfig } from '../lib/config';
import { intercept } from '../lib/hypervisor/intercept';
import { SharedMemoryManager } from '../lib/manager';
import { Sandbox } from '../lib/sandbox';
import { createDomain, destroyDomain } from '../lib/sandbox/toolstack';

const RUNS = 3;
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const PAGES = GiB / 4096;

interface Phase {
  phase: string;
  ms: number;
  cpuMs: number;
  /** Peak resident-set growth during the phase (sampled every 2 ms), MiB. */
  rssPeakMiB: number;
  heapMiB: number;
  /** xenstore requests and hypercall calls made. */
  xenstoreRequests: number;
  hypercalls: number;
}

async function measure(phase: string, m: SharedMemoryManager, fn: () => Promise<unknown>, counts: { xs: number; hc: number }): Promise<Phase> {
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  const heap0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const xs0 = counts.xs;
  const hc0 = counts.hc;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  void m;
  return {
    phase,
    ms: round(ms),
    cpuMs: round((cpu.user + cpu.system) / 1000),
    rssPeakMiB: round((peak - rss0) / MiB),
    heapMiB: round((process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heap0) / MiB),
    xenstoreRequests: counts.xs - xs0,
    hypercalls: counts.hc - hc0,
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

async function libraryRuns(dir: string): Promise<Phase[][]> {
  const sandbox = new Sandbox(dir);
  const counts = { xs: 0, hc: 0 };
  // Counted through the two seams: the client's interceptor and the hypervisor's.
  const xs = await sandbox.connect({ interceptor: () => void counts.xs++ });
  const hv = sandbox.openHypervisor();
  const m = new SharedMemoryManager({ xenstore: xs, hypervisor: intercept(hv, { before: () => void counts.hc++ }) });
  const runs: Phase[][] = [];
  for (let run = 1; run <= RUNS; run++) {
    const owner = await createDomain(xs, hv, { name: `big${run}`, memoryMiB: 128 });
    const peer = await createDomain(xs, hv, { name: `peer${run}`, memoryMiB: 128 });
    const ownerCfg = parseXlConfig(`name = "big${run}"\nstatic_shm = ["id=GIB${run}, begin=0x100000000, size=1G, role=owner"]\n`);
    const peerCfg = parseXlConfig(`name = "peer${run}"\nstatic_shm = ["id=GIB${run}, begin=0x200000000, size=1G"]\n`);
    const phases: Phase[] = [];
    phases.push(await measure('apply owner (populate 1 GiB)', m, () => m.apply({ config: ownerCfg, domid: owner.domid, raiseMaxMem: true }), counts));
    phases.push(await measure('apply borrower (set_target + map 1 GiB)', m, () => m.apply({ config: peerCfg, domid: peer.domid, allowSetTarget: true }), counts));
    phases.push(await measure('apply borrower again (unchanged)', m, () => m.apply({ config: peerCfg, domid: peer.domid, allowSetTarget: true }), counts));
    phases.push(await measure('release borrower (unmap 1 GiB)', m, () => m.release({ domid: peer.domid }), counts));
    phases.push(await measure('release owner (free 1 GiB)', m, () => m.release({ domid: owner.domid }), counts));
    runs.push(phases);
    await destroyDomain(xs, hv, peer.domid);
    await destroyDomain(xs, hv, owner.domid);
  }
  m.dispose();
  await xs.close();
  await hv.close();
  return runs;
}

interface CliRun {
  command: string;
  ms: number;
  maxRssMiB: number;
}

function cliRuns(dir: string): CliRun[] {
  const cli = path.join(__dirname, '..', 'lib', 'cli', 'xen-sshm.js');
  const cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-bench-cfg-'));
  const owner = path.join(cfgDir, 'cliowner.cfg');
  const peer = path.join(cfgDir, 'clipeer.cfg');
  fs.writeFileSync(owner, 'name = "cliowner"\nmemory = 128\nstatic_shm = ["id=CLI, begin=0x100000000, size=1G, role=owner"]\n');
  fs.writeFileSync(peer, 'name = "clipeer"\nmemory = 128\nstatic_shm = ["id=CLI, begin=0x200000000, size=1G"]\n');
  const S = ['--sandbox-dir', dir];
  const steps: Array<[string, string[]]> = [
    // `create` applies too (xl create -p, apply, unpause) since wave 2: --no-apply makes the
    // domain only, so that each apply below is timed on its own.
    ['xen-sshm create --no-apply cliowner.cfg', ['create', owner, '--no-apply', ...S]],
    ['xen-sshm create --no-apply clipeer.cfg', ['create', peer, '--no-apply', ...S]],
    ['xen-sshm apply cliowner.cfg --raise-maxmem', ['apply', owner, '--raise-maxmem', ...S]],
    ['xen-sshm apply clipeer.cfg --allow-set-target', ['apply', peer, '--allow-set-target', ...S]],
    ['xen-sshm ls', ['ls', ...S]],
    ['xen-sshm peek CLI --length 64', ['peek', 'CLI', '--length', '64', ...S]],
    ['xen-sshm release --domain cliowner --force', ['release', '--domain', 'cliowner', '--force', ...S]],
  ];
  const out: CliRun[] = [];
  for (const [command, args] of steps) {
    // /usr/bin/time would add a dependency: the child reports its own peak RSS instead.
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['-e', `process.on('exit',()=>process.stderr.write('\\nMAXRSS '+process.resourceUsage().maxRSS+'\\n'));process.argv.splice(1,0,${JSON.stringify(cli)});require(${JSON.stringify(cli)}).buildProgram().parseAsync(process.argv).catch((e)=>require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'cli', 'handle-error.js'))}).handleError(e,{}))`, ...args], { encoding: 'utf8' });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr}`);
    const kib = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? 0);
    out.push({ command, ms: round(ms), maxRssMiB: round(kib / 1024) });
  }
  fs.rmSync(cfgDir, { recursive: true, force: true });
  return out;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-bench-'));
  const sandbox = new Sandbox(dir);
  try {
    const runs = await libraryRuns(dir);
    const cli = cliRuns(dir);
    const when = new Date().toISOString();
    const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    const result = { when, cpus: os.cpus().length, load, node: process.version, pages: PAGES, runs, cli };
    const out = path.join(__dirname, '..', '..', 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'apply.json'), JSON.stringify(result, null, 2) + '\n');
    const names = runs[0].map((p) => p.phase);
    const lines = [
      '# apply and release of a 1 GiB region on the sandbox',
      '',
      `${when}, ${os.cpus().length} CPUs, load ${load}, Node ${process.version}`,
      `The sandbox: the in-memory xenstored in its own process (socket), the simulated Xen host kept in a folder. One region of ${PAGES} pages (1 GiB): an owner populates it, a borrower maps it. Library calls in one process, ${RUNS} runs (run 1 is cold); each phase's wall and CPU time, peak RSS growth (sampled every 2 ms), heap + ArrayBuffer growth, and the xenstore requests and hypercall calls it made.`,
      '',
      '| phase | ' + runs.map((_r, i) => `run ${i + 1} ms`).join(' | ') + ' | CPU ms (last) | peak RSS growth MiB (max) | heap growth MiB (last) | xenstore requests | hypercall calls |',
      '|---|' + runs.map(() => '---|').join('') + '---|---|---|---|---|',
      ...names.map((name, k) => {
        const row = runs.map((r) => r[k]);
        const last = row[row.length - 1];
        return `| ${name} | ${row.map((p) => p.ms).join(' | ')} | ${last.cpuMs} | ${Math.max(...row.map((p) => p.rssPeakMiB))} | ${last.heapMiB} | ${last.xenstoreRequests} | ${last.hypercalls} |`;
      }),
      '',
      'The same as a user runs it, one `xen-sshm` process per command (wall time includes starting Node):',
      '',
      '| command | ms | max RSS MiB |',
      '|---|---|---|',
      ...cli.map((c) => `| \`${c.command}\` | ${c.ms} | ${c.maxRssMiB} |`),
      '',
    ];
    fs.writeFileSync(path.join(out, 'apply.md'), lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    await sandbox.remove();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:apply: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
