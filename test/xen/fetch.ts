/**
 * Fetches Debian packages, by name, into an ignored cache folder: the arm64 packages the
 * real-Xen tier boots (Debian 12 for Xen 4.17, Debian 13 for Xen 4.20) and the amd64 packages
 * of the real-daemon harness's 4.20 root. Debian 12 comes through the machine's own apt, other
 * suites through a private apt configuration (apt.ts).
 *
 * Everything is resolved by package name through apt (FACTS.md section 6): the kernel through
 * the `linux-image-arm64` metapackage, so the tier follows Debian's current kernel ABI and never
 * pins one. Dependencies are followed only for shared libraries and node modules (`lib*`,
 * `node-*`) and for the kernel metapackage: the seeds name every tool we run, and following
 * everything would drag in python3, perl, udev and debconf, none of which a busybox /init uses.
 *
 * A cached run (manifest present for the same seeds, every package extracted) runs no apt
 * command at all, so it needs no network.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Apt, systemApt } from './apt';
import { XenTierError } from './errors';
import { run } from './exec';

/** The guests' architecture: the default of every function here. */
export const ARCH = 'arm64';

export interface DebPackage {
  name: string;
  version: string;
  /** `arm64`, or `all` for architecture-independent packages (node modules). */
  arch: string;
  /** Basename of the .deb as apt-get download writes it. */
  deb: string;
  /** Debian section (libs, javascript, kernel...), last path component. */
  section: string;
  /** Names this package depends on (first alternative of each group, qualifiers stripped). */
  depends: string[];
}

export interface Manifest {
  seeds: string[];
  /** The architecture asked for (absent in manifests written before it was recorded: arm64). */
  arch?: string;
  packages: DebPackage[];
  resolvedAt: string;
}

export interface FetchedPackages {
  manifest: Manifest;
  /** Extracted root of each package, by name. */
  roots: Map<string, string>;
  /** True when apt was consulted (network may have been used). */
  usedApt: boolean;
}

/**
 * Dependencies kept: shared libraries (Debian section `libs`, which includes zlib1g), node
 * modules (`javascript`, loaded by Debian's libnode at run time) and the kernel the metapackage
 * names.
 */
function followable(p: DebPackage): boolean {
  return p.section === 'libs' || p.section === 'javascript' || /^linux-image-/.test(p.name);
}

/**
 * Keeps only what the guests need out of a kernel package (it is 400 MB unpacked). Debian 12
 * puts modules under /lib/modules, Debian 13 (merged /usr) under /usr/lib/modules: the patterns
 * match both (tar's wildcards cross '/' with --wildcards-match-slash).
 */
const KERNEL_MEMBERS = ['./boot/vmlinuz-*', '*/modules/*/kernel/drivers/xen/*', '*/modules/*/modules.*'];

/** Parses `apt-cache show` output (RFC 822 paragraphs) into packages. */
export function parseAptShow(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of para.split('\n')) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m) {
        last = m[1];
        fields.set(last, m[2]);
      }
    }
    const name = fields.get('Package');
    if (!name) continue;
    const depText = [fields.get('Pre-Depends'), fields.get('Depends')].filter(Boolean).join(', ');
    out.push({
      name,
      version: fields.get('Version') ?? '',
      arch: fields.get('Architecture') ?? '',
      section: (fields.get('Section') ?? '').split('/').pop() ?? '',
      // apt-get download names the file itself: the epoch's ':' is written %3a.
      deb: `${name}_${(fields.get('Version') ?? '').replace(/:/g, '%3a')}_${fields.get('Architecture') ?? ''}.deb`,
      depends: parseDepends(depText),
    });
  }
  return out;
}

