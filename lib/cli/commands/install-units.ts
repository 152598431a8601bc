/**
 * `xen-sshm install-units [--print] [--dir DIR]`: installs the package's systemd units
 * (systemd/xen-sshm.service: `reconcile`, then `daemon`, ordered after xenstored) where systemd
 * looks for an administrator's units, /etc/systemd/system. Their ExecStart lines get the
 * absolute paths of the node and xen-sshm running this command, so a unit works whatever the
 * npm prefix. --print shows the units instead of writing them.
 */
import type { Command } from 'commander';
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, UsageError } from '../handle-error';
import { optionsOf, printJSON } from '../options';

export const SYSTEMD_DIR = '/etc/systemd/system';
/** The package's systemd/ folder (dist/lib/cli/commands -> the package root). */
export const UNITS_SOURCE = join(__dirname, '..', '..', '..', '..', 'systemd');

interface InstallUnitsOptions {
  print?: boolean;
  dir?: string;
}

export interface Unit {
  name: string;
  path: string;
  text: string;
}

/** A path as systemd reads it in Exec lines: quoted when it has blanks. */
function execWord(p: string): string {
  return /[\s"'\\]/.test(p) ? `"${p.replace(/(["\\])/g, '\\$1')}"` : p;
}

/** The units of `source`, with `xen-sshm` in Exec lines replaced by `node /abs/xen-sshm.js`. */
export function renderUnits(opts: { source?: string; dir?: string; node?: string; cli?: string } = {}): Unit[] {
  const source = opts.source ?? UNITS_SOURCE;
  const dir = opts.dir ?? SYSTEMD_DIR;
  const exec = `${execWord(opts.node ?? process.execPath)} ${execWord(opts.cli ?? resolve(__dirname, '..', 'xen-sshm.js'))}`;
  let names: string[];
  try {
    names = readdirSync(source).filter((n) => /\.(service|socket|timer|path)$/.test(n)).sort();
  } catch (e) {
    throw new CliError({ code: (e as NodeJS.ErrnoException).code ?? 'ENOENT', path: source, message: `the package's systemd units are not in ${source}: ${(e as Error).message}` });
  }
  return names.map((name) => ({
    name,
    path: join(dir, name),
    text: readFileSync(join(source, name), 'utf8').replace(/^(Exec[A-Za-z]*=)([-@:+!]*)xen-sshm(?=\s|$)/gm, (_m, key: string, prefix: string) => `${key}${prefix}${exec}`),
  }));
}

export function registerInstallUnits(program: Command): void {
  program
    .command('install-units')
    .summary('install the systemd service (reconcile, then daemon, after xenstored)')
    .description(`Write the systemd units of xen-sshm (xen-sshm.service) to ${SYSTEMD_DIR}, with this xen-sshm's paths.`)
    .option('--print', 'print the units instead of writing them')
    .option('--dir <dir>', 'write them here instead', SYSTEMD_DIR)
    .addHelpText('after', '\nThen:\n  systemctl daemon-reload && systemctl enable --now xen-sshm.service\n')
    .action(async (_o: unknown, self: Command) => {
      const opts = optionsOf<InstallUnitsOptions>(self);
      if (opts.sandbox || opts.sandboxDir !== undefined) throw new UsageError('install-units is for a real dom0: the sandbox needs no service', { option: '--sandbox' });
      const units = renderUnits({ dir: opts.dir });
      if (!opts.print) {
        for (const u of units) {
          // Complete, then renamed into place: systemd never reads half a unit.
          const tmp = `${u.path}.tmp-${process.pid}`;
          try {
            writeFileSync(tmp, u.text, { mode: 0o644 });
            renameSync(tmp, u.path);
          } catch (e) {
            rmSync(tmp, { force: true });
            const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
            throw new CliError({
              code, path: u.path, message: `cannot write ${u.path}: ${(e as Error).message}`,
              hint: code === 'EACCES' || code === 'EPERM' ? 'run it as root, or see the units with --print' : undefined,
            });
          }
        }
      }
      if (opts.json) {
        printJSON({ ok: true, written: !opts.print, units: units.map((u) => ({ name: u.name, path: u.path, text: u.text })) });
      } else if (opts.print) {
        process.stdout.write(units.map((u) => `# ${u.path}\n${u.text}`).join('\n'));
      } else {
        process.stdout.write(units.map((u) => `wrote ${u.path}\n`).join('') + 'now: systemctl daemon-reload && systemctl enable --now xen-sshm.service\n');
      }
    });
}
