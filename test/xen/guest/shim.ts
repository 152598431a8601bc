/**
 * Runs in dom0 on real Xen (node 18 or 20): the cross-built arm64 shim loads (one Node-API build
 * serves both), and a xen_version hypercall through /dev/xen/privcmd reports the release booted
 * (XEN_RELEASE from /xen/release.env: 4.17 or 4.20), one the hypervisor layer has rules for, on Arm.
 *   node dist/test/xen/guest/shim.js
 * When the runner could not cross-build the shim, /xen/shim-status says why: this check then
 * fails with that reason (it never skips).
 */
import * as fs from 'node:fs';
import { loadedShim, loadShim } from '../../../lib/hypervisor/shim';
import { openPrivcmd, SIM_RELEASES } from '../../../lib/hypervisor';

async function main(): Promise<void> {
  const status = fs.existsSync('/xen/shim-status') ? fs.readFileSync('/xen/shim-status', 'utf8').trim() : 'unknown';
  if (status !== 'built') throw new Error(`the arm64 shim is ${status}`);
  const t0 = process.hrtime.bigint();
  loadShim();
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const hv = openPrivcmd();
  try {
    const t1 = process.hrtime.bigint();
    const v = await hv.xenVersion();
    const callMs = Number(process.hrtime.bigint() - t1) / 1e6;
    const expected = process.env.XEN_RELEASE ?? '(XEN_RELEASE unset)';
    if (`${v.major}.${v.minor}` !== expected) throw new Error(`xen_version says ${v.version}, expected ${expected}`);
    if (!(SIM_RELEASES as readonly string[]).includes(`${v.major}.${v.minor}`)) throw new Error(`xen_version says ${v.version}, expected one of ${SIM_RELEASES.join(', ')}`);
    if (v.arch !== 'arm') throw new Error(`xen_version capabilities "${v.capabilities}" are not Arm`);
    console.log(`XENTIME shim-load ${(loadMs / 1000).toFixed(3)}`);
    const from = loadedShim();
    console.log(`shim ${from?.path} (${from?.origin}) loaded in ${loadMs.toFixed(0)} ms; ` +
      `xen_version through privcmd: Xen ${v.version} (${v.arch}, ${v.capabilities.trim()}) in ${callMs.toFixed(1)} ms`);
  } finally {
    await hv.close();
  }
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  console.log(`FAILED: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
