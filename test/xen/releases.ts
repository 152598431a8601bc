/**
 * The releases the real-Xen tier boots (issue 14 point 1): Xen 4.17 with a Debian 12 dom0 (the
 * machine's own apt) and Xen 4.20 with a Debian 13 dom0 (a private apt configuration, apt.ts).
 * Everything that differs between them is here, once; images.ts, run.ts and the guest scripts
 * (through /xen/release in dom0) read it.
 */
import * as path from 'node:path';
import { Apt, privateApt, systemApt } from './apt';
import { XenTierError } from './errors';

export type TierRelease = '4.17' | '4.20';
/** Every release `npm run test:xen` runs by default, in this order. */
export const TIER_RELEASES: readonly TierRelease[] = ['4.17', '4.20'];

export interface TierReleaseSpec {
  release: TierRelease;
  /** "Debian 12", "Debian 13": for the summary. */
  debian: string;
  suite: 'bookworm' | 'trixie';
  /** The hypervisor package and the image QEMU loads from it. */
  xenPackage: string;
  xenImage: string;
  /** Xen's tools folder in dom0 (/usr/lib/xen-X.Y): its bin/ goes on PATH. */
  xenLibexec: string;
  /** The package with libxenctrl, and the library's file name. */
  libxenctrlPackage: string;
  libxenctrl: string;
  /** The node major version Debian ships in that release. */
  nodeMajor: number;
  /** Packages every guest image gets (tools run by the checks, and their libraries). */
  seeds: string[];
}

const COMMON_SEEDS = ['linux-image-arm64', 'busybox-static', 'libc6', 'xen-utils-common', 'xenstore-utils', 'libyajl2', 'libfdt1', 'nodejs'];

export const TIER_RELEASE_SPECS: Record<TierRelease, TierReleaseSpec> = {
  '4.17': {
    release: '4.17', debian: 'Debian 12', suite: 'bookworm',
    xenPackage: 'xen-hypervisor-4.17-arm64', xenImage: 'boot/xen-4.17-arm64', xenLibexec: '/usr/lib/xen-4.17',
    libxenctrlPackage: 'libxenmisc4.17', libxenctrl: 'libxenctrl.so.4.17', nodeMajor: 18,
    seeds: ['xen-hypervisor-4.17-arm64', 'xen-utils-4.17', ...COMMON_SEEDS],
  },
  '4.20': {
    release: '4.20', debian: 'Debian 13', suite: 'trixie',
    xenPackage: 'xen-hypervisor-4.20-arm64', xenImage: 'boot/xen-4.20-arm64', xenLibexec: '/usr/lib/xen-4.20',
    libxenctrlPackage: 'libxenmisc4.20', libxenctrl: 'libxenctrl.so.4.20', nodeMajor: 20,
    seeds: ['xen-hypervisor-4.20-arm64', 'xen-utils-4.20', ...COMMON_SEEDS],
  },
};

export function isTierRelease(s: string): s is TierRelease {
  return (TIER_RELEASES as readonly string[]).includes(s);
}

export function tierRelease(s: string): TierReleaseSpec {
  if (!isTierRelease(s)) throw new XenTierError('results', 'EINVAL', `--release ${s}: known releases are ${TIER_RELEASES.join(', ')}`);
  return TIER_RELEASE_SPECS[s];
}

/**
 * A release's cache folder under the one given by --cache: 4.17 uses the folder itself (as it
 * always did, so existing caches stay valid), newer releases a subfolder `xen-X.Y`.
 */
export function releaseCacheDir(cacheDir: string, r: TierReleaseSpec): string {
  return r.release === '4.17' ? cacheDir : path.join(cacheDir, `xen-${r.release}`);
}

/** The apt that resolves a release's packages: the machine's (Debian 12) or a private one. */
export function releaseApt(cacheDir: string, r: TierReleaseSpec): Apt {
  return r.suite === 'bookworm' ? systemApt() : privateApt({ dir: path.join(releaseCacheDir(cacheDir, r), 'apt'), suite: r.suite, arches: ['arm64'] });
}
