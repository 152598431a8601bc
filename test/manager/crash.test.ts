/**
 * Crash safety, as a property: a real child process applying or releasing is SIGKILLed at a
 * seeded random point: at its N-th step (every xenstore request and every hypercall batch is
 * a step; killed just before the step is sent, or just after its answer came back), or by a
 * timer. Right at the kill the per-domain index must agree with the records (it changes in the
 * same transactions). Then `reconcile` runs, and the records and the simulated host must agree
 * exactly (no leaked frame or mapping, no stale record, no lock left); releasing everything
 * must then leave nothing at all, the index included. R1 has a doorbell, so the steps include
 * "port allocated" and "port recorded": after reconcile no port the run made is unrecorded in
 * the simulated host and no record lacks its port (helpers.ts consistencyProblems,
 * unrecordedPorts).
 *
 * Each CI run covers an evenly spread sample of every (operation, step, before/after) point
 * from a seeded offset; the seed is fixed (1) unless XEN_SSHM_CRASH_SEED names another, so
 * other seeds cover the other points. XEN_SSHM_CRASH_RUNS changes how many (default 240, at
 * least 200).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { parseXlConfig } from '../../lib/config';
import { SharedMemoryManager } from '../../lib/manager';
import { destroyDomain } from '../../lib/sandbox/toolstack';
import { cleanProblems, consistencyProblems, indexProblemsOf, portSnapshot, rng, snapshotDist, startEnv, unrecordedPorts, type Env } from './helpers';

const CHILD = snapshotDist('test/manager/crash-child.js');
const RUNS = Math.max(200, Number(process.env.XEN_SSHM_CRASH_RUNS ?? 240));
const SEED = Number(process.env.XEN_SSHM_CRASH_SEED ?? 1);
const LANES = 2;

type OpName = 'applyA' | 'applyB' | 'applyC' | 'applyNew' | 'releaseB' | 'releaseA' | 'releaseAforce';
const OPS: OpName[] = ['applyA', 'applyB', 'applyC', 'applyNew', 'releaseB', 'releaseA', 'releaseAforce'];

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runChild(spec: object, env: NodeJS.ProcessEnv, killAfterMs?: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CHILD, JSON.stringify(spec)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const timer = killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), killAfterMs) : undefined;
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** One lane: its own root, domains and IDs, sharing the xenstored and the host with the other. */
class Lane {
  readonly root: string;
  a = 0;
  b = 0;
  c = 0;
  fresh = 0;
  serial = 0;
  /** The owner's ports before the run (those of earlier runs' released regions stay: dom0 cannot close them). */
  portsBefore = new Map<number, Set<number>>();

  constructor(
    readonly env: Env,
    readonly k: number,
  ) {
    this.root = `/local/sshm${k}`;
  }

  get domids(): number[] {
    return [this.a, this.b, this.c, ...(this.fresh ? [this.fresh] : [])];
  }

  cfg(who: 'a' | 'b' | 'c' | 'n'): string {
    const name = who === 'n' ? `n${this.k}x${this.serial}` : `${who}${this.k}`;
    const entries = {
      a: ['id=R1, begin=0x60000000, size=32K, role=owner, doorbell=yes', 'id=R2, begin=0x61000000, size=16K, role=owner'],
      b: ['id=R1, begin=0x70000000, size=16K, offset=8K'],
      c: ['id=R1, begin=0x70000000, size=32K', 'id=R2, begin=0x71000000, size=16K'],
      n: ['id=R2, begin=0x72000000, size=8K, offset=4K'],
    }[who];
    return `name = "${name}"\nstatic_shm = [${entries.map((e) => `"${e}"`).join(', ')}]\n`;
  }

  async setup(): Promise<void> {
    // Every run's borrowers of R1 get a port that outlives the run's region: room for them all.
    this.a = await this.env.vm(`a${this.k}`, { maxEvtchnPort: 4095 });
    this.b = await this.env.vm(`b${this.k}`);
    this.c = await this.env.vm(`c${this.k}`);
  }

  manager(): SharedMemoryManager {
    return this.env.manager({ root: this.root });
  }

  async apply(m: SharedMemoryManager, who: 'a' | 'b' | 'c'): Promise<void> {
    await m.apply({ config: parseXlConfig(this.cfg(who)), domid: this[who], allowSetTarget: true });
  }

  /** Brings the lane to the state the operation starts from; returns the child's spec. */
  async prepare(op: OpName): Promise<object> {
    const m = this.manager();
    try {
      const base = { socket: this.env.socketPath, simDir: this.env.simDir, root: this.root };
      if (op !== 'applyA') await this.apply(m, 'a');
      if (op === 'applyC' || op === 'releaseA' || op === 'releaseB' || op === 'releaseAforce') await this.apply(m, 'b');
      if (op === 'releaseB' || op === 'releaseAforce') await this.apply(m, 'c');
      this.portsBefore = await portSnapshot(this.env, [this.a]);
      switch (op) {
        case 'applyA':
          return { ...base, op: 'apply', cfg: this.cfg('a'), domid: this.a };
        case 'applyB':
          return { ...base, op: 'apply', cfg: this.cfg('b'), domid: this.b, allowSetTarget: true };
        case 'applyC':
          return { ...base, op: 'apply', cfg: this.cfg('c'), domid: this.c, allowSetTarget: true };
        case 'applyNew':
          // A domain never seen before: its set_target is part of the run.
          this.serial++;
          this.fresh = await this.env.vm(`n${this.k}x${this.serial}`);
          return { ...base, op: 'apply', cfg: this.cfg('n'), domid: this.fresh, allowSetTarget: true };
        case 'releaseB':
          return { ...base, op: 'release', domid: this.b };
        case 'releaseA':
          return { ...base, op: 'release', domid: this.a };
        case 'releaseAforce':
          return { ...base, op: 'release', domid: this.a, force: true };
      }
    } finally {
      m.dispose();
    }
  }

