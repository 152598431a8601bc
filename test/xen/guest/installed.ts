/**
 * Runs in dom0 on real Xen: the installed package's own loader picks the shipped prebuilt addon
 * (prebuilds/linux-arm64, its sha256 the one in the package's manifest), and privcmd answers
 * through it (xen_version, on Arm).
 *   node dist/test/xen/guest/installed.js /usr/local/lib/node_modules/xen-sshm
 * The package's modules are required from its folder: this checks the installed copy, not the
 * checkout's.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as HypervisorApi from '../../../lib/hypervisor';
import type * as ShimApi from '../../../lib/hypervisor/shim';

async function main(pkg: string): Promise<void> {

  const shim = require(path.join(pkg, 'dist/lib/hypervisor/shim.js')) as typeof ShimApi;
  const hypervisor = require(path.join(pkg, 'dist/lib/hypervisor/index.js')) as typeof HypervisorApi;

  const t0 = process.hrtime.bigint();
  shim.loadShim();
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const from = shim.loadedShim();
  const expected = path.join(pkg, 'prebuilds', 'linux-arm64', 'xen_sshm_shim.node');
  if (!from || from.origin !== 'prebuilt' || from.path !== expected) throw new Error(`the addon loaded is ${JSON.stringify(from)}, expected the prebuilt ${expected}`);
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'prebuilds', 'manifest.json'), 'utf8')) as { binaries: Record<string, { sha256: string }> };
  const sha = crypto.createHash('sha256').update(fs.readFileSync(from.path)).digest('hex');
  if (sha !== manifest.binaries['linux-arm64']?.sha256) throw new Error(`${from.path} has sha256 ${sha}, the manifest says ${manifest.binaries['linux-arm64']?.sha256}`);
  const hv = hypervisor.openPrivcmd();
  try {
    const v = await hv.xenVersion();
    if (v.arch !== 'arm') throw new Error(`xen_version capabilities "${v.capabilities}" are not Arm`);
    console.log(`XENTIME installed:addon-load ${(loadMs / 1000).toFixed(3)}`);
    console.log(`loaded ${from.path} (prebuilt, sha256 ${sha.slice(0, 16)}... as in the manifest) in ${loadMs.toFixed(0)} ms; xen_version through it: Xen ${v.version} (${v.arch})`);
  } finally {
    await hv.close();
  }
}

main(process.argv[2] ?? '/usr/local/lib/node_modules/xen-sshm').catch((e: unknown) => {
  const err = e as Error & { code?: string };
  console.log(`FAILED: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
