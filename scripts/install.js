#!/usr/bin/env node
/**
 * npm's `install` step of xen-sshm. The package ships the native addon prebuilt for linux-x64
 * and linux-arm64 (prebuilds/): there, nothing is built and no compiler or cmake is run. On
 * other platforms, and in a development checkout (which has no prebuilds/), the addon is built
 * from source with cmake-js (shim/, CMakeLists.txt): the checkout's own cmake-js, else one that
 * npm fetches for the occasion.
 *
 * Only privcmd needs the addon. When an installed package cannot build it (no cmake or compiler
 * on an unusual platform), the install still succeeds with a warning: `check`, `ls`,
 * `reconcile`, xs-trace, the xenstore client and `--sandbox` work without it, and a command that
 * needs privcmd says which files it looked for. In a development checkout a failed build fails
 * the install, since the tests need it.
 *
 *   node scripts/install.js                 npm's install step
 *   node scripts/install.js --from-source   `npm run build:shim`: build into build/Release even
 *                                           where a prebuilt exists; a failure fails
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const platform = `${process.platform}-${process.arch}`;
const prebuilt = path.join(root, 'prebuilds', platform, 'xen_sshm_shim.node');
// Only a checkout has the test harness (the package's `files` leave test/ out).
const checkout = fs.existsSync(path.join(root, 'test', 'harness'));
const fromSource = process.argv.includes('--from-source');

if (!checkout && !fromSource && fs.existsSync(prebuilt)) process.exit(0);

function cmakeJs() {
  try {
    return [process.execPath, [require.resolve('cmake-js/bin/cmake-js', { paths: [root] }), 'compile', '--log-level', 'warn']];
  } catch {
    const range = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).devDependencies['cmake-js'];
    const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];
    return [npm[0], [...npm[1], 'exec', '--yes', `--package=cmake-js@${range}`, '--', 'cmake-js', 'compile', '--log-level', 'warn']];
  }
}

const [cmd, args] = cmakeJs();
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
if (r.status === 0) process.exit(0);
const why = r.error ? r.error.message : `exit status ${r.status}`;
if (checkout || fromSource) {
  process.stderr.write(`xen-sshm: building the native addon failed (${why}): it needs cmake and a C/C++ compiler${checkout ? ' (see .ci/run)' : ''}\n`);
  process.exit(1);
}
process.stderr.write(
  `xen-sshm: no prebuilt addon for ${platform}, and building it from source failed (${why}).\n` +
    '  Everything that does not need /dev/xen/privcmd works: check, ls, reconcile, xs-trace, the xenstore client, --sandbox.\n' +
    '  For privcmd (apply, release, peek, daemon, create on a real host): install cmake and a C/C++ compiler, then `npm run build:shim` here.\n',
);
process.exit(0);
