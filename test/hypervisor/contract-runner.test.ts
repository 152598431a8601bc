/** The contract outside ava: the plain runner in its own process, as dom0 on real Xen runs it. */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { defineBackendContract } from './contract';
import { makeSimFixture } from './sim-fixture';

const run = promisify(execFile);
const RUNNER = path.join(__dirname, 'run-contract.js');

test('run-contract.js drives every check on the sim and exits 0', async (t) => {
  const { stdout } = await run(process.execPath, [RUNNER, '--backend', 'sim', '--arch', 'arm'], { timeout: 60_000 });
  const n = defineBackendContract('x', () => makeSimFixture('arm')).checks.length;
  t.true(stdout.startsWith(`1..${n}\n`), stdout);
  t.is(stdout.split('\n').filter((l) => /^ok \d+ - sim arm: /.test(l)).length, n);
  t.regex(stdout, new RegExp(`# ${n} passed, 0 failed`));
});

test('a failing check makes the runner fail: privcmd here has no device', async (t) => {
  const e = await t.throwsAsync(run(process.execPath, [RUNNER, '--backend', 'privcmd', '--owner', '1', '--borrower', '2', '--owner-gfn', '1', '--borrower-gfn', '2', '--interdomain-port', '1', '--guest-cmd', 'true']));
  const err = e as Error & { code?: number; stderr?: string };
  t.is(err.code, 2);
  t.regex(err.stderr ?? '', /\/dev\/xen\/privcmd does not exist/);
});
