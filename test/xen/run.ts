/**
 * `npm run test:xen`: the real-Xen tier, for each release (Xen 4.17 with a Debian 12 dom0, Xen
 * 4.20 with a Debian 13 dom0). Fetches Debian's arm64 Xen, kernel, tools and node (cached in
 * .cache/xen-arm64, 4.20 in its subfolder xen-4.20), packs this package once (`npm pack`:
 * prepack cross-builds the arm64 addon it ships) and installs it into each dom0's image, builds
 * the dom0 and domU images, boots Xen under qemu-system-aarch64, runs the checks of checks.ts
 * inside dom0 and judges the serial console. Exits non-zero on any failed or missing check, a
 * timeout or a panic.
 *
 *   node dist/test/xen/run.js [--release 4.17|4.20] [--timeout SEC] [--verbose]
 *                             [--inject-failure] [--refresh] [--only NAME,NAME]
 *                             [--adhoc SCRIPT] [--cache DIR]
 *
 * See docs/real-xen.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs as parseNodeArgs } from 'node:util';
import { boot, BootResult } from './boot';
import { CHECKS, CheckSpec, checksListText, INJECTED_FAILURE, optInReason } from './checks';
import { XenTierError } from './errors';
import { run } from './exec';
import { fetchPackages, FetchedPackages } from './fetch';
import { buildImages } from './images';
import { packCheckout } from '../package/pack';
import { releaseApt, releaseCacheDir, tierRelease, TierReleaseSpec, TIER_RELEASES } from './releases';
import { excerpt, judge, Judgement, parseConsole, ParsedConsole } from './results';

const REPO = path.resolve(__dirname, '../../..');
const GUEST_SRC = path.join(REPO, 'test/xen/guest');

export interface RunOptions {
  /** The releases to boot, in order (default all: 4.17 then 4.20). */
  releases: TierReleaseSpec[];
  /** Per release: the whole-boot limit. */
  timeoutSec: number;
  /**
   * Multiplies every check's own time limit (default 1). For a host so loaded that QEMU gets a
   * fraction of a core: the limits are set for a quiet 2-core machine, and a check that is only
   * slow must not read as one that hangs. Raise --timeout with it.
   */
  limitFactor: number;
  verbose: boolean;
  injectFailure: boolean;
  refresh: boolean;
  only?: string[];
  /** A shell script to run in dom0 as an extra check named `adhoc` (trying things out). */
  adhoc?: string;
  cacheDir: string;
}

/** The tier's command line, through node:util's parseArgs (issue 12: no hand parsing). */
export function parseArgs(argv: string[]): RunOptions {
  let v: ReturnType<typeof parse>;
  const parse = (args: string[]) => parseNodeArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      release: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      'limit-factor': { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      'inject-failure': { type: 'boolean' },
      refresh: { type: 'boolean' },
      only: { type: 'string' },
      cache: { type: 'string' },
      adhoc: { type: 'string' },
    },
  });
  try {
    v = parse(argv);
  } catch (e) {
    throw new XenTierError('results', 'EINVAL', `${(e as Error).message} (see docs/real-xen.md)`);
  }
  const o = v.values;
  const releases = (o.release ?? [...TIER_RELEASES]).flatMap((r) => r.split(',')).map(tierRelease);
  const timeoutSec = o.timeout === undefined ? 840 : Number(o.timeout);
  if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) throw new XenTierError('results', 'EINVAL', '--timeout must be a positive number of seconds');
  const limitFactor = o['limit-factor'] === undefined ? 1 : Number(o['limit-factor']);
  if (!Number.isFinite(limitFactor) || limitFactor < 1 || limitFactor > 10) throw new XenTierError('results', 'EINVAL', '--limit-factor must be a number from 1 to 10');
  return {
    limitFactor,
    releases: [...new Map(releases.map((r) => [r.release, r])).values()],
    timeoutSec,
    verbose: o.verbose === true,
    injectFailure: o['inject-failure'] === true,
    refresh: o.refresh === true,
    ...(o.only !== undefined ? { only: o.only.split(',') } : {}),
    ...(o.adhoc !== undefined ? { adhoc: path.resolve(o.adhoc) } : {}),
    cacheDir: path.resolve(o.cache ?? path.join(REPO, '.cache/xen-arm64')),
  };
}

