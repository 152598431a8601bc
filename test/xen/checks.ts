/**
 * THE LIST OF CHECKS run inside dom0 by the real-Xen tier, in order.
 *
 * To add a check: write a shell script under test/xen/guest/checks/ (it sources /xen/lib.sh:
 * domu_cfg, domu_run, wait_for...) or a TypeScript program under test/xen/guest/ (compiled to
 * dist/test/xen/guest/*.js, run by dom0's node 18 with this package at /opt/xen-sshm), and add
 * an entry below. A check passes when it exits 0; its last output line is the detail. Every
 * entry is expected on the console: a check that does not report fails the run.
 *
 * Checks run sequentially and may rely on earlier ones (domu-create makes probe1 and probe2,
 * which the later checks use); when an earlier check fails, later ones fail with their own
 * detail rather than being skipped.
 */

import type { TierRelease } from './releases';

/** What a check needs from the host build besides Debian's packages. */
export type CheckNeed = 'dist' | 'shim';

export interface CheckSpec {
  /** Name printed in XENCHECK lines: [a-z0-9-]+. */
  name: string;
  /** `checks/NAME.sh` (shell, from test/xen/guest/) or `dist/...js` (node, relative to the package). */
  script: string;
  /** PASS normally; FAIL for a deliberately broken variant (a test of the test). */
  expect: 'PASS' | 'FAIL';
  /** Seconds before dom0 kills it (busybox timeout). */
  limit: number;
  /** Passed to the script as XENCHECK_BREAK=1: run the deliberately broken variant. */
  broken?: boolean;
  /**
   * For expect FAIL: the failure detail must match this, so that a broken variant failing for
   * an unrelated reason (a missing script, a crashed guest) does not count as detection.
   */
  failsWith?: string;
  needs?: CheckNeed[];
  /**
   * Run only when named with --only, with this reason printed in every default run: a check
   * whose subject is not working on real Xen yet (its issue stays open), kept runnable. A
   * record names the releases where that holds (the others run it by default).
   */
  optIn?: string | Partial<Record<TierRelease, string>>;
  /** One line for the summary table and docs. */
  what: string;
}

/** Why `c` is opt-in on `release`, or undefined when that release runs it by default. */
export function optInReason(c: CheckSpec, release: TierRelease): string | undefined {
  return typeof c.optIn === 'string' ? c.optIn : c.optIn?.[release];
}

