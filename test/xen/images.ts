/**
 * Builds the guests' initramfs images (newc cpio, gzip) from the extracted packages.
 *
 * dom0's image is two gzip'd cpio archives concatenated, which Linux unpacks one after the
 * other into the same rootfs: a "system" part built only from Debian packages (cached, keyed by
 * the package manifest) and a "project" part rebuilt on every run (/init, check scripts, the
 * domU image, this package). That keeps a cached run's image step to about a second.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { XenTierError } from './errors';
import { run } from './exec';
import { closure, FetchedPackages, kernelPackage } from './fetch';
import { installTarball } from '../package/pack';
import { TierReleaseSpec, TIER_RELEASE_SPECS } from './releases';

/** Packages the 4.17 guest images get (each release's list: releases.ts). */
export const DOM0_SEEDS = TIER_RELEASE_SPECS['4.17'].seeds;

/**
 * A domU needs busybox and the xenstore CLI (its view of /dev/xen/xenbus), with their libraries:
 * a small image.
 */
export const DOMU_PACKAGES = ['busybox-static', 'xenstore-utils'];

/** Xen driver modules in load order (FACTS.md section 6). */
export const XEN_MODULES = ['xen-privcmd', 'xenfs', 'xen-evtchn', 'xen-gntdev', 'xen-gntalloc'];
/** Of those, what a domU's doorbell needs: /dev/xen/evtchn, and /dev/xen/privcmd (guest/README.md). */
export const DOMU_XEN_MODULES = ['xen-evtchn', 'xen-privcmd'];

/** Never needed in a guest: documentation, translations, python (pygrub), headers. */
const PRUNE = (r: TierReleaseSpec): string[] => [
  'usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian',
  'usr/share/bug', 'usr/share/bash-completion', 'usr/share/gdb', 'usr/include',
  `${r.xenLibexec.slice(1)}/lib/python`, `${r.xenLibexec.slice(1)}/boot`, 'etc/init.d', 'etc/default',
  'usr/lib/python3', 'usr/share/systemd', 'lib/systemd', 'usr/lib/systemd',
  // glibc's iconv modules (20 MB): nothing here converts charsets, and a 128 MiB domU could
  // not unpack them (its initramfs stopped part-way, without libxenstore).
  'usr/lib/aarch64-linux-gnu/gconv',
];

export interface BootFiles {
  /** Xen, loaded by QEMU -kernel. */
  xen: string;
  /** dom0 (and domU) Linux Image. */
  kernel: string;
  kernelVersion: string;
  dom0Initrd: string;
  domuInitrd: string;
}

export interface ProjectPayload {
  /** Repository root (holds package.json, dist/, node_modules/). */
  repoRoot: string;
  /** The packed package (`npm pack`, with its prebuilt arm64 addon), or undefined when packing failed. */
  tarball?: string;
  /** Files to add under /xen in dom0: name -> contents. */
  xenFiles: Map<string, { data: string | Buffer; mode: number }>;
  /** Files of the domU image, by path inside it ('init', 'usr/local/bin/...'). */
  domuFiles: Map<string, { data: string | Buffer; mode: number }>;
}

function mergeInto(stage: string, root: string): void {
  // cp -a of the package trees; a hard-link copy would be faster but risks editing the cache.
  run('image', 'cp', ['-a', '--no-preserve=ownership', `${root}/.`, stage]);
}

function prune(stage: string, r: TierReleaseSpec): void {
  for (const p of PRUNE(r)) fs.rmSync(path.join(stage, p), { recursive: true, force: true });
}

function makeCpioGz(stage: string, out: string): void {
  run('image', 'bash', ['-o', 'pipefail', '-c',
    'cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -1 > "$2.tmp" && mv "$2.tmp" "$2"',
    'cpio', stage, out]);
}

function rootOf(pkgs: FetchedPackages, name: string): string {
  const r = pkgs.roots.get(name);
  if (!r) throw new XenTierError('image', 'ENOENT', `package ${name} was not fetched`);
  return r;
}

function manifestKey(pkgs: FetchedPackages, extra: string): string {
  const h = crypto.createHash('sha256');
  for (const p of pkgs.manifest.packages) h.update(`${p.name}=${p.version}\n`);
  h.update(extra);
  return h.digest('hex').slice(0, 16);
}

