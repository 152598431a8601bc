/**
 * A child process for the crash-safety test: applies or releases once against a given
 * xenstored and simulated host folder, and is killed (SIGKILL, by itself through
 * XEN_SSHM_CRASH_AT, or by the parent's timer) somewhere in the middle. Prints
 * {"steps": N, "roles": ["ID:role:action"...]} when it gets to the end. Also the
 * concurrency test's applier.
 *
 *   node crash-child.js '{"socket":..,"simDir":..,"root":..,"op":"apply","cfg":"..","domid":2,"allowSetTarget":true}'
 */
import { connect } from '../../xenstore-wire';
import { parseXlConfig } from '../../lib/config/xl-reader';
import { SimHypervisor } from '../../lib/hypervisor/sim';
import { intercept } from '../../lib/hypervisor/intercept';
import { SharedMemoryManager } from '../../lib/manager';
import { crashHook, crashPlanFromEnv, Steps } from './steps';

interface ChildSpec {
  socket: string;
  simDir: string;
  root: string;
  op: 'apply' | 'release';
  cfg?: string;
  domid: number;
  allowSetTarget?: boolean;
  force?: boolean;
  lockWaitMs?: number;
  /** SIGKILL at the first step whose label starts with this (before or after it), instead of by number. */
  crashAtLabel?: string;
  crashWhen?: 'before' | 'after';
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as ChildSpec;
  const plan = crashPlanFromEnv();
  const crash = plan ? crashHook(plan) : null;
  let steps = 0;
  const counter = new Steps((s, phase) => {
    steps = s.n;
    crash?.(s, phase);
    if (spec.crashAtLabel && s.label.startsWith(spec.crashAtLabel) && phase === (spec.crashWhen ?? 'before')) process.kill(process.pid, 'SIGKILL');
  });
  const xs = await connect({ path: spec.socket, interceptor: counter.interceptor });
  const hv = new SimHypervisor({ dir: spec.simDir });
  const m = new SharedMemoryManager({ xenstore: xs, hypervisor: intercept(hv, counter.hypervisorHooks), root: spec.root, lockWaitMs: spec.lockWaitMs ?? 30_000 });
  let roles: string[] = [];
  if (spec.op === 'apply') {
    const r = await m.apply({ config: parseXlConfig(spec.cfg!, { file: 'child.cfg' }), domid: spec.domid, allowSetTarget: spec.allowSetTarget });
    roles = r.entries.map((e) => `${e.id}:${e.role}:${e.action}`);
  } else await m.release({ domid: spec.domid, force: spec.force });
  process.stdout.write(JSON.stringify({ steps, roles }) + '\n');
  m.dispose();
  await xs.close();
  await hv.close();
}

main().catch((e) => {
  process.stderr.write(`crash-child: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
