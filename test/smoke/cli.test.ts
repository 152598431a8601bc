/**
 * Smoke test of the built command as a user first runs it: it starts, knows its version and
 * commands, and checks the proposal's three-VM configs. (The full behaviour: test/cli/.)
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('xen-sshm starts: --version is the package version, --help lists the commands', (t) => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const v = run(['--version']);
  t.deepEqual([v.status, v.stdout], [0, `${version}\n`]);
  const h = run(['--help']);
  t.is(h.status, 0);
  t.regex(h.stdout, /^Usage: xen-sshm \[options\] \[command\]/);
  t.regex(h.stdout, /^ {2}create \[options\] <cfg>/m);
  t.regex(h.stdout, /^ {2}check \[options\] <cfg\.\.\.>/m);
});

test('xen-sshm check accepts the three-VM example and prints its plan', (t) => {
  const dir = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');
  const r = run(['check', ...['vm1', 'vm2', 'vm3'].map((n) => join(dir, `${n}.cfg`))]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^3 domains \(vm1, vm2, vm3\), 2 shared memory regions: OK\n/);
  t.is(r.stderr, '');
});
