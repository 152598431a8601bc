#!/usr/bin/env bash
# `npm pack` / `npm publish` (prepack). Builds the prebuilt addons the package ships, from the
# sources being packed, so that nothing binary is ever committed and `npm install` of the tarball
# on linux-x64 and linux-arm64 runs no compiler:
#   prebuilds/linux-x64/xen_sshm_shim.node     scripts/build-shim.sh x64
#   prebuilds/linux-arm64/xen_sshm_shim.node   scripts/build-shim.sh arm64 (cross on x86_64)
#   prebuilds/manifest.json                    each binary's sha256, size and compiler
# The builds are reproducible (scripts/build-shim.sh): the same sources and compilers give the
# same bytes, which test/package checks. It also writes npm-shrinkwrap.json: package-lock.json
# with each registry package's tarball URL (a lockfile written with
# omit-lockfile-registry-resolved lacks them), so that an installed xen-sshm gets the dependency
# versions its tests ran with, and installs from npm's cache alone (--offline) where the
# checkout's `npm ci` filled it. postpack removes both again, so that a checkout keeps loading
# its own build/Release. And the bundled `xen-sshm` command (scripts/bundle-cli.js, package.json
# "bin") from the dist/ being packed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf prebuilds
node scripts/bundle-cli.js
node - <<'JS'
const fs = require('node:fs');
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
for (const [where, entry] of Object.entries(lock.packages)) {
  if (!where.startsWith('node_modules/') || entry.link || entry.resolved || !entry.version || !entry.integrity) continue;
  const name = entry.name ?? where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length);
  entry.resolved = `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
}
fs.writeFileSync('npm-shrinkwrap.json', JSON.stringify(lock, null, 2) + '\n');
JS
for arch in x64 arm64; do
  scripts/build-shim.sh "$arch" "prebuilds/linux-$arch/xen_sshm_shim.node" >/dev/null
done
node - <<'JS'
const fs = require('node:fs');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const triplet = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const binaries = {};
for (const arch of ['x64', 'arm64']) {
  const file = `prebuilds/linux-${arch}/xen_sshm_shim.node`;
  const bytes = fs.readFileSync(file);
  const cc = process.env[`CC_${arch.toUpperCase()}`] || `${triplet[arch]}-gcc`;
  binaries[`linux-${arch}`] = {
    file,
    bytes: bytes.length,
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
    compiler: execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0],
  };
}
const manifest = { napiVersion: 8, builtBy: 'scripts/build-shim.sh', binaries };
fs.writeFileSync('prebuilds/manifest.json', JSON.stringify(manifest, null, 2) + '\n');
for (const [k, v] of Object.entries(binaries)) console.error(`prebuild: ${k} ${v.bytes} bytes sha256 ${v.sha256.slice(0, 16)} (${v.compiler})`);
JS