  /** reconcile, check agreement, release everything, check emptiness. Returns the problems. */
  async settle(): Promise<{ reconciled: number; problems: string[] }> {
    const m = this.manager();
    try {
      const report = await m.reconcile({ deadDomains: false });
      const problems = [...(await consistencyProblems(this.env, this.root, this.domids)), ...(await unrecordedPorts(this.env, this.root, this.portsBefore))].map((p) => `after reconcile: ${p}`);
      for (const d of [this.b, this.c, this.fresh].filter(Boolean)) await m.release({ domid: d });
      await m.release({ domid: this.a, force: true });
      problems.push(...(await cleanProblems(this.env, this.root, this.domids)).map((p) => `after releasing everything: ${p}`));
      if (this.fresh) {
        await destroyDomain(this.env.xs, this.env.hv, this.fresh);
        this.fresh = 0;
      }
      return { reconciled: report.actions.length, problems };
    } finally {
      m.dispose();
    }
  }
}

test(`crash safety: ${RUNS} SIGKILLs at seeded points of apply and release, then reconcile leaves nothing stale`, async (t) => {
  t.timeout(600_000);
  const env = await startEnv('memory', { simDir: true });
  t.teardown(() => env.close());
  t.log(`seed ${SEED} (replay with XEN_SSHM_CRASH_SEED=${SEED})`);
  const lanes = Array.from({ length: LANES }, (_, k) => new Lane(env, k));
  for (const l of lanes) await l.setup();

  // Calibration: each operation once, to completion, counting its steps.
  const steps = new Map<OpName, number>();
  const durations: number[] = [];
  for (const op of OPS) {
    const spec = await lanes[0].prepare(op);
    const r = await runChild(spec, {});
    t.is(r.code, 0, `${op}: ${r.stderr}`);
    steps.set(op, JSON.parse(r.stdout).steps as number);
    durations.push(r.ms);
    const s = await lanes[0].settle();
    t.deepEqual(s.problems, [], `${op} (no crash)`);
  }
  t.log(`steps per operation: ${OPS.map((o) => `${o} ${steps.get(o)}`).join(', ')}`);

  // Every crash point, then an even sample of them from a seeded offset; a tenth are timer kills.
  const points: Array<{ op: OpName; at: number; when: 'before' | 'after' }> = [];
  for (const op of OPS) for (let at = 1; at <= steps.get(op)!; at++) for (const when of ['before', 'after'] as const) points.push({ op, at, when });
  const random = rng(SEED);
  const timerRuns = Math.ceil(RUNS / 10);
  const stepRuns = RUNS - timerRuns;
  const offset = Math.floor(random() * points.length);
  const stride = points.length / stepRuns;
  type Plan = { op: OpName; crash?: string; timerMs?: number };
  const plans: Plan[] = [];
  for (let i = 0; i < stepRuns; i++) {
    const p = points[(offset + Math.floor(i * stride)) % points.length];
    plans.push({ op: p.op, crash: `${p.at}:${p.when}` });
  }
  const median = durations.sort((x, y) => x - y)[Math.floor(durations.length / 2)];
  for (let i = 0; i < timerRuns; i++) plans.push({ op: OPS[Math.floor(random() * OPS.length)], timerMs: Math.floor(random() * median * 1.2) });
  // Shuffle so that both lanes see every kind of run.
  for (let i = plans.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [plans[i], plans[j]] = [plans[j], plans[i]];
  }
  t.log(`${points.length} crash points, ${stepRuns} step kills sampled (every ${stride.toFixed(2)}th), ${timerRuns} timer kills`);

  let killed = 0;
  let reconciledActions = 0;
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    lanes.map(async (lane) => {
      while (next < plans.length) {
        const plan = plans[next++];
        const spec = await lane.prepare(plan.op);
        const r = await runChild(spec, plan.crash ? { XEN_SSHM_CRASH_AT: plan.crash } : {}, plan.timerMs);
        const label = `${plan.op} ${plan.crash ? `step ${plan.crash}` : `timer ${plan.timerMs} ms`}`;
        if (r.signal === 'SIGKILL') killed++;
        else if (r.code !== 0) failures.push(`${label}: child failed: ${r.stderr.trim().split('\n')[0]}`);
        // A step past the end (a later run may take fewer steps: set_target is done once) is no kill.
        if (plan.crash && r.signal !== 'SIGKILL' && !(r.code === 0 && JSON.parse(r.stdout).steps < Number(plan.crash.split(':')[0]))) {
          failures.push(`${label}: the child was not killed (${r.code})`);
        }
        // The index changes in the transactions that change the mappings: right at the kill,
        // before any reconcile, it agrees with whatever the records say.
        for (const p of await indexProblemsOf(lane.env, lane.root)) failures.push(`${label}: right after the kill: ${p}`);
        const s = await lane.settle();
        reconciledActions += s.reconciled;
        for (const p of s.problems) failures.push(`${label}: ${p}`);
      }
    }),
  );
  t.log(`${plans.length} runs, ${killed} killed, ${reconciledActions} intents reconciled`);
  t.deepEqual(failures, []);
  t.true(plans.length >= 200);
  t.true(reconciledActions > 0);
});
