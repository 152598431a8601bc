/**
 * A private apt configuration for another Debian suite (FACTS.md section 7): its own sources
 * list, package lists, archive cache and an empty dpkg status, so Debian 13 "trixie" packages can
 * be resolved and downloaded on a Debian 12 machine without touching the machine's own apt state.
 * Nothing is installed: the tier and the real-daemon harness only download and unpack .debs.
 *
 * The machine's own suite (Debian 12 "bookworm", where 4.17 comes from) needs none of this:
 * `systemApt()` runs apt as it is configured.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { XenTierError, XenTierStep } from './errors';
import { run, RunResult } from './exec';

/** How one apt (apt-cache, apt-get) is invoked. */
export interface Apt {
  /** A label for logs: "Debian 12 (system apt)", "Debian 13 trixie (private)". */
  label: string;
  /** Extra `-o` options for every apt-cache and apt-get call. */
  options: string[];
  /** Whether this apt knows `arch` (a private apt lists its own; the system one through dpkg). */
  private: boolean;
  /**
   * Makes sure the package lists exist: for the system apt, `dpkg --add-architecture` and an
   * `apt-get update` when the arch was missing; for a private one an `apt-get update` of its own
   * lists when they are absent (or `force`). Returns true when it ran apt-get update.
   */
  update(step: XenTierStep, arch: string, log: (s: string) => void, force?: boolean): boolean;
  run(step: XenTierStep, tool: 'apt-cache' | 'apt-get', args: string[], opts?: { cwd?: string; allowFail?: boolean }): RunResult;
}

/** The machine's own apt (Debian 12 on this project's machines), as the 4.17 tier always used it. */
export function systemApt(): Apt {
  return {
    label: 'system apt',
    options: [],
    private: false,
    update(step, arch, log, force) {
      const foreign = run(step, 'dpkg', ['--print-foreign-architectures']).stdout.split(/\s+/);
      const added = arch !== hostArch() && !foreign.includes(arch);
      if (added) run(step, 'dpkg', ['--add-architecture', arch]);
      if (!added && !force) return false;
      log(`packages: apt-get update (${arch} lists missing or stale)`);
      run(step, 'apt-get', ['update', '-qq']);
      return true;
    },
    run(step, tool, args, opts = {}) {
      return run(step, tool, args, opts);
    },
  };
}

let cachedHostArch: string | undefined;
/** dpkg's native architecture of this machine (amd64 on CI). */
export function hostArch(): string {
  cachedHostArch ??= run('fetch', 'dpkg', ['--print-architecture']).stdout.trim();
  return cachedHostArch;
}

export interface PrivateAptOptions {
  /** Folder for the configuration, lists and archive cache (created). */
  dir: string;
  /** Debian suite, e.g. `trixie`; its -updates and -security suites are added. */
  suite: string;
  /** Architectures the lists hold (`arch=` of the sources). */
  arches: string[];
  /** Keyring of the Debian archive (the machine's debian-archive-keyring). */
  keyring?: string;
}

const DEBIAN = 'http://deb.debian.org/debian';
const DEBIAN_SECURITY = 'http://deb.debian.org/debian-security';

/** The sources list of a private suite: main of the suite, its updates and its security updates. */
export function sourcesList(suite: string, arches: string[], keyring: string): string {
  const opts = `[arch=${arches.join(',')} signed-by=${keyring}]`;
  return [
    `deb ${opts} ${DEBIAN} ${suite} main`,
    `deb ${opts} ${DEBIAN} ${suite}-updates main`,
    `deb ${opts} ${DEBIAN_SECURITY} ${suite}-security main`,
  ].join('\n') + '\n';
}

/** apt options that point every state and cache folder of apt into `dir`. */
export function privateAptOptions(dir: string, arches: string[]): string[] {
  const o = (k: string, v: string): string[] => ['-o', `${k}=${v}`];
  return [
    ...o('Dir::Etc::SourceList', path.join(dir, 'sources.list')),
    ...o('Dir::Etc::SourceParts', path.join(dir, 'sources.list.d')),
    ...o('Dir::Etc::Preferences', path.join(dir, 'preferences')),
    ...o('Dir::Etc::PreferencesParts', path.join(dir, 'preferences.d')),
    ...o('Dir::State::Lists', path.join(dir, 'lists')),
    ...o('Dir::State::status', path.join(dir, 'status')),
    ...o('Dir::Cache', path.join(dir, 'cache')),
    ...o('APT::Architecture', arches[0]),
    ...o('APT::Architectures', arches.join(',')),
    // Downloads land in folders owned by root: apt's _apt sandbox user could not write there.
    ...o('APT::Sandbox::User', 'root'),
  ];
}

/** An apt of its own for `suite`, with state under `dir`; the machine's apt stays untouched. */
export function privateApt(o: PrivateAptOptions): Apt {
  const keyring = o.keyring ?? '/usr/share/keyrings/debian-archive-keyring.gpg';
  const dir = path.resolve(o.dir);
  const options = privateAptOptions(dir, o.arches);
  const listsDir = path.join(dir, 'lists');
  const prepare = (): void => {
    for (const d of ['sources.list.d', 'preferences.d', 'lists/partial', 'cache/archives/partial']) {
      fs.mkdirSync(path.join(dir, d), { recursive: true });
    }
    fs.writeFileSync(path.join(dir, 'sources.list'), sourcesList(o.suite, o.arches, keyring));
    if (!fs.existsSync(path.join(dir, 'status'))) fs.writeFileSync(path.join(dir, 'status'), '');
  };
  const haveLists = (): boolean =>
    fs.existsSync(listsDir) && fs.readdirSync(listsDir).some((f) => f.endsWith('_Packages'));
  return {
    label: `Debian ${o.suite} (private apt in ${dir})`,
    options,
    private: true,
    update(step, arch, log, force) {
      if (!o.arches.includes(arch)) {
        throw new XenTierError(step, 'EINVAL', `the private apt of ${o.suite} lists ${o.arches.join(',')}, not ${arch}`, dir);
      }
      if (!fs.existsSync(keyring)) {
        throw new XenTierError(step, 'ENOENT', `${keyring} missing: apt-get install debian-archive-keyring`, keyring);
      }
      prepare();
      if (haveLists() && !force) return false;
      log(`packages: apt-get update of ${o.suite} (${o.arches.join(', ')}) into ${path.relative(process.cwd(), dir) || dir}`);
      run(step, 'apt-get', [...options, 'update', '-qq']);
      return true;
    },
    run(step, tool, args, opts = {}) {
      return run(step, tool, [...options, ...args], opts);
    },
  };
}
