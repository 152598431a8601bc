#!/usr/bin/env node
// The installed `xen-sshm` command (package.json "bin"): dist/lib/cli/xen-sshm.bundle.js, one
// file made by esbuild from tsc's dist/lib/cli/xen-sshm.js, so that `xen-sshm check` and
// `--version` start without resolving, reading and compiling some thirty modules one by one
// (issue 15 point 5; docs/notes/cli-wave3.md has the figures). Run by `prepare` and `prepack`
// (`npm run build:cli`); it needs dist/ built first.
//
// What goes in: commander, and the modules check and --version run (the entry, the command
// list, check, the option and error frame, the table, the config reader and planner, elide,
// vocabulary). Every other module of dist/ stays its own file and is required at its own path,
// when a command needs it, exactly as from dist/lib/cli/xen-sshm.js: the host commands load
// the manager, the xenstore client and the hypervisor layer from dist/ (one instance of each:
// the real-Xen tier's timing preload instruments dist/lib/manager of the installed package),
// and cli-table3 and cli-progress come from node_modules when drawn.
//
// The frame modules bundled here (options, handle-error, elide, vocabulary, numbers) are also
// loaded from dist/ by a host command's own module: two copies, both stateless, and the error
// handler recognises errors by their `kind`, never by instanceof, so either copy's errors are
// reported alike.
//
//   node scripts/bundle-cli.js [--metafile FILE]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cliDir = path.join(root, 'dist', 'lib', 'cli');
const entry = path.join(cliDir, 'xen-sshm.js');
const outfile = path.join(cliDir, 'xen-sshm.bundle.js');

/** dist modules compiled into the bundle (paths under dist/lib, without .js). */
const BUNDLED = [
  /^cli\/(xen-sshm|options|handle-error|table)$/,
  /^cli\/commands\/(index|check)$/,
  /^config\/(check|errors|plan|xl-reader|shm-entries|validate|numbers|did-you-mean)$/,
  /^(elide|vocabulary)$/,
];
/** Packages compiled in; every other package is required from node_modules when used. */
const BUNDLED_PACKAGES = new Set(['commander']);

async function main() {
  const args = process.argv.slice(2);
  const metafileAt = args[0] === '--metafile' ? args[1] : null;
  if (!fs.existsSync(entry)) {
    process.stderr.write(`bundle-cli: ${path.relative(root, entry)} is missing: build dist/ first (npm run build)\n`);
    process.exit(1);
  }
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch (e) {
    process.stderr.write(`bundle-cli: esbuild is not installed (a devDependency: npm ci): ${e.message.split('\n')[0]}\n`);
    process.exit(1);
  }
  const distLib = path.join(root, 'dist', 'lib') + path.sep;
  const keepOut = {
    name: 'keep-out',
    setup(build) {
      // A relative require in dist/: bundled if listed, else left to Node at the same path.
      build.onResolve({ filter: /^\.\.?\// }, (a) => {
        if (!a.importer.startsWith(path.join(root, 'dist') + path.sep)) return undefined;
        let abs = path.resolve(a.resolveDir, a.path);
        if (!abs.endsWith('.js')) abs = require.resolve(abs);
        const rel = abs.startsWith(distLib) ? abs.slice(distLib.length).replace(/\.js$/, '') : null;
        if (rel !== null && BUNDLED.some((re) => re.test(rel))) return undefined;
        let from = path.relative(cliDir, abs);
        if (!from.startsWith('.')) from = `./${from}`;
        return { path: from, external: true };
      });
      // commander requires child_process at load, for executable subcommands (a command run
      // as a program of its own), which xen-sshm has none of; loading it brings net, dgram and
      // the streams. In the bundle commander gets it on first use instead.
      build.onResolve({ filter: /^node:child_process$/ }, (a) => (/[\\/]node_modules[\\/]commander[\\/]/.test(a.importer) ? { path: 'child_process', namespace: 'on-first-use' } : undefined));
      build.onLoad({ filter: /.*/, namespace: 'on-first-use' }, () => ({
        contents: "let m; module.exports = new Proxy({}, { get: (_, key) => (m ??= require('node:child_process'))[key] });\n",
        loader: 'js',
      }));
      // A package: commander is compiled in, the others stay in node_modules.
      build.onResolve({ filter: /^[^./]/ }, (a) => {
        if (a.path.startsWith('node:')) return { path: a.path, external: true };
        const name = a.path.startsWith('@') ? a.path.split('/').slice(0, 2).join('/') : a.path.split('/')[0];
        if (!a.importer.startsWith(path.join(root, 'dist') + path.sep)) return undefined;
        return BUNDLED_PACKAGES.has(name) ? undefined : { path: a.path, external: true };
      });
    },
  };
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    // dom0 on Debian 12 runs Node 18.
    target: 'node18',
    format: 'cjs',
    write: false,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
    plugins: [keepOut],
  });
  const [out] = result.outputFiles;
  // Written beside and renamed: a command started meanwhile never reads half a file.
  const tmp = `${outfile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, out.contents, { mode: 0o755 });
  fs.renameSync(tmp, outfile);
  if (metafileAt) fs.writeFileSync(metafileAt, JSON.stringify(result.metafile, null, 2) + '\n');
  const inputs = Object.keys(result.metafile.inputs);
  process.stderr.write(`bundle-cli: ${path.relative(root, outfile)} ${out.contents.length} bytes from ${inputs.length} modules\n`);
}

module.exports = { BUNDLED, BUNDLED_PACKAGES };
if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bundle-cli: ${e.message}\n`);
    process.exitCode = 1;
  });
}