/** The host tools the tier runs, each with the Debian package that provides it. */
const HOST_TOOLS: ReadonlyArray<[tool: string, pkg: string]> = [
  ['qemu-system-aarch64', 'qemu-system-arm'], ['cpio', 'cpio'], ['gzip', 'gzip'],
  ['timeout', 'coreutils'], ['dpkg-deb', 'dpkg'], ['apt-get', 'apt'], ['xz', 'xz-utils'],
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
function buildGuestTools(cacheDir: string, r: TierReleaseSpec, pkgs: FetchedPackages): { xenbusReq: string; setMaxMem: string; evtchn: string } {
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
  const misc = pkgs.roots.get(r.libxenctrlPackage);
  if (!misc) throw new XenTierError('image', 'ENOENT', `${r.libxenctrlPackage} (libxenctrl) was not fetched`);
  return {
    xenbusReq: build('xenbus-req', ['-static']),
    // Its own dependencies resolve in dom0, where all of xen-utils' libraries are.
    setMaxMem: build('xc-setmaxmem', [path.join(misc, 'usr/lib/aarch64-linux-gnu', r.libxenctrl), '-Wl,--allow-shlib-undefined']),
    // dom0's side of a doorbell (EVTCHNOP_alloc_unbound, status) until the manager makes them.
    evtchn: build('xc-evtchn', [path.join(misc, 'usr/lib/aarch64-linux-gnu', r.libxenctrl), '-Wl,--allow-shlib-undefined']),
  };
}

/**
 * The guest program (guest/xen-sshm-guest.c) for the domUs, built by the guest side's own
 * script. A failed build does not stop the run: the doorbell checks then fail with the reason.
 */
function buildGuestProgram(cacheDir: string): { path?: string; baremetal?: string; status: string } {
  const script = path.join(REPO, 'scripts/build-guest.sh');
  const r = run('image', 'bash', [script, 'arm64', 'arm64-baremetal', '--out', path.join(cacheDir, 'images/guest')], { cwd: REPO, allowFail: true });
  const out = path.join(cacheDir, 'images/guest/arm64/xen-sshm-guest');
  const baremetal = path.join(cacheDir, 'images/guest/arm64/xen-sshm-baremetal.Image');
  if (r.status !== 0 || !fs.existsSync(out) || !fs.existsSync(baremetal)) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ');
    return { status: `not built: scripts/build-guest.sh exited ${r.status}: ${tail}` };
  }
  return { path: out, baremetal, status: 'built' };
}

function domuFiles(xenbusReq: string, guestProgram?: string): Map<string, { data: string | Buffer; mode: number }> {
  const files = new Map<string, { data: string | Buffer; mode: number }>();
  files.set('init', { data: fs.readFileSync(path.join(GUEST_SRC, 'init-domu.sh')), mode: 0o755 });
  files.set('usr/local/bin/xenbus-req', { data: fs.readFileSync(xenbusReq), mode: 0o755 });
  if (guestProgram) files.set('usr/local/bin/xen-sshm-guest', { data: fs.readFileSync(guestProgram), mode: 0o755 });
  for (const f of fs.readdirSync(path.join(GUEST_SRC, 'domu'))) {
    files.set(`usr/local/bin/${f}`, { data: fs.readFileSync(path.join(GUEST_SRC, 'domu', f)), mode: 0o755 });
  }
  return files;
}

/**
 * /xen/release.env in dom0: what the guest scripts need to know of the release (sourced by
 * init-dom0.sh and lib.sh, read by the node checks from the environment).
 */
export function releaseEnv(r: TierReleaseSpec, limitFactor = 1): string {
  // XEN_LIMIT_FACTOR: --limit-factor, for the waits inside the checks (lib.sh wait_for,
  // domu_run), as the runner scales each check's own limit.
  return [`XEN_RELEASE=${r.release}`, `XEN_NODE_MAJOR=${r.nodeMajor}`, `XEN_LIBEXEC=${r.xenLibexec}`, `XEN_DEBIAN="${r.debian}"`, `XEN_LIMIT_FACTOR=${limitFactor}`].join('\n') + '\n';
}