/**
 * The system part of dom0: every fetched package except Xen and the kernel, whose Xen modules
 * go to /lib/modules/xen/ (flat, so /init needs no kernel version) and whose Image goes to
 * /xen/Image for the domUs.
 */
function buildDom0System(pkgs: FetchedPackages, r: TierReleaseSpec, workDir: string, log: (s: string) => void): string {
  const kpkg = kernelPackage(pkgs.manifest);
  const out = path.join(workDir, `dom0-system-${manifestKey(pkgs, 'v3')}.cpio.gz`);
  if (fs.existsSync(out)) return out;
  const t0 = Date.now();
  const stage = path.join(workDir, 'stage-dom0');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const p of pkgs.manifest.packages) {
    if (p.name === r.xenPackage || p.name.startsWith('linux-image-')) continue;
    mergeInto(stage, rootOf(pkgs, p.name));
  }
  prune(stage, r);
  mergeUsr(stage);
  const kroot = rootOf(pkgs, kpkg.name);
  const modDir = path.join(stage, 'lib/modules/xen');
  fs.mkdirSync(modDir, { recursive: true });
  const kver = kernelVersion(kroot);
  for (const m of XEN_MODULES) {
    const found = findFile(path.join(modulesDir(kroot), kver, 'kernel/drivers/xen'), `${m}.ko`)
      ?? findFile(path.join(modulesDir(kroot), kver, 'kernel/drivers/xen'), `${m}.ko.xz`);
    if (!found) throw new XenTierError('image', 'ENOENT', `module ${m}.ko not in ${kpkg.name}`, kroot);
    copyModule(found, path.join(modDir, `${m}.ko`));
  }
  fs.mkdirSync(path.join(stage, 'xen'), { recursive: true });
  fs.writeFileSync(path.join(stage, 'xen/Image'), rawKernelImage(path.join(kroot, 'boot', `vmlinuz-${kver}`)));
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'var/run', 'var/log/xen/console', 'var/lib/xen', 'var/lib/xenstored', 'root', 'mnt']) {
    fs.mkdirSync(path.join(stage, d), { recursive: true });
  }
  makeCpioGz(stage, out);
  fs.rmSync(stage, { recursive: true, force: true });
  // Older system images are useless once the manifest changed.
  for (const f of fs.readdirSync(workDir)) {
    if (f.startsWith('dom0-system-') && path.join(workDir, f) !== out) fs.rmSync(path.join(workDir, f), { force: true });
  }
  log(`image: dom0 system part built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${mib(out)})`);
  return out;
}

function findFile(dir: string, name: string): string | undefined {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (ent.name === name) {
      return p;
    }
  }
  return undefined;
}

/** Debian 12 keeps modules in /lib/modules, Debian 13 (merged /usr) in /usr/lib/modules. */
export function modulesDir(kroot: string): string {
  const merged = path.join(kroot, 'usr/lib/modules');
  return fs.existsSync(merged) ? merged : path.join(kroot, 'lib/modules');
}

/**
 * Debian 13's packages install into /usr only and rely on the merged-/usr symlinks
 * (/lib -> usr/lib, /bin -> usr/bin, /sbin -> usr/sbin) that its base-files creates; a
 * busybox /init root has none. Links are made where the folder does not exist yet, after
 * moving anything a package put in the old place (busybox-static's /bin/busybox).
 */
function mergeUsr(stage: string): void {
  const usr = path.join(stage, 'usr');
  if (!fs.existsSync(path.join(usr, 'lib'))) return;
  for (const d of ['lib', 'bin', 'sbin']) {
    const top = path.join(stage, d);
    const target = path.join(usr, d);
    if (!fs.existsSync(target)) continue;
    if (fs.existsSync(top) && !fs.lstatSync(top).isSymbolicLink()) {
      // Debian 12's layout (real /lib): keep it as it is.
      if (d === 'lib' && fs.existsSync(path.join(top, 'aarch64-linux-gnu'))) return;
      run('image', 'cp', ['-a', `${top}/.`, target]);
      fs.rmSync(top, { recursive: true, force: true });
    }
    if (!fs.existsSync(top)) fs.symlinkSync(`usr/${d}`, top);
  }
}

