/**
 * `xen-sshm install-units`: the service unit of the package, with the running xen-sshm's
 * absolute paths, ordered after xenstored (Debian 12: xen.service from /etc/init.d/xen; Xen's
 * own units: xenstored.service, xen-init-dom0.service), running reconcile before the daemon;
 * systemd's own checker accepts it without a warning.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function xs(args: string[]): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** A unit file's `Key=value` lines of one section. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let inside = false;
  for (const line of text.split('\n')) {
    if (/^\[.*\]$/.test(line)) inside = line === `[${name}]`;
    else if (inside && /^[A-Za-z]+=/.test(line)) {
      const i = line.indexOf('=');
      out.set(line.slice(0, i), [...(out.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

test('--print shows xen-sshm.service with absolute paths, reconcile first, after xenstored', async (t) => {
  const r = await xs(['install-units', '--print']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^# \/etc\/systemd\/system\/xen-sshm\.service\n/);
  const unit = section(r.stdout, 'Unit');
  const service = section(r.stdout, 'Service');
  const after = (unit.get('After') ?? []).join(' ').split(/\s+/);
  for (const u of ['xen.service', 'xenstored.service', 'xen-init-dom0.service']) t.true(after.includes(u), `After= ${u}`);
  t.deepEqual(unit.get('Before'), ['xendomains.service']);
  t.deepEqual(service.get('ExecStartPre'), [`-${process.execPath} ${CLI} reconcile`]);
  t.deepEqual(service.get('ExecStart'), [`${process.execPath} ${CLI} daemon`]);
  t.deepEqual(section(r.stdout, 'Install').get('WantedBy'), ['multi-user.target']);
  const j = JSON.parse((await xs(['install-units', '--print', '--json'])).stdout) as { ok: boolean; written: boolean; units: Array<{ name: string; text: string }> };
  t.deepEqual([j.ok, j.written, j.units.map((u) => u.name)], [true, false, ['xen-sshm.service']]);
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await xs(['install-units', '--print', '--dir', dir])).code, 0);
  t.deepEqual(readdirSync(dir), [], '--print writes nothing');
});

test('writes the units where asked, whole, readable by all; systemd-analyze verify accepts them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await xs(['install-units', '--dir', dir]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `wrote ${join(dir, 'xen-sshm.service')}\nnow: systemctl daemon-reload && systemctl enable --now xen-sshm.service\n`);
  const path = join(dir, 'xen-sshm.service');
  t.is(statSync(path).mode & 0o777, 0o644);
  const printed = (await xs(['install-units', '--print', '--dir', dir])).stdout;
  t.is(`# ${path}\n${readFileSync(path, 'utf8')}`, printed);
  const v = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  t.is(v.error, undefined, 'systemd-analyze runs (Debian package systemd)');
  t.is(v.status, 0, v.stderr);
  t.is(v.stderr, '', 'no warning either');
});

test('install-units refuses the sandbox (usage) and names a folder it cannot write', async (t) => {
  const s = await xs(['install-units', '--sandbox']);
  t.deepEqual([s.code, s.stderr], [2, 'xen-sshm: install-units is for a real dom0: the sandbox needs no service\n']);
  const missing = await xs(['install-units', '--dir', '/nonexistent/units', '--json']);
  t.is(missing.code, 1);
  const e = (JSON.parse(missing.stdout) as { error: { kind: string; code: string; path: string } }).error;
  t.deepEqual([e.kind, e.code, e.path], ['cli', 'ENOENT', '/nonexistent/units/xen-sshm.service']);
});
