/**
 * `npm run test:xen`: the real-Xen tier. Fetches Debian's arm64 Xen, kernel, tools and node
 * (cached in .cache/xen-arm64), packs this package (`npm pack`: prepack cross-builds the arm64
 * addon it ships) and installs it into dom0's image, builds the dom0 and domU images, boots
 * Xen 4.17 under qemu-system-aarch64, runs the checks of checks.ts inside dom0 and judges the
 * serial console. Exits non-zero on any failed or missing check, a timeout or a panic.
 *
 *   node dist/test/xen/run.js [--timeout SEC] [--verbose] [--inject-failure] [--refresh]
 *                             [--only NAME,NAME] [--adhoc SCRIPT] [--cache DIR]
 *
 * See docs/real-xen.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { boot, BootResult } from './boot';
import { CHECKS, CheckSpec, checksListText, INJECTED_FAILURE } from './checks';
import { XenTierError } from './errors';
import { run } from './exec';
import { fetchPackages, FetchedPackages } from './fetch';
import { buildImages, DOM0_SEEDS } from './images';
import { packCheckout } from '../package/pack';
import { excerpt, judge, Judgement, parseConsole, ParsedConsole } from './results';

const REPO = path.resolve(__dirname, '../../..');
const GUEST_SRC = path.join(REPO, 'test/xen/guest');

export interface RunOptions {
  timeoutSec: number;
  verbose: boolean;
  injectFailure: boolean;
  refresh: boolean;
  only?: string[];
  /** A shell script to run in dom0 as an extra check named `adhoc` (trying things out). */
  adhoc?: string;
  cacheDir: string;
}

function parseArgs(argv: string[]): RunOptions {
  const o: RunOptions = {
    timeoutSec: 570, verbose: false, injectFailure: false, refresh: false,
    cacheDir: path.join(REPO, '.cache/xen-arm64'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new XenTierError('results', 'EINVAL', `${a} needs a value`);
      return v;
    };
    if (a === '--timeout') o.timeoutSec = Number(val());
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else if (a === '--inject-failure') o.injectFailure = true;
    else if (a === '--refresh') o.refresh = true;
    else if (a === '--only') o.only = val().split(',');
    else if (a === '--cache') o.cacheDir = path.resolve(val());
    else if (a === '--adhoc') o.adhoc = path.resolve(val());
    else throw new XenTierError('results', 'EINVAL', `unknown option ${a} (see docs/real-xen.md)`);
  }
  if (!Number.isFinite(o.timeoutSec) || o.timeoutSec <= 0) throw new XenTierError('results', 'EINVAL', '--timeout must be a positive number of seconds');
  return o;
}

/** The host tools the tier runs, each with the Debian package that provides it. */
const HOST_TOOLS: ReadonlyArray<[tool: string, pkg: string]> = [
  ['qemu-system-aarch64', 'qemu-system-arm'], ['cpio', 'cpio'], ['gzip', 'gzip'],
  ['timeout', 'coreutils'], ['dpkg-deb', 'dpkg'], ['apt-get', 'apt'],
  ['aarch64-linux-gnu-gcc', 'gcc-aarch64-linux-gnu'], ['aarch64-linux-gnu-g++', 'g++-aarch64-linux-gnu'],
];

/** Checks every host tool before anything is fetched or booted, naming the packages missing. */
function requireHostTools(): void {
  const missing = HOST_TOOLS.filter(([tool]) => run('boot', 'sh', ['-c', `command -v ${tool}`], { allowFail: true }).status !== 0);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
    throw new XenTierError('boot', 'ENOENT', `missing host tools ${missing.map(([t]) => t).join(', ')}: apt-get install --no-install-recommends ${pkgs} (see .ci/run)`, missing[0][0]);
  }
}

/**
 * Packs this package as a user gets it (`npm pack` of a copy of the checkout: prepack builds the
 * prebuilt addons, the arm64 one with scripts/cross-build-shim-arm64.sh's toolchain). A failure
 * is not fatal here: the checks that need the package then fail in dom0 with this reason (in
 * /xen/shim-status), so the run fails loudly.
 */
function packPackage(cacheDir: string, log: (s: string) => void): { path?: string; status: string } {
  const work = path.join(cacheDir, 'pack');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  try {
    const p = packCheckout(REPO, work);
    if (!p.files.includes('prebuilds/linux-arm64/xen_sshm_shim.node')) return { status: `not built: ${path.basename(p.tarball)} has no prebuilds/linux-arm64` };
    log(`package: ${path.basename(p.tarball)}, ${p.files.length} files, ${(p.size / 1024).toFixed(0)} KiB, with the prebuilt linux-arm64 addon`);
    return { path: p.tarball, status: 'built' };
  } catch (e) {
    return { status: `not built: npm pack failed: ${(e as Error).message}` };
  }
}

/**
 * Small C tools of the tier, cross-built for arm64 only when their source changed:
 * xenbus-req (static, for the domU) and xc-setmaxmem (dom0, against the fetched libxenctrl).
 */