function guestFiles(r: TierReleaseSpec, checks: CheckSpec[], shimStatus: string, setMaxMem: string, adhoc?: string, evtchn?: string, guest?: { baremetal?: string; status: string }, limitFactor = 1): Map<string, { data: string | Buffer; mode: number }> {
  const files = new Map<string, { data: string | Buffer; mode: number }>();
  files.set('release.env', { data: releaseEnv(r, limitFactor), mode: 0o644 });
  files.set('bin/xc-setmaxmem', { data: fs.readFileSync(setMaxMem), mode: 0o755 });
  if (evtchn) files.set('bin/xc-evtchn', { data: fs.readFileSync(evtchn), mode: 0o755 });
  if (guest) files.set('guest-status', { data: guest.status + '\n', mode: 0o644 });
  if (guest?.baremetal) files.set('xen-sshm-baremetal.Image', { data: fs.readFileSync(guest.baremetal), mode: 0o644 });
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

function printSummary(r: TierReleaseSpec, j: Judgement, checks: CheckSpec[], f: Figures): void {
  const w = Math.max(...checks.map((c) => c.name.length));
  process.stdout.write(`\nreal-Xen checks (Xen ${r.release} arm64, ${r.debian} dom0, under QEMU):\n`);
  for (const v of j.verdicts) {
    const mark = v.ok ? 'ok  ' : 'FAIL';
    const exp = v.expect === 'FAIL' ? ' (must fail)' : '';
    const took = f.guest[`check:${v.name}`];
    const secs = took === undefined ? '      ' : `${took.toFixed(1).padStart(5)}s`;
    process.stdout.write(`  ${mark} ${v.name.padEnd(w)} ${secs}  ${v.got}${exp}  ${v.detail}\n`);
  }
  for (const p of j.runProblems) process.stdout.write(`  FAIL run: ${p}\n`);
  const h = f.host;
  process.stdout.write(`\nXen ${r.release} times (host clock from QEMU start): Xen banner ${fmt(h.xenBanner)}, dom0 kernel ${fmt(h.dom0Kernel)}, ` +
    `dom0 /init ${fmt(h.dom0Init)}, dom0 ready ${fmt(h.dom0Ready)}, checks done ${fmt(h.checksDone)}, QEMU exit ${fmt(h.qemuExit)}\n`);
  const g = f.guest;
  // Per-page figures are microseconds: print them so, and the rest in seconds.
  const figs = Object.entries(g).filter(([k]) => !k.startsWith('check:'))
    .map(([k, v]) => (k.endsWith('-per-page') ? `${k} ${(v * 1e6).toFixed(1)} µs` : `${k} ${v.toFixed(2)} s`)).join(', ');
  if (figs) process.stdout.write(`Xen ${r.release} dom0 clock: ${figs}\n`);
  process.stdout.write(`Xen ${r.release} preparation: ${Object.entries(f.prepare).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}; whole run ${fmt(h.wholeRun)}\n\n`);
}

interface ReleaseOutcome { release: string; passed: number; failed: number; ok: boolean; seconds: number }

export async function main(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  requireHostTools();
  fs.mkdirSync(opts.cacheDir, { recursive: true });
  const t0 = Date.now();
  const packed = { ...packPackage(opts.cacheDir, (s) => process.stdout.write(`[xen] ${s}\n`)), seconds: 0 };
  packed.seconds = (Date.now() - t0) / 1000;
  const outcomes: ReleaseOutcome[] = [];
  for (const r of opts.releases) {
    try {
      outcomes.push(await runRelease(r, opts, packed));
    } catch (err) {
      // One release's preparation failing (a download, an image) must not hide the other's run.
      const e = err as XenTierError;
      process.stderr.write(`test:xen: Xen ${r.release}: ${e.step ? `[${e.step}] ` : ''}${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
      process.stdout.write(`Xen ${r.release}: 0 passed, 1 failed\n`);
      outcomes.push({ release: r.release, passed: 0, failed: 1, ok: false, seconds: 0 });
    }
  }
  if (outcomes.length > 1) {
    for (const o of outcomes) process.stdout.write(`Xen ${o.release}: ${o.passed} passed, ${o.failed} failed (${o.seconds.toFixed(0)} s)\n`);
  }
  // The plain closing line CI reads: all releases together.
  process.stdout.write(`${outcomes.reduce((n, o) => n + o.passed, 0)} passed, ${outcomes.reduce((n, o) => n + o.failed, 0)} failed\n`);
  return outcomes.every((o) => o.ok) ? 0 : 1;
}

async function runRelease(r: TierReleaseSpec, opts: RunOptions, packed: { path?: string; status: string; seconds: number }): Promise<ReleaseOutcome> {
  const tStart = Date.now();
  const cacheDir = releaseCacheDir(opts.cacheDir, r);
  const log = (s: string): void => { process.stdout.write(`[xen ${r.release}] ${s}\n`); };
  const prep: Record<string, number> = {};
  const step = <T>(name: string, fn: () => T): T => {
    const t = Date.now();
    const r = fn();
    prep[name] = (Date.now() - t) / 1000;
    return r;
  };

  fs.mkdirSync(cacheDir, { recursive: true });
  const pkgs = step('fetch', () => fetchPackages({ cacheDir, seeds: r.seeds, refresh: opts.refresh, log, apt: releaseApt(opts.cacheDir, r) }));
  // `shim` is the packed package (packed once for all releases): its prebuilt arm64 addon is
  // what dom0 loads.
  const shim = packed;
  prep.package = packed.seconds;
  if (!shim.path) log(`package: ${shim.status}`);

  let checks = CHECKS.filter((c) => !optInReason(c, r.release));
  for (const c of CHECKS) {
    const why = optInReason(c, r.release);
    if (why && !opts.only?.includes(c.name)) log(`not run (only with --only ${c.name}): ${c.name}: ${why}`);
  }
  if (opts.only) {
    const unknown = opts.only.filter((n) => !CHECKS.some((c) => c.name === n));
    if (unknown.length) throw new XenTierError('results', 'EINVAL', `--only: unknown checks ${unknown.join(', ')}`);
    checks = CHECKS.filter((c) => opts.only!.includes(c.name));
  }
  if (opts.limitFactor !== 1) checks = checks.map((c) => ({ ...c, limit: Math.ceil(c.limit * opts.limitFactor) }));
  if (opts.injectFailure) checks = [...checks, INJECTED_FAILURE];
  if (opts.adhoc) {
    checks = [...checks, { name: 'adhoc', script: 'checks/adhoc.sh', expect: 'PASS', limit: opts.timeoutSec, what: `--adhoc ${opts.adhoc}` }];
  }

  const runDir = path.join(cacheDir, 'run');
  fs.mkdirSync(runDir, { recursive: true });
  const files = step('images', () => {
    const tools = buildGuestTools(cacheDir, r, pkgs);
    const guest = buildGuestProgram(cacheDir);
    if (!guest.path) log(`guest program: ${guest.status}`);
    return buildImages(pkgs, r, {
      repoRoot: REPO,
      tarball: shim.path,
      xenFiles: guestFiles(r, checks, shim.status, tools.setMaxMem, opts.adhoc, tools.evtchn, guest, opts.limitFactor),
      domuFiles: domuFiles(tools.xenbusReq, guest.path),
    }, path.join(cacheDir, 'images'), log);
  });

  const consoleLog = path.join(runDir, 'console.log');
  log(`booting Xen ${r.release} + Linux ${files.kernelVersion} under qemu-system-aarch64 (timeout ${opts.timeoutSec} s; console in ${path.relative(REPO, consoleLog)})`);
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
  printSummary(r, j, checks, f);
  if (!j.ok) {
    process.stdout.write(excerpt(b.lines, parsed, j).join('\n') + '\n\n');
  }
  fs.writeFileSync(path.join(runDir, 'result.json'), JSON.stringify({
    release: r.release, debian: r.debian, ok: j.ok, verdicts: j.verdicts, runProblems: j.runProblems, figures: f,
    kernel: files.kernelVersion, shim: shim.status, finishedAt: new Date().toISOString(),
  }, null, 2) + '\n');
  const failed = j.failed + (j.runProblems.length > 0 ? 1 : 0);
  process.stdout.write(`Xen ${r.release}: ${j.passed} passed, ${failed} failed\n`);
  return { release: r.release, passed: j.passed, failed, ok: j.ok, seconds: total };
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