export const CHECKS: CheckSpec[] = [
  // --- the platform: no project code needed -------------------------------------------------
  { name: 'xen-boots', script: 'checks/xen-boots.sh', expect: 'PASS', limit: 30,
    what: 'Xen (4.17 or 4.20, as booted) arm64 booted; xl info reaches it' },
  { name: 'xenstored', script: 'checks/xenstored.sh', expect: 'PASS', limit: 30,
    what: 'C xenstored answers xenstore-ls in dom0' },
  { name: 'node', script: 'checks/node.sh', expect: 'PASS', limit: 60, needs: ['dist'],
    what: "Debian's node (18 on Debian 12, 20 on Debian 13) runs in dom0 and reads this package" },
  { name: 'domu-create', script: 'checks/domu-create.sh', expect: 'PASS', limit: 90,
    what: 'xl create -p of two PVH domUs (probe1, probe2): both exist, paused' },
  { name: 'domu-boot', script: 'checks/domu-boot.sh', expect: 'PASS', limit: 120,
    what: 'unpaused domUs boot and report "ready NAME DOMID" in xenstore via /dev/xen/xenbus' },
  { name: 'domu-boot-broken', script: 'checks/domu-boot.sh', expect: 'FAIL', limit: 60, broken: true,
    failsWith: "^probe1 reported 'ready probe1 \\d+', expected 'ready probe2 \\d+'$",
    what: 'test of the test: the same check comparing one domain\'s data with another\'s must fail' },
  { name: 'domu-console', script: 'checks/domu-console.sh', expect: 'PASS', limit: 30,
    what: 'domU console output reaches dom0 through xenconsoled --log=guest' },
  { name: 'domu-agent', script: 'checks/domu-agent.sh', expect: 'PASS', limit: 60,
    what: 'commands run inside a domU; its write under dom0\'s home is refused (EACCES)' },

  // --- this package, as the pieces land ------------------------------------------------------
  { name: 'shim', script: 'checks/shim.sh', expect: 'PASS', limit: 60, needs: ['dist', 'shim'],
    what: 'the cross-built arm64 shim loads; xen_version through /dev/xen/privcmd names the release booted, on Arm' },
  { name: 'installed-package', script: 'checks/installed-package.sh', expect: 'PASS', limit: 120, needs: ['dist', 'shim'],
    what: 'the package installed from the packed tarball (npm install -g, linux-arm64) in a dom0 with no compiler: xen-sshm on PATH, nothing built, the shipped prebuilt addon loads (sha256 as in its manifest) and reaches privcmd' },
  { name: 'cli-startup', script: 'checks/cli-startup.sh', expect: 'PASS', limit: 240, needs: ['dist', 'shim'],
    what: 'start-up in dom0: node -e 0, xenstore-ls, xen-sshm --version, xen-sshm check of the three-VM configs (mean of interleaved rounds, ratios to node -e 0)' },
  { name: 'shared-page', script: 'checks/shared-page.sh', expect: 'PASS', limit: 180, needs: ['dist', 'shim'],
    what: 'probe1 and probe2 share 16 pages (populate, set_target, gmfn_foreign); /dev/mem bytes cross both ways' },
  { name: 'shared-page-broken', script: 'checks/shared-page.sh', expect: 'FAIL', limit: 180, broken: true, needs: ['dist', 'shim'],
    failsWith: '^borrower page 0 reads ".*", expected "owner page 0 [0-9-]+" written by the owner$',
    what: 'test of the test: the same mapping one page off (a wrong offset) must fail the data check' },
  { name: 'hypervisor-contract', script: 'checks/hypervisor-contract.sh', expect: 'PASS', limit: 420, needs: ['dist', 'shim'],
    what: 'the backend contract suite on privcmd with two fresh domUs (test/hypervisor/run-contract.ts)' },
  { name: 'hypervisor-release', script: 'checks/hypervisor-release.sh', expect: 'PASS', limit: 120, needs: ['dist', 'shim'],
    what: 'the version xen_version reports selects the release rules (domctl interface, getdomaininfo of a missing domain, borrowerSupport) and real Xen agrees' },
  { name: 'hypervisor-batching', script: 'checks/hypervisor-batching.sh', expect: 'PASS', limit: 420, needs: ['dist', 'shim'],
    what: '64 MiB populated with 2 MiB and 4 KiB extents, mapped and unmapped five times: µs per page (issue 15 targets)' },
  { name: 'xenstore-socket', script: 'checks/xenstore-socket.sh', expect: 'PASS', limit: 120, needs: ['dist'],
    what: 'our xenstore client over the socket: bytes, E2BIG-size listing, perms, transactions, watches, @releaseDomain' },
  { name: 'xenstore-xenbus', script: 'checks/xenstore-xenbus.sh', expect: 'PASS', limit: 120, needs: ['dist'],
    what: 'the same over /dev/xen/xenbus' },
  // --- the whole tool: `xen-sshm` (apply, release, ls, daemon) in dom0 with real domUs -------
  // three-vm creates vm1, vm2 and vm3 (128 MiB each, + 2 MiB of regions, + 64 MiB for
  // large-region; Xen has ~1250 MiB beside dom0's 768), which the four checks after it use;
  // lifecycle destroys them. Each `xen-sshm` run is a node process: 4-8 s of start-up under QEMU.
  { name: 'three-vm', script: 'checks/three-vm.sh', expect: 'PASS', limit: 360, needs: ['dist', 'shim'],
    what: "the proposal's three VMs, one xen-sshm create each (xl create -p, apply, xl unpause); vm1's bytes read by vm2 (ID1) and vm3 (ID2) at their addresses and back; xenstore-ls -f records" },
  { name: 'create-undo', script: 'checks/create-undo.sh', expect: 'PASS', limit: 180, needs: ['dist', 'shim'],
    what: 'xen-sshm create of a config whose apply fails (no set_target consent): exit 1 at step apply, release and xl destroy undone, no domain left in xl list, records unchanged' },
  { name: 'guest-view', script: 'checks/guest-view.sh', expect: 'PASS', limit: 120, needs: ['dist', 'shim'],
    what: "inside vm2, xenstore-utils over /dev/xen/xenbus read its mirror; writes (and rm, read) of the region's records are refused with EACCES" },
  { name: 'three-vm-broken', script: 'checks/three-vm.sh', expect: 'FAIL', limit: 240, broken: true, needs: ['dist', 'shim'],
    failsWith: '^vm2 reads ".*" at 0x50000000 \\(ID1 page 0\\), expected "ID1 page 0 [0-9]+" written by vm1 at 0x50000000$',
    what: "test of the test: vm2's ID1 released and applied again with a wrong offset (0x1000): the data check must fail" },
  { name: 'large-region', script: 'checks/large-region.sh', expect: 'PASS', limit: 300, needs: ['dist', 'shim'],
    what: 'a 64 MiB region through xen-sshm apply (owner: populate, borrower: map), bytes at both ends, released; timed per page' },
  { name: 'lifecycle', script: 'checks/lifecycle.sh', expect: 'PASS', limit: 300, needs: ['dist', 'shim'],
    what: 'xen-sshm destroy vm2 (release, xl destroy); with xen-sshm daemon running, plain xl destroy of the owner leaves ID2 orphaned (vm3 still reads it); xen-sshm destroy vm3 leaves no records' },
  // --- the guest side of a doorbell (guest/xen-sshm-guest.c): its own three domUs, bell1-3 ---
  // Both need Xen booted with xsm=dummy (boot.ts): under Debian's default XSM SILO no domU may
  // have an event channel with another (docs/notes/doorbells-realxen.md).
  { name: 'doorbell-guest', script: 'checks/doorbell-guest.sh', expect: 'PASS', limit: 420, needs: ['dist', 'shim'],
    what: 'xen-sshm-guest in domUs: mirrors read over xenbus; a port made for another borrower refused (EINVAL); wait/notify; 1,000 ping-pongs owner<->borrower (0 lost, 0 out of order, median/p99); after release' },
  { name: 'doorbell-baremetal', script: 'checks/doorbell-baremetal.sh', expect: 'PASS', limit: 240, needs: ['dist', 'shim'],
    what: 'guest/xen-sshm-doorbell.h in a bare-metal arm64 guest borrowing DB1: a port made for another borrower refused (-22), its own bound and rung; the Linux owner gets one notification' },
  // --- xs-trace on the live host -----------------------------------------------------------
  { name: 'xs-trace-attach', script: 'checks/xs-trace-attach.sh', expect: 'PASS', limit: 240, needs: ['dist'],
    what: "xs-trace attach --domain N --json in dom0: a new guest's reads and writes over its ring, decoded and paired, while it works; the daemon's logging off again after (CONTROL)" },
];

/** A check that always fails, for `--inject-failure`: the whole run must then fail. */
export const INJECTED_FAILURE: CheckSpec = {
  name: 'injected-failure', script: 'checks/injected-failure.sh', expect: 'PASS', limit: 10,
  what: 'deliberately failing check (--inject-failure): the runner must exit non-zero',
};

/** The list file read by /xen/run-checks.sh: tab-separated, one check a line. */
export function checksListText(checks: CheckSpec[]): string {
  return checks.map((c) => [c.name, c.script, c.expect, String(c.limit), c.broken ? '1' : '0'].join('\t')).join('\n') + '\n';
}