function buildGuestTools(cacheDir: string, pkgs: FetchedPackages): { xenbusReq: string; setMaxMem: string } {
  const cc = process.env.CROSS_CC ?? 'aarch64-linux-gnu-gcc';
  const outDir = path.join(cacheDir, 'images');
  fs.mkdirSync(outDir, { recursive: true });
  const build = (name: string, extra: string[]): string => {
    const src = path.join(GUEST_SRC, `${name}.c`);
    const out = path.join(outDir, name);
    if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs) return out;
    run('image', cc, ['-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', out, src, ...extra]);
    return out;
  };
  const misc = pkgs.roots.get('libxenmisc4.17');
  if (!misc) throw new XenTierError('image', 'ENOENT', 'libxenmisc4.17 (libxenctrl) was not fetched');
  return {
    xenbusReq: build('xenbus-req', ['-static']),
    // Its own dependencies resolve in dom0, where all of xen-utils' libraries are.
    setMaxMem: build('xc-setmaxmem', [path.join(misc, 'usr/lib/aarch64-linux-gnu/libxenctrl.so.4.17'), '-Wl,--allow-shlib-undefined']),
  };
}

function domuFiles(xenbusReq: string): Map<string, { data: string | Buffer; mode: number }> {
  const files = new Map<string, { data: string | Buffer; mode: number }>();
  files.set('init', { data: fs.readFileSync(path.join(GUEST_SRC, 'init-domu.sh')), mode: 0o755 });
  files.set('usr/local/bin/xenbus-req', { data: fs.readFileSync(xenbusReq), mode: 0o755 });
  for (const f of fs.readdirSync(path.join(GUEST_SRC, 'domu'))) {
    files.set(`usr/local/bin/${f}`, { data: fs.readFileSync(path.join(GUEST_SRC, 'domu', f)), mode: 0o755 });
  }
  return files;
}

function guestFiles(checks: CheckSpec[], shimStatus: string, setMaxMem: string, adhoc?: string): Map<string, { data: string | Buffer; mode: number }> {
  const files = new Map<string, { data: string | Buffer; mode: number }>();
  files.set('bin/xc-setmaxmem', { data: fs.readFileSync(setMaxMem), mode: 0o755 });
  const read = (p: string): Buffer => fs.readFileSync(path.join(GUEST_SRC, p));
  files.set('init', { data: read('init-dom0.sh'), mode: 0o755 });
  files.set('lib.sh', { data: read('lib.sh'), mode: 0o644 });
  files.set('run-checks.sh', { data: read('run-checks.sh'), mode: 0o755 });
  files.set('guest-mem.sh', { data: read('guest-mem.sh'), mode: 0o644 });
  for (const f of fs.readdirSync(path.join(GUEST_SRC, 'checks'))) {
    files.set(`checks/${f}`, { data: read(`checks/${f}`), mode: 0o644 });
  }
  if (adhoc) files.set('checks/adhoc.sh', { data: fs.readFileSync(adhoc), mode: 0o644 });
  for (const c of checks) {
    if (c.script.startsWith('checks/') && !files.has(c.script)) {
      throw new XenTierError('image', 'ENOENT', `check ${c.name}: no script test/xen/guest/${c.script}`, path.join(GUEST_SRC, c.script));
    }
  }
  files.set('checks.list', { data: checksListText(checks), mode: 0o644 });
  files.set('shim-status', { data: shimStatus + '\n', mode: 0o644 });
  return files;
}

function fmt(s: number | undefined): string {
  return s === undefined ? '-' : `${s.toFixed(1)} s`;
}

interface Figures {
  prepare: Record<string, number>;
  host: Record<string, number | undefined>;
  guest: Record<string, number>;
}

function figures(prep: Record<string, number>, parsed: ParsedConsole, b: BootResult, total: number): Figures {
  return {
    prepare: prep,
    host: {
      xenBanner: parsed.milestones.xenBanner,
      dom0Kernel: parsed.milestones.dom0Kernel,
      dom0Init: parsed.milestones.dom0Init,
      dom0Ready: parsed.milestones.dom0Ready,
      checksDone: parsed.milestones.done,
      qemuExit: b.seconds,
      wholeRun: total,
    },
    guest: Object.fromEntries(parsed.guestTimes),
  };
}

function printSummary(j: Judgement, checks: CheckSpec[], f: Figures): void {
  const w = Math.max(...checks.map((c) => c.name.length));
  process.stdout.write('\nreal-Xen checks (Xen 4.17 arm64 under QEMU):\n');
  for (const v of j.verdicts) {
    const mark = v.ok ? 'ok  ' : 'FAIL';
    const exp = v.expect === 'FAIL' ? ' (must fail)' : '';
    const took = f.guest[`check:${v.name}`];
    const secs = took === undefined ? '      ' : `${took.toFixed(1).padStart(5)}s`;
    process.stdout.write(`  ${mark} ${v.name.padEnd(w)} ${secs}  ${v.got}${exp}  ${v.detail}\n`);
  }
  for (const p of j.runProblems) process.stdout.write(`  FAIL run: ${p}\n`);
  const h = f.host;
  process.stdout.write(`\ntimes (host clock from QEMU start): Xen banner ${fmt(h.xenBanner)}, dom0 kernel ${fmt(h.dom0Kernel)}, ` +
    `dom0 /init ${fmt(h.dom0Init)}, dom0 ready ${fmt(h.dom0Ready)}, checks done ${fmt(h.checksDone)}, QEMU exit ${fmt(h.qemuExit)}\n`);
  const g = f.guest;
  // Per-page figures are microseconds: print them so, and the rest in seconds.
  const figs = Object.entries(g).filter(([k]) => !k.startsWith('check:'))
    .map(([k, v]) => (k.endsWith('-per-page') ? `${k} ${(v * 1e6).toFixed(1)} µs` : `${k} ${v.toFixed(2)} s`)).join(', ');
  if (figs) process.stdout.write(`dom0 clock: ${figs}\n`);
  process.stdout.write(`preparation: ${Object.entries(f.prepare).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}; whole run ${fmt(h.wholeRun)}\n\n`);
}

