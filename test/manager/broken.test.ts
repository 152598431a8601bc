/**
 * Bad input changes nothing: for each broken config of fixtures/config/broken/ (each breaks one
 * rule, alone or together with the configs its `# check-with:` lines name), `xen-sshm apply`
 * exits non-zero, says why, and the store and the simulated host are byte-for-byte what they
 * were: every node with its value and permissions, and the host's state and frames files.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readXlConfig } from '../../lib/config';
import { projectRoot } from '../harness/daemons';
import { simFingerprint, startEnv } from './helpers';

const ROOT = projectRoot();
const BROKEN = join(ROOT, 'fixtures', 'config', 'broken');
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Rules that only another domain's records can break: what apply says for each. */
const STORE_RULES: Record<string, string> = {
  'domain.name-repeated': 'domain',
  'doorbell.owner': 'mismatch',
  'id.mixed-spelling': 'mismatch',
  'owner.missing': 'no-owner',
  'owner.multiple': 'owner-exists',
  'prot.above-owner': 'mismatch',
  'set-target': 'set-target',
  'size.mismatch': 'mismatch',
  window: 'mismatch',
};

const fixtures = readdirSync(BROKEN).filter((f) => f.endsWith('.cfg')).sort();

test('there are broken fixtures to apply', (t) => {
  t.true(fixtures.length >= 30, `${fixtures.length} fixtures`);
});

for (const file of fixtures) {
  test(`apply ${file} fails and changes nothing`, async (t) => {
    const path = join(BROKEN, file);
    const text = readFileSync(path, 'utf8');
    const companions = [...text.matchAll(/^# check-with: (.+)$/gm)].map((m) => resolve(dirname(path), m[1].trim()));
    const flags = [...text.matchAll(/^# check-flags: (.+)$/gm)].flatMap((m) => m[1].trim().split(/\s+/));
    const env = await startEnv('memory', { simDir: true });
    t.teardown(() => env.close());
    // The configs it is broken against are applied first, each as its own domain.
    for (const c of companions) {
      const cfg = await readXlConfig(c);
      const name = (cfg.get('name') as { value: string }).value;
      const domid = await env.vm(name);
      await env.manager().apply({ config: cfg, domid, allowSetTarget: true });
    }
    const vm4 = await env.vm('vm4');
    const store = await env.dumpStore();
    const host = simFingerprint(env.simDir!);
    const common = ['--domid', String(vm4), '--xenstore', env.socketPath, '--sim', env.simDir!, '--allow-set-target', ...flags];
    const r = await cli(['apply', path, ...common]);
    t.is(r.code, 1, r.stdout + r.stderr);
    t.regex(r.stderr, /^xen-sshm: /);
    const j = await cli(['apply', path, ...common, '--json']);
    t.is(j.code, 1);
    const out = JSON.parse(j.stdout) as { ok: boolean; error: { kind: string; code: string; rule?: string; reason?: string; errors?: Array<{ rule: string }> } };
    t.false(out.ok);
    t.regex(out.error.code, /^E[A-Z0-9]+$/);
    // Refused for the rule the fixture breaks, not by accident.
    const rule = file.replace(/\.cfg$/, '');
    const e = out.error;
    if (STORE_RULES[rule]) t.is(e.reason, STORE_RULES[rule], JSON.stringify(e));
    else if (e.kind === 'config') t.is(e.rule, rule);
    else t.deepEqual(e.errors?.map((x) => x.rule), [rule], JSON.stringify(e));
    t.is(await env.dumpStore(), store, 'the store is byte-for-byte unchanged');
    t.is(simFingerprint(env.simDir!), host, 'the simulated host is byte-for-byte unchanged');
  });
}
