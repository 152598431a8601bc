/**
 * The real host's toolstack: Xen's `xl`, run as a command (found on PATH, or given). Each call
 * is bounded in time and output; a failure is a ToolstackError naming the command, its exit
 * status and the last lines it printed.
 */
import { execFile } from 'node:child_process';
import type { XlConfig } from '../config/xl-reader';
import { isDomid } from '../vocabulary';
import { DomainRef, LifecycleStep, Toolstack, ToolstackError } from './types';

export interface XlToolstackOptions {
  /** The xl command (default `xl`, found on PATH). */
  xl?: string;
  /** Time limit of `xl create` (which builds the domain), in ms. Default 120 s. */
  createTimeoutMs?: number;
  /** Time limit of the other xl calls, in ms. Default 60 s. */
  timeoutMs?: number;
}

/** What xl printed, for an error message: its last lines, each shortened. */
function tail(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-3);
  return lines.map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l)).join(' / ');
}

export class XlToolstack implements Toolstack {
  readonly name = 'xl';
  private readonly xl: string;
  private readonly createTimeoutMs: number;
  private readonly timeoutMs: number;

  constructor(opts: XlToolstackOptions = {}) {
    this.xl = opts.xl ?? 'xl';
    this.createTimeoutMs = opts.createTimeoutMs ?? 120_000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  describe(step: 'create' | 'unpause' | 'destroy', what: string): string {
    return step === 'create' ? `xl create -p ${what}` : `xl ${step} ${what}`;
  }

  /** Runs `xl ARGS`; resolves with its stdout. */
  run(step: LifecycleStep, args: string[], d: Partial<DomainRef> = {}, timeoutMs = this.timeoutMs): Promise<string> {
    const command = [this.xl, ...args].join(' ');
    return new Promise((resolve, reject) => {
      execFile(this.xl, args, { timeout: timeoutMs, maxBuffer: 1 << 20, encoding: 'utf8', env: process.env }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { code?: string | number; killed?: boolean; signal?: string };
        const base = { step, command, domain: d.name, domid: d.domid };
        if (e.code === 'ENOENT' || e.code === 'EACCES') {
          return reject(new ToolstackError({
            ...base, code: e.code, cause: err,
            message: `${command}: ${this.xl} ${e.code === 'ENOENT' ? 'was not found' : 'cannot be run'}`,
            hint: e.code === 'ENOENT' ? 'install Xen\'s tools (Debian: xen-utils-4.17), or give --xl PATH' : 'run as root in dom0',
          }));
        }
        if (e.killed && e.signal === 'SIGTERM') {
          return reject(new ToolstackError({ ...base, code: 'ETIMEDOUT', message: `${command} did not finish within ${timeoutMs / 1000} s` }));
        }
        const status = typeof e.code === 'number' ? e.code : undefined;
        const said = tail(`${stderr}\n${stdout}`);
        reject(new ToolstackError({
          ...base, code: 'EXLFAIL', ...(status !== undefined ? { status } : {}),
          message: `${command} failed${status !== undefined ? ` (exit status ${status})` : e.signal ? ` (${e.signal})` : ''}${said ? `: ${said}` : ''}`,
        }));
      });
    });
  }

  async createPaused(configPath: string, _config: XlConfig, name: string): Promise<DomainRef> {
    await this.run('create', ['create', '-p', configPath], { name }, this.createTimeoutMs);
    return { domid: await this.domid(name, 'create'), name };
  }

  async unpause(d: DomainRef): Promise<void> {
    await this.run('unpause', ['unpause', String(d.domid)], d);
  }

  async destroy(d: DomainRef): Promise<void> {
    await this.run('destroy', ['destroy', String(d.domid)], d);
  }

  async resolve(arg: string): Promise<DomainRef> {
    if (/^\d{1,5}$/.test(arg) && isDomid(Number(arg))) {
      const domid = Number(arg);
      const name = (await this.run('resolve', ['domname', arg], { domid }).catch((e) => this.noDomain(arg, e))).trim();
      return { domid, name };
    }
    return { domid: await this.domid(arg, 'resolve'), name: arg };
  }

  private async domid(name: string, step: LifecycleStep): Promise<number> {
    const out = (await this.run(step, ['domid', name], { name }).catch((e) => this.noDomain(name, e))).trim();
    if (!/^\d{1,5}$/.test(out) || !isDomid(Number(out))) {
      throw new ToolstackError({ step, code: 'EINVAL', domain: name, command: `${this.xl} domid ${name}`, message: `${this.xl} domid ${name} printed ${JSON.stringify(out.slice(0, 80))}, not a domain id` });
    }
    return Number(out);
  }

  private noDomain(arg: string, e: unknown): never {
    if (e instanceof ToolstackError && e.code === 'EXLFAIL') {
      throw new ToolstackError({ step: e.step, code: 'ESRCH', domain: arg, command: e.command, message: `no domain ${JSON.stringify(arg)} (${e.message})`, cause: e });
    }
    throw e;
  }
}
