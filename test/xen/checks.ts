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
  /** One line for the summary table and docs. */
  what: string;
}

export const CHECKS: CheckSpec[] = [
  // --- the platform: no project code needed -------------------------------------------------
  { name: 'xen-boots', script: 'checks/xen-boots.sh', expect: 'PASS', limit: 30,
    what: 'Xen 4.17 arm64 booted; xl info reaches it' },
  { name: 'xenstored', script: 'checks/xenstored.sh', expect: 'PASS', limit: 30,
    what: 'C xenstored answers xenstore-ls in dom0' },
  { name: 'node', script: 'checks/node.sh', expect: 'PASS', limit: 60, needs: ['dist'],
    what: "Debian's node 18 runs in dom0 and reads this package" },
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
    what: 'the cross-built arm64 shim loads; xen_version through /dev/xen/privcmd says 4.17 Arm' },
  { name: 'shared-page', script: 'checks/shared-page.sh', expect: 'PASS', limit: 180, needs: ['dist', 'shim'],
    what: 'probe1 and probe2 share 16 pages (populate, set_target, gmfn_foreign); /dev/mem bytes cross both ways' },
  { name: 'shared-page-broken', script: 'checks/shared-page.sh', expect: 'FAIL', limit: 180, broken: true, needs: ['dist', 'shim'],
    failsWith: '^borrower page 0 reads ".*", expected "owner page 0 [0-9-]+" written by the owner$',
    what: 'test of the test: the same mapping one page off (a wrong offset) must fail the data check' },
  { name: 'hypervisor-contract', script: 'checks/hypervisor-contract.sh', expect: 'PASS', limit: 420, needs: ['dist', 'shim'],
    what: 'the backend contract suite on privcmd with two fresh domUs (test/hypervisor/run-contract.ts)' },
  { name: 'xenstore-socket', script: 'checks/xenstore-socket.sh', expect: 'PASS', limit: 120, needs: ['dist'],
    what: 'our xenstore client over the socket: bytes, E2BIG-size listing, perms, transactions, watches, @releaseDomain' },
  { name: 'xenstore-xenbus', script: 'checks/xenstore-xenbus.sh', expect: 'PASS', limit: 120, needs: ['dist'],
    what: 'the same over /dev/xen/xenbus' },
  // New checks of issue 8 go here (see PLANNED below).
];

/**
 * SLOTS for the checks of issue 8 that depend on code still being written (the manager and the
 * CLI). When the piece lands, add its entry to CHECKS above (with its script) and it becomes
 * mandatory. Memory: the host gives Xen 2048 MiB, dom0 takes 768; each domU 128 (+ its shared
 * regions); the earlier checks destroy their domUs (hv-*, probe*) before the end.
 *
 * - three-vm: the proposal's three-VM scenario with real domUs (vm1 owns ID1 and ID2, vm2
 *   borrows ID1, vm3 borrows ID2 with set_target consent): `xl create -p` from configs with
 *   static_shm entries (domu_cfg NAME 'static_shm = [...]'), `xen-sshm apply`, unpause, a
 *   pattern written by vm1 through /dev/mem (domu_run vm1 ... devmem/dd) read by vm2 at its
 *   address and the reverse, `xenstore-ls -f` shows the records. Add a `broken: true,
 *   expect: 'FAIL'` twin applying with a wrong offset: the data check must fail.
 * - lifecycle: `xl destroy vm2` with the daemon running removes vm2's records; owner first
 *   leaves the region `orphaned`; `xen-sshm release` cleans up.
 * - guest-view: inside vm2 (domu_run) xenstore-read of its mirror works, a write to
 *   /local/shared_mem/ID1 is refused with EACCES.
 */
export const PLANNED = ['three-vm', 'lifecycle', 'guest-view'];

/** A check that always fails, for `--inject-failure`: the whole run must then fail. */
export const INJECTED_FAILURE: CheckSpec = {
  name: 'injected-failure', script: 'checks/injected-failure.sh', expect: 'PASS', limit: 10,
  what: 'deliberately failing check (--inject-failure): the runner must exit non-zero',
};

/** The list file read by /xen/run-checks.sh: tab-separated, one check a line. */
export function checksListText(checks: CheckSpec[]): string {
  return checks.map((c) => [c.name, c.script, c.expect, String(c.limit), c.broken ? '1' : '0'].join('\t')).join('\n') + '\n';
}
