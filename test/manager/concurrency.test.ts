/**
 * Concurrency: 16 processes apply, at the same moment, configs naming the same ID (the
 * proposal's spelling, where the first to apply owns), against one xenstored and one shared
 * simulated host. Exactly one becomes the owner, every other domain is mapped exactly once to
 * the owner's frames, and releasing them all leaves nothing.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { cleanProblems, consistencyProblems, snapshotDist, startEnv, type StoreKind } from './helpers';

const CHILD = snapshotDist('test/manager/crash-child.js');
const N = 16;

function apply(spec: object): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

for (const kind of ['memory', 'cxenstored'] as StoreKind[]) {
  test(`${N} processes apply the same ID at once: one owner, every borrower mapped once (${kind})`, async (t) => {
    t.timeout(120_000);
    const env = await startEnv(kind, { simDir: true, fakeDomains: Array.from({ length: N }, (_, i) => i + 1) });
    t.teardown(() => env.close());
    const domids: number[] = [];
    for (let i = 1; i <= N; i++) domids.push(await env.vm(`c${i}`));
    const results = await Promise.all(
      domids.map((domid, i) =>
        apply({
          socket: env.socketPath, simDir: env.simDir, root: '/local/shared_mem', op: 'apply', domid, allowSetTarget: true,
          cfg: `name = "c${i + 1}"\nstatic_shared_mem = ["0x60000000+64K = SHARED"]\n`,
        }),
      ),
    );
    for (const r of results) t.is(r.code, 0, results.map((x, i) => `c${i + 1}: ${x.code} ${x.stderr.split('\n').slice(0, 3).join(' | ')}`).join('\n'));
    const roles = results.map((r) => (JSON.parse(r.stdout) as { roles: string[] }).roles[0]);
    t.is(roles.filter((r) => r === 'SHARED:owner:created').length, 1, roles.join(' '));
    t.is(roles.filter((r) => r === 'SHARED:borrower:mapped').length, N - 1, roles.join(' '));

    const m = env.manager();
    const region = await m.region('SHARED');
    t.is(region.state, 'ready');
    const owner = region.owner;
    t.is(domids[roles.indexOf('SHARED:owner:created')], owner);
    t.deepEqual(region.mappings.map((x) => x.domid), domids);
    for (const d of await env.hv.domains()) {
      if (d.domid === 0) continue;
      t.is(d.mappedGfns, 16, `d${d.domid} maps the 16 pages once`);
      t.is(d.target, d.domid === owner ? null : owner);
    }
    t.deepEqual(await consistencyProblems(env), []);
    for (const d of domids) if (d !== owner) await m.release({ domid: d });
    await m.release({ domid: owner });
    t.deepEqual(await cleanProblems(env), []);
  });
}
