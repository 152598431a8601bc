/**
 * Runs the built `xen-sshm` CLI as a child process and collects its exit status and output: for
 * tests that drive the sandbox from the command line. The sandbox's xenstored is told to stay
 * up for a minute between commands (its idle exit would race the next command on a busy host).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';

export const XEN_SSHM_CLI = join(projectRoot(), 'dist', 'lib', 'cli', 'xen-sshm.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runXenSshm(args: string[]): Promise<CliRun> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [XEN_SSHM_CLI, ...args], { env: { ...process.env, XEN_SSHM_SANDBOX_IDLE_MS: '60000' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}