/** Copies a module, unpacking an .xz one (busybox insmod loads plain .ko files). */
function copyModule(from: string, to: string): void {
  if (from.endsWith('.xz')) run('image', 'bash', ['-o', 'pipefail', '-c', 'xz -dc "$0" > "$1"', from, to]);
  else fs.copyFileSync(from, to);
}

/**
 * The raw arm64 Image QEMU's guest-loader and Xen load. Debian 12's vmlinuz is one; Debian 13's
 * may be gzip'd, which Xen on Arm cannot boot as dom0 from a guest-loader module: unpack it.
 */
function rawKernelImage(vmlinuz: string): Buffer {
  const data = fs.readFileSync(vmlinuz);
  if (data[0] === 0x1f && data[1] === 0x8b) return require('node:zlib').gunzipSync(data) as Buffer;
  return data;
}

/** The raw Image as a file: vmlinuz itself when it is raw, else an unpacked copy in workDir. */
function rawKernelFile(vmlinuz: string, workDir: string): string {
  const head = Buffer.alloc(2);
  const fd = fs.openSync(vmlinuz, 'r');
  fs.readSync(fd, head, 0, 2, 0);
  fs.closeSync(fd);
  if (!(head[0] === 0x1f && head[1] === 0x8b)) return vmlinuz;
  const out = path.join(workDir, `Image-${path.basename(vmlinuz)}`);
  if (!fs.existsSync(out)) fs.writeFileSync(out, rawKernelImage(vmlinuz));
  return out;
}

export function kernelVersion(kroot: string): string {
  const vs = fs.readdirSync(modulesDir(kroot));
  if (vs.length !== 1) throw new XenTierError('image', 'EINVAL', `expected one kernel in ${kroot}, found ${vs.join(', ')}`, kroot);
  return vs[0];
}

function mib(file: string): string {
  return `${(fs.statSync(file).size / 1048576).toFixed(1)} MiB`;
}

function writeFile(p: string, data: string | Buffer, mode: number): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data, { mode });
  fs.chmodSync(p, mode);
}

function buildDomu(pkgs: FetchedPackages, r: TierReleaseSpec, payload: ProjectPayload, workDir: string): string {
  const stage = path.join(workDir, 'stage-domu');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const name of closure(pkgs.manifest, DOMU_PACKAGES)) mergeInto(stage, rootOf(pkgs, name));
  prune(stage, r);
  mergeUsr(stage);
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run']) fs.mkdirSync(path.join(stage, d), { recursive: true });
  for (const [name, f] of payload.domuFiles) writeFile(path.join(stage, name), f.data, f.mode);
  // The doorbell's modules, at /lib/modules/xen/ as in dom0 (the checks insmod them).
  const kroot = rootOf(pkgs, kernelPackage(pkgs.manifest).name);
  for (const m of DOMU_XEN_MODULES) {
    const dir = path.join(modulesDir(kroot), kernelVersion(kroot), 'kernel/drivers/xen');
    const found = findFile(dir, `${m}.ko`) ?? findFile(dir, `${m}.ko.xz`);
    if (!found) throw new XenTierError('image', 'ENOENT', `module ${m}.ko not in ${kroot}`, kroot);
    fs.mkdirSync(path.join(stage, 'lib/modules/xen'), { recursive: true });
    copyModule(found, path.join(stage, 'lib/modules/xen', `${m}.ko`));
  }
  const out = path.join(workDir, 'domu.cpio.gz');
  makeCpioGz(stage, out);
  fs.rmSync(stage, { recursive: true, force: true });
  return out;
}

