/**
 * Packing and installing the package as a user would, for the package test and the real-Xen
 * tier's dom0 image: `npm pack` of a copy of the checkout (prepack builds the prebuilt addons
 * and the shrinkwrap there, not under the feet of tests that load the checkout's own
 * build/Release), and `npm install -g` of the tarball into a prefix, from npm's cache alone.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface Packed {
  tarball: string;
  /** Paths inside the tarball (without the package/ prefix). */
  files: string[];
  /** Bytes of the tarball. */
  size: number;
}

export class PackError extends Error {
  readonly kind = 'package' as const;
  constructor(readonly code: string, message: string, readonly command: string) {
    super(message);
  }
}

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) {
    const tail = (r.stderr || r.stdout || r.error?.message || '').trim().split('\n').slice(-4).join(' / ');
    throw new PackError(r.error ? 'ENOENT' : 'EFAIL', `${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${tail}`, `${cmd} ${args.join(' ')}`);
  }
  return r.stdout;
}

/**
 * `npm pack` of `root` (its dist/ must be built): a copy in workDir/src, prepack there (the two
 * prebuilt addons, the shrinkwrap), then the tarball in workDir.
 */
export function packCheckout(root: string, workDir: string): Packed {
  const src = join(workDir, 'src');
  const skip = new Set(['node_modules', '.git', '.cache', 'build', 'prebuilds', 'npm-shrinkwrap.json', 'tmp']);
  // Entry by entry: workDir is often inside the checkout (.cache/, the tier's default), and
  // cpSync refuses to copy a folder into itself before any filter runs.
  mkdirSync(src, { recursive: true });
  for (const name of readdirSync(root)) {
    if (skip.has(name) || name.endsWith('.tgz')) continue;
    cpSync(join(root, name), join(src, name), { recursive: true, filter: (p) => !p.endsWith('.tgz') });
  }
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
  sh('npm', ['run', 'prepack'], { cwd: src });
  const out = JSON.parse(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', workDir], { cwd: src })) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  return { tarball: join(workDir, out[0].filename), files: out[0].files.map((f) => f.path), size: out[0].size };
}

export interface InstallOptions {
  /** Install for another platform (npm's --os/--cpu); the install step is then not run here. */
  os?: string;
  cpu?: string;
  /** Run the package's install step (default true unless os/cpu name another platform). */
  scripts?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * `npm install -g --prefix PREFIX TARBALL` from npm's cache (the checkout's `npm ci` filled it
 * with the shrinkwrapped versions). Returns the installed package's folder.
 */
export function installTarball(tarball: string, prefix: string, opts: InstallOptions = {}): string {
  const scripts = opts.scripts ?? (opts.os === undefined && opts.cpu === undefined);
  const args = ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund'];
  if (opts.os) args.push('--os', opts.os);
  if (opts.cpu) args.push('--cpu', opts.cpu);
  // npm 11 runs no install script of a global install unless allowed; older npm runs them all.
  args.push(scripts ? '--dangerously-allow-all-scripts' : '--ignore-scripts');
  sh('npm', [...args, tarball], { env: opts.env ?? process.env });
  return join(prefix, 'lib', 'node_modules', 'xen-sshm');
}
