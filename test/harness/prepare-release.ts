/**
 * Prepares the private root of a newer Xen release for the real-daemon harness (releases.ts):
 *
 *   node dist/test/harness/prepare-release.js 4.20 CACHE_DIR
 *
 * 1. Debian 13 "trixie" amd64 packages, resolved by name through a private apt configuration
 *    (lists and archives under CACHE_DIR/apt; the machine's apt is not touched): xen-utils-4.20
 *    (xenstored, oxenstored, test-xenstore), xenstore-utils and libxen-dev (headers), with the
 *    shared libraries they need (libc6 included: the root brings its own loader).
 * 2. Unpacked per package (CACHE_DIR/pkgs) and merged into CACHE_DIR/root.
 * 3. The preload library compiled against CACHE_DIR/root/usr/include with the machine's `cc`.
 * 4. CACHE_DIR/prepared.json written last: its presence means the root is complete.
 *
 * Run under flock by releases.ts; safe to run again (a complete root is left as it is).
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { privateApt } from '../xen/apt';
import { fetchPackages } from '../xen/fetch';
import { PREPARED_FILE, PreparedRoot, preloadSource, preloadSourceHash, XenRelease } from './releases';

/** The packages of each newer release's root, by name (dependencies follow: libraries only). */
export const RELEASE_SEEDS: Record<Exclude<XenRelease, '4.17'>, { suite: string; seeds: string[] }> = {
  '4.20': { suite: 'trixie', seeds: ['xen-utils-4.20', 'xenstore-utils', 'libxen-dev', 'libc6'] },
};

const ARCH = 'amd64';
const TRIPLET = 'x86_64-linux-gnu';

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr ?? ''}${r.stdout ?? ''}`);
  }
}

function main(release: XenRelease, cacheDir: string): void {
  const log = (s: string): void => void process.stdout.write(`[prepare ${release}] ${s}\n`);
  if (release === '4.17') throw new Error('4.17 is the machine\'s own release: nothing to prepare');
  const spec = RELEASE_SEEDS[release];
  if (!spec) throw new Error(`no seeds for Xen ${release}`);
  const preloadSrc = preloadSource();
  if (!existsSync(preloadSrc)) throw new Error(`preload source missing at ${preloadSrc}`);
  const srcHash = preloadSourceHash();

  const preparedFile = join(cacheDir, PREPARED_FILE);
  if (existsSync(preparedFile)) {
    const p = JSON.parse(readFileSync(preparedFile, 'utf8')) as PreparedRoot;
    if (p.preload.includes(srcHash) && existsSync(p.preload) && existsSync(p.loader)) {
      log('root already prepared');
      return;
    }
  }
  mkdirSync(cacheDir, { recursive: true });
  const apt = privateApt({ dir: join(cacheDir, 'apt'), suite: spec.suite, arches: [ARCH] });
  const pkgs = fetchPackages({ cacheDir, seeds: spec.seeds, arch: ARCH, apt, log });

  // One merged root: the loader searches one library folder, and the daemons' compiled-in
  // paths (/usr/lib/xen-4.20/...) map onto ROOT/usr/lib/xen-4.20/... by the preload.
  const root = join(cacheDir, 'root');
  const key = createHash('sha256').update(pkgs.manifest.packages.map((p) => `${p.name}=${p.version}`).join('\n')).digest('hex').slice(0, 12);
  const rootKey = join(root, '.xen-sshm-packages');
  if (!existsSync(rootKey) || readFileSync(rootKey, 'utf8') !== key) {
    const tmp = `${root}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    for (const dir of pkgs.roots.values()) sh('cp', ['-a', '--no-preserve=ownership', `${dir}/.`, tmp]);
    writeFileSync(join(tmp, '.xen-sshm-packages'), key);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
    log(`root: ${pkgs.manifest.packages.length} packages merged into ${root}`);
  }
  const libraryPath = [join(root, 'usr/lib', TRIPLET), join(root, 'lib', TRIPLET)].filter((d) => existsSync(d));
  const loader = [join(root, 'usr/lib', TRIPLET, 'ld-linux-x86-64.so.2'), join(root, 'lib64/ld-linux-x86-64.so.2')].find((f) => existsSync(f));
  if (!loader) throw new Error(`no ld-linux-x86-64.so.2 in ${root} (libc6 not unpacked?)`);
  if (!existsSync(join(root, 'usr/include/xenctrl.h'))) throw new Error(`no xenctrl.h in ${root}/usr/include (libxen-dev not unpacked?)`);

  // The preload for this release, against its own headers (xc_domaininfo_t and
  // xc_domain_getinfo_single of 4.18+). It runs inside the root's glibc 2.41; built against the
  // machine's 2.36 it only needs older symbol versions.
  const preload = join(cacheDir, `libxenstored_preload-${srcHash}.so`);
  if (!existsSync(preload)) {
    const cc = process.env.CC ?? 'cc';
    sh(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-D_GNU_SOURCE', '-DXEN_SSHM_XENCTRL_GETINFO_SINGLE',
      '-I', join(root, 'usr/include'), '-o', `${preload}.tmp`, preloadSrc, '-ldl']);
    renameSync(`${preload}.tmp`, preload);
    log(`preload: ${preload}`);
  }
  const prepared: PreparedRoot = {
    release, root, preload, loader, libraryPath,
    packages: pkgs.manifest.packages.length, preparedAt: new Date().toISOString(),
  };
  writeFileSync(`${preparedFile}.tmp`, JSON.stringify(prepared, null, 2) + '\n');
  renameSync(`${preparedFile}.tmp`, preparedFile);
  log('root prepared');
}

if (require.main === module) {
  const [release, cacheDir] = process.argv.slice(2);
  try {
    if (!release || !cacheDir) throw new Error('usage: prepare-release.js RELEASE CACHE_DIR');
    main(release as XenRelease, resolve(cacheDir));
  } catch (e) {
    process.stderr.write(`prepare-release: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