/** Production dependencies only, as npm itself lists them. */
function productionModules(repoRoot: string): string[] {
  const res = run('image', 'npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: repoRoot, allowFail: true });
  const nm = path.join(repoRoot, 'node_modules') + path.sep;
  return res.stdout.split('\n').map((l) => l.trim())
    .filter((l) => l.startsWith(nm))
    // Top-level entries only: nested node_modules come along with their parent.
    .filter((l) => !l.slice(nm.length).includes(`${path.sep}node_modules${path.sep}`));
}

function buildProject(payload: ProjectPayload, domuImage: string, workDir: string): string {
  const stage = path.join(workDir, 'stage-project');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const [name, f] of payload.xenFiles) {
    writeFile(name === 'init' ? path.join(stage, 'init') : path.join(stage, 'xen', name), f.data, f.mode);
  }
  fs.copyFileSync(domuImage, path.join(stage, 'xen/domu.cpio.gz'));

  // This package as a user installs it: `npm install -g` of the packed tarball for linux-arm64
  // (npm's --os/--cpu, here on the host: dom0 has no npm and no compiler), at /usr/local:
  // bin/xen-sshm, bin/xs-trace and lib/node_modules/xen-sshm with its shipped prebuilt addon.
  const installed = '/usr/local/lib/node_modules/xen-sshm';
  if (payload.tarball) installTarball(payload.tarball, path.join(stage, 'usr/local'), { os: 'linux', cpu: 'arm64' });
  // The checks' own programs (dist/test/xen/guest, the contract and client suites) at
  // /opt/xen-sshm: this checkout's dist/ and package.json, with the installed package's
  // dependencies and prebuilt addon (symlinks), so that they load the shipped binary too.
  const pkgRoot = path.join(stage, 'opt/xen-sshm');
  fs.mkdirSync(pkgRoot, { recursive: true });
  fs.copyFileSync(path.join(payload.repoRoot, 'package.json'), path.join(pkgRoot, 'package.json'));
  const dist = path.join(payload.repoRoot, 'dist');
  if (!fs.existsSync(dist)) throw new XenTierError('image', 'ENOENT', 'dist/ is missing: run `npx tsc -p .` first', dist);
  run('image', 'cp', ['-a', '--no-preserve=ownership', dist, pkgRoot]);
  if (payload.tarball) {
    fs.symlinkSync(`${installed}/node_modules`, path.join(pkgRoot, 'node_modules'));
    fs.symlinkSync(`${installed}/prebuilds`, path.join(pkgRoot, 'prebuilds'));
  } else {
    // No package: the checks that need it fail on /xen/shim-status; the client checks still run.
    const nmOut = path.join(pkgRoot, 'node_modules');
    fs.mkdirSync(nmOut, { recursive: true });
    for (const dir of productionModules(payload.repoRoot)) {
      const rel = path.relative(path.join(payload.repoRoot, 'node_modules'), dir);
      fs.mkdirSync(path.dirname(path.join(nmOut, rel)), { recursive: true });
      run('image', 'cp', ['-a', '--no-preserve=ownership', dir, path.join(nmOut, rel)]);
    }
  }
  const out = path.join(workDir, 'dom0-project.cpio.gz');
  makeCpioGz(stage, out);
  fs.rmSync(stage, { recursive: true, force: true });
  return out;
}

/** Builds both images; returns what QEMU needs. */
export function buildImages(pkgs: FetchedPackages, r: TierReleaseSpec, payload: ProjectPayload, workDir: string, log: (s: string) => void): BootFiles {
  fs.mkdirSync(workDir, { recursive: true });
  const system = buildDom0System(pkgs, r, workDir, log);
  const t0 = Date.now();
  const domu = buildDomu(pkgs, r, payload, workDir);
  const project = buildProject(payload, domu, workDir);
  const dom0 = path.join(workDir, 'dom0.cpio.gz');
  // Two gzip members back to back: the kernel unpacks both archives into one rootfs.
  fs.writeFileSync(dom0, Buffer.concat([fs.readFileSync(system), fs.readFileSync(project)]));
  log(`image: domU ${mib(domu)}, dom0 ${mib(dom0)} (project part ${mib(project)}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const kpkg = kernelPackage(pkgs.manifest);
  const kroot = rootOf(pkgs, kpkg.name);
  const kver = kernelVersion(kroot);
  return {
    xen: path.join(rootOf(pkgs, r.xenPackage), r.xenImage),
    // The raw Image dom0's image carries for the domUs (unpacked if Debian gzip'd it).
    kernel: rawKernelFile(path.join(kroot, 'boot', `vmlinuz-${kver}`), workDir),
    kernelVersion: kver,
    dom0Initrd: dom0,
    domuInitrd: domu,
  };
}