export async function main(argv: string[]): Promise<number> {
  const tStart = Date.now();
  const opts = parseArgs(argv);
  const log = (s: string): void => { process.stdout.write(`[xen] ${s}\n`); };
  const prep: Record<string, number> = {};
  const step = <T>(name: string, fn: () => T): T => {
    const t = Date.now();
    const r = fn();
    prep[name] = (Date.now() - t) / 1000;
    return r;
  };

  requireHostTools();
  fs.mkdirSync(opts.cacheDir, { recursive: true });
  const pkgs = step('fetch', () => fetchPackages({ cacheDir: opts.cacheDir, seeds: DOM0_SEEDS, refresh: opts.refresh, log }));
  // `shim` is the packed package: its prebuilt arm64 addon is what dom0 loads.
  const shim = step('package', () => packPackage(opts.cacheDir, log));
  if (!shim.path) log(`package: ${shim.status}`);

  let checks = CHECKS;
  if (opts.only) {
    const unknown = opts.only.filter((n) => !CHECKS.some((c) => c.name === n));
    if (unknown.length) throw new XenTierError('results', 'EINVAL', `--only: unknown checks ${unknown.join(', ')}`);
    checks = CHECKS.filter((c) => opts.only!.includes(c.name));
  }
  if (opts.injectFailure) checks = [...checks, INJECTED_FAILURE];
  if (opts.adhoc) {
    checks = [...checks, { name: 'adhoc', script: 'checks/adhoc.sh', expect: 'PASS', limit: opts.timeoutSec, what: `--adhoc ${opts.adhoc}` }];
  }

  const runDir = path.join(opts.cacheDir, 'run');
  fs.mkdirSync(runDir, { recursive: true });
  const files = step('images', () => {
    const tools = buildGuestTools(opts.cacheDir, pkgs);
    return buildImages(pkgs, {
      repoRoot: REPO,
      tarball: shim.path,
      xenFiles: guestFiles(checks, shim.status, tools.setMaxMem, opts.adhoc),
      domuFiles: domuFiles(tools.xenbusReq),
    }, path.join(opts.cacheDir, 'images'), log);
  });

  const consoleLog = path.join(runDir, 'console.log');
  log(`booting Xen 4.17 + Linux ${files.kernelVersion} under qemu-system-aarch64 (timeout ${opts.timeoutSec} s; console in ${path.relative(REPO, consoleLog)})`);
  let lastProgress = '';
  const b = await boot({
    files, timeoutSec: opts.timeoutSec, consoleLog,
    onLine: (l) => {
      if (opts.verbose) process.stdout.write(`[${l.t.toFixed(1).padStart(6)}] ${l.text}\n`);
      else if (/XENCHECK \S+ (PASS|FAIL)/.test(l.text) && l.text !== lastProgress) {
        lastProgress = l.text;
        process.stdout.write(`[${l.t.toFixed(1).padStart(6)}] ${l.text.slice(l.text.indexOf('XENCHECK'))}\n`);
      }
    },
  });
  const parsed = parseConsole(b.lines);
  if (b.fatal) parsed.problems.push(`stopped after: ${b.fatal}`);
  const j = judge(checks, parsed, { code: b.code, timedOut: b.timedOut });
  const total = (Date.now() - tStart) / 1000;
  const f = figures(prep, parsed, b, total);
  printSummary(j, checks, f);
  if (!j.ok) {
    process.stdout.write(excerpt(b.lines, parsed, j).join('\n') + '\n\n');
  }
  fs.writeFileSync(path.join(runDir, 'result.json'), JSON.stringify({
    ok: j.ok, verdicts: j.verdicts, runProblems: j.runProblems, figures: f,
    kernel: files.kernelVersion, shim: shim.status, finishedAt: new Date().toISOString(),
  }, null, 2) + '\n');
  // The plain closing line CI reads.
  process.stdout.write(`${j.passed} passed, ${j.failed + (j.runProblems.length > 0 ? 1 : 0)} failed\n`);
  return j.ok ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      const e = err as XenTierError;
      process.stderr.write(`test:xen: ${e.step ? `[${e.step}] ` : ''}${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
      process.stdout.write('0 passed, 1 failed\n');
      process.exitCode = 1;
    },
  );
}
