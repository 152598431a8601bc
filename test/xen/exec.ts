import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import { XenTierError, XenTierStep } from './errors';

export interface RunResult { status: number; stdout: string; stderr: string }

/**
 * Runs a host command to completion. The tier's preparation steps are sequential and short, so
 * a synchronous spawn keeps them simple; the boot itself is streamed (see boot.ts).
 * `allowFail` returns the result instead of throwing, for commands whose partial output is
 * still useful (apt-cache show with one unknown name among many).
 */
export function run(
  step: XenTierStep,
  cmd: string,
  args: string[],
  opts: SpawnSyncOptions & { allowFail?: boolean } = {},
): RunResult {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code ?? 'EIO';
    throw new XenTierError(step, code, `${cmd}: ${res.error.message}`, cmd);
  }
  const out: RunResult = {
    status: res.status ?? 128,
    stdout: String(res.stdout ?? ''),
    stderr: String(res.stderr ?? ''),
  };
  if (out.status !== 0 && !opts.allowFail) {
    const tail = out.stderr.trim().split('\n').slice(-8).join('\n');
    throw new XenTierError(step, 'ECHILD', `${cmd} ${args.join(' ')} exited ${out.status}\n${tail}`, cmd);
  }
  return out;
}

/** Runs a shell pipeline (cpio | gzip and friends). */
export function sh(step: XenTierStep, script: string, opts: SpawnSyncOptions = {}): RunResult {
  return run(step, 'bash', ['-o', 'pipefail', '-c', script], opts);
}