/** `a (>= 1), b:any | c, d:arm64` -> [a, b, d]: the first alternative of each group. */
export function parseDepends(text: string): string[] {
  const names: string[] = [];
  for (const group of text.split(',')) {
    const first = group.split('|')[0].trim();
    if (!first) continue;
    const name = first.replace(/\s*\(.*$/, '').replace(/\s*\[.*$/, '').split(':')[0].trim();
    if (name) names.push(name);
  }
  return names;
}

function aptShow(apt: Apt, names: string[]): DebPackage[] {
  if (names.length === 0) return [];
  // An unknown name makes apt-cache exit non-zero but it still prints the others.
  const res = apt.run('fetch', 'apt-cache', ['show', '--no-all-versions', ...names], { allowFail: true });
  return parseAptShow(res.stdout);
}

/**
 * Resolves seeds and their library dependencies to concrete packages of `arch` (or arch-all).
 * Names are looked up as `name:ARCH` first, then plain for architecture-independent ones.
 */
export function resolve(seeds: string[], log: (s: string) => void, arch = ARCH, apt: Apt = systemApt()): DebPackage[] {
  const found = new Map<string, DebPackage>();
  let wanted = [...new Set(seeds)];
  const seedSet = new Set(seeds);
  const skipped = new Set<string>();
  while (wanted.length > 0) {
    const byArch = aptShow(apt, wanted.map((n) => `${n}:${arch}`)).filter((p) => p.arch === arch);
    for (const p of byArch) found.set(p.name, p);
    const rest = wanted.filter((n) => !found.has(n));
    for (const p of aptShow(apt, rest)) {
      if (p.arch === 'all') found.set(p.name, p);
    }
    // A dependency that is not a real package (virtual, or amd64-only) is simply not followed;
    // a seed must resolve.
    const missing = wanted.filter((n) => !found.has(n) && seedSet.has(n));
    for (const n of wanted) if (!found.has(n)) skipped.add(n);
    if (missing.length > 0) {
      throw new XenTierError('fetch', 'ENOENT', `no ${arch} or arch-all package for: ${missing.join(', ')} ` +
        `in ${apt.label} (are its ${arch} package lists there and current?)`);
    }
    const next = new Set<string>();
    for (const n of wanted) {
      const p = found.get(n);
      if (!p) continue;
      if (!seedSet.has(n) && !followable(p)) {
        // Looked up only to learn its section: not part of the guests.
        found.delete(n);
        skipped.add(n);
        continue;
      }
      for (const d of p.depends) {
        if (!found.has(d) && !skipped.has(d)) next.add(d);
      }
    }
    wanted = [...next];
  }
  const pkgs = [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
  log(`resolved ${pkgs.length} packages from ${seeds.length} seeds`);
  return pkgs;
}

function rootOf(cacheDir: string, p: DebPackage): string {
  return path.join(cacheDir, 'pkgs', `${p.name}_${p.version.replace(/[^A-Za-z0-9.+~-]/g, '_')}_${p.arch}`);
}

function extract(debPath: string, root: string, name: string): void {
  const tmp = `${root}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  if (name.startsWith('linux-image-') && !/^linux-image-(arm64|amd64)$/.test(name)) {
    run('fetch', 'bash', ['-o', 'pipefail', '-c',
      `dpkg-deb --fsys-tarfile "$0" | tar -x -C "$1" --wildcards --wildcards-match-slash ${KERNEL_MEMBERS.map((m) => `'${m}'`).join(' ')}`,
      debPath, tmp]);
  } else {
    run('fetch', 'dpkg-deb', ['-x', debPath, tmp]);
  }
  fs.rmSync(root, { recursive: true, force: true });
  fs.renameSync(tmp, root);
}

function loadManifest(file: string): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

function sameSeeds(a: string[], b: string[]): boolean {
  return [...a].sort().join(' ') === [...b].sort().join(' ');
}

/**
 * Makes every package of `seeds` (and its libraries) available extracted under cacheDir.
 * `refresh` forces a new resolution (picks up a newer Debian kernel, for instance).
 */
export function fetchPackages(opts: {
  cacheDir: string;
  seeds: string[];
  refresh?: boolean;
  log: (s: string) => void;
  /** Default arm64 (the guests). */
  arch?: string;
  /** Default the machine's own apt (Debian 12); a private one for another suite (apt.ts). */
  apt?: Apt;
}): FetchedPackages {
  const { cacheDir, seeds, log } = opts;
  const arch = opts.arch ?? ARCH;
  const apt = opts.apt ?? systemApt();
  const manifestFile = path.join(cacheDir, 'manifest.json');
  const cached = opts.refresh ? undefined : loadManifest(manifestFile);
  if (cached && sameSeeds(cached.seeds, seeds) && (cached.arch ?? ARCH) === arch) {
    const roots = new Map(cached.packages.map((p) => [p.name, rootOf(cacheDir, p)] as [string, string]));
    if ([...roots.values()].every((r) => fs.existsSync(r))) {
      log(`packages: cached (${cached.packages.length}, resolved ${cached.resolvedAt})`);
      return { manifest: cached, roots, usedApt: false };
    }
  }

  // Only now touch apt. Lists that are missing (a new foreign arch, a private apt's first use)
  // are fetched; lists that are stale show as an unresolvable seed and are fetched again once.
  const updated = apt.update('fetch', arch, log, opts.refresh === true && apt.private);
  let pkgs: DebPackage[];
  try {
    pkgs = resolve(seeds, log, arch, apt);
  } catch (err) {
    if (updated || !(err instanceof XenTierError) || err.code !== 'ENOENT') throw err;
    apt.update('fetch', arch, log, true);
    pkgs = resolve(seeds, log, arch, apt);
  }

  const debDir = path.join(cacheDir, 'debs');
  fs.mkdirSync(debDir, { recursive: true });
  const toDownload = pkgs.filter((p) => !fs.existsSync(path.join(debDir, p.deb)));
  if (toDownload.length > 0) {
    log(`packages: downloading ${toDownload.length} .deb files`);
    apt.run('fetch', 'apt-get', ['download', '-qq',
      ...toDownload.map((p) => `${p.arch === 'all' ? p.name : `${p.name}:${arch}`}=${p.version}`)], { cwd: debDir });
    for (const p of toDownload) {
      if (!fs.existsSync(path.join(debDir, p.deb))) {
        throw new XenTierError('fetch', 'ENOENT', `apt-get download did not produce ${p.deb}`, path.join(debDir, p.deb));
      }
    }
  }
  const roots = new Map<string, string>();
  for (const p of pkgs) {
    const root = rootOf(cacheDir, p);
    if (!fs.existsSync(root)) extract(path.join(debDir, p.deb), root, p.name);
    roots.set(p.name, root);
  }
  const manifest: Manifest = { seeds: [...seeds], arch, packages: pkgs, resolvedAt: new Date().toISOString() };
  fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  return { manifest, roots, usedApt: true };
}

/** The kernel package the metapackage points at today (linux-image-6.1.0-NN-arm64). */
export function kernelPackage(m: Manifest): DebPackage {
  const meta = m.packages.find((p) => p.name === `linux-image-${m.arch ?? ARCH}`);
  const name = meta?.depends.find((d) => d.startsWith('linux-image-'));
  const pkg = m.packages.find((p) => p.name === name);
  if (!pkg) throw new XenTierError('fetch', 'ENOENT', 'linux-image-arm64 resolves to no kernel package');
  return pkg;
}

/** names and, recursively, every dependency of theirs that the manifest holds. */
export function closure(m: Manifest, names: string[]): string[] {
  const byName = new Map(m.packages.map((p) => [p.name, p] as [string, DebPackage]));
  const seen = new Set<string>();
  const visit = (n: string): void => {
    const p = byName.get(n);
    if (!p || seen.has(n)) return;
    seen.add(n);
    p.depends.forEach(visit);
  };
  names.forEach(visit);
  return [...seen].sort();
}
