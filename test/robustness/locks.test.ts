/**
 * Locks that cannot be half-made (issue 13 point 5). The sandbox's start file and the simulated
 * host's lock used to be created, then written, in two steps: a process killed between them left
 * an empty file that jammed every later command (20 s for the start file, 30 s for the sim lock)
 * and that reconcile left in place. Now each is written whole and linked into place
 * (lib/lockfile.ts), and a leftover of an older version, or a temporary file of a killed
 * process, is recognised and cleared by the next command.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLockFile, lockFileStatus, sweepTemporaries } from '../../lib/lockfile';
import { Sandbox } from '../../lib/sandbox';
import { seededRandom } from '../helpers/prng';
import { projectRoot } from '../harness/daemons';

const CLI = join(projectRoot(), 'dist', 'lib', 'cli', 'xen-sshm.js');
const LOCKFILE = join(projectRoot(), 'dist', 'lib', 'lockfile.js');

function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A pid that was just in use and is now gone. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function sandboxDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'xsl-'));
  t.teardown(async () => {
    await new Sandbox(dir).remove();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('an empty start file left by a kill does not jam the next command, which clears it', async (t) => {
  const dir = sandboxDir(t);
  writeFileSync(join(dir, 'xenstored.start'), '');
  const r = await cli(['ls', '--sandbox-dir', dir, '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.ms < 10_000, `ls took ${r.ms} ms`);
  t.false(existsSync(join(dir, 'xenstored.start')));
});

test("an empty simulated host's lock does not jam the next command", async (t) => {
  const dir = sandboxDir(t);
  const cfg = join(dir, 'vm1.cfg');
  writeFileSync(cfg, 'name = "vm1"\nmemory = 16\n');
  // A sandbox that runs, then a lock an older xen-sshm killed mid-way would leave.
  t.is((await cli(['ls', '--sandbox-dir', dir])).code, 0);
  mkdirSync(join(dir, 'sim'), { recursive: true });
  writeFileSync(join(dir, 'sim', 'lock'), '');
  const r = await cli(['create', cfg, '--sandbox-dir', dir, '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.ms < 10_000, `create took ${r.ms} ms`);
  t.false(existsSync(join(dir, 'sim', 'lock')));
});

test('reconcile clears every half-made leftover: empty start file and sim lock, temporary files of dead processes', async (t) => {
  const dir = sandboxDir(t);
  mkdirSync(join(dir, 'sim'), { recursive: true });
  const dead = deadPid();
  const leftovers = [join(dir, 'xenstored.start'), join(dir, 'sim', 'lock'), join(dir, `xenstored.start.${dead}.tmp`), join(dir, 'sim', `host.bin.${dead}.tmp`), join(dir, 'sim', `lock.${dead}.tmp`)];
  for (const p of leftovers) writeFileSync(p, '');
  // A live process's temporary file is not a leftover.
  const mine = join(dir, `xenstored.start.${process.pid}.tmp`);
  writeFileSync(mine, '');
  const r = await cli(['reconcile', '--sandbox-dir', dir, '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.ms < 10_000, `reconcile took ${r.ms} ms`);
  for (const p of leftovers) t.false(existsSync(p), `${p} is gone`);
  t.true(existsSync(mine), "a live process's temporary file stays");
});

test('a lock file is whole at every kill point: 60 processes killed while creating and removing locks', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-locks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lock = join(dir, 'lock');
  const seed = Number(process.env.XEN_SSHM_SEED ?? 1);
  t.log(`seed ${seed} (replay with XEN_SSHM_SEED=${seed})`);
  const random = seededRandom(seed);
  // Each child takes and drops the lock as fast as it can, until it is killed.
  const body = `const { createLockFile } = require(${JSON.stringify(LOCKFILE)}); const fs = require('node:fs'); process.stdout.write('go\\n'); for (;;) { if (createLockFile(${JSON.stringify(lock)})) fs.rmSync(${JSON.stringify(lock)}, { force: true }); }`;
  let sawLock = 0;
  for (let round = 0; round < 60; round++) {
    const child = spawn(process.execPath, ['-e', body], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    await new Promise((r) => setTimeout(r, 1 + Math.floor(random() * 20)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const status = lockFileStatus(lock);
    t.not(status, 'half-made', `round ${round}`);
    t.true(status === 'absent' || status === 'dead', `round ${round}: ${status}`);
    if (status === 'dead') {
      sawLock++;
      rmSync(lock);
    }
    sweepTemporaries(dir, ['lock']);
    t.deepEqual(readdirSync(dir), [], `round ${round}: no temporary file left`);
  }
  t.log(`${sawLock} of 60 kills left a (complete) lock behind`);
  // The lock is created whole or not at all, and a second creator is refused.
  t.true(createLockFile(lock));
  t.false(createLockFile(lock));
  t.is(lockFileStatus(lock), 'alive');
});
