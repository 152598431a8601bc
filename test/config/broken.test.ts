/**
 * One broken config per rule (fixtures/config/broken/<rule>.cfg): `xen-sshm check` must print
 * exactly <rule>.expected on stderr, nothing on stdout, and exit 1; `--json` must report that
 * rule and no other. Header comments of a fixture say how to check it:
 *   # check-with: PATH     another config checked with it (before it), relative to broken/
 *   # check-flags: FLAGS   extra flags (e.g. --dom0less)
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRuleId, RULES } from '../../lib/config';
import { FIXTURES, runCli } from './helpers';

const BROKEN = join(FIXTURES, 'broken');

interface Case {
  rule: string;
  args: string[];
}

function cases(): Case[] {
  return readdirSync(BROKEN)
    .filter((f) => f.endsWith('.cfg'))
    .sort()
    .map((f) => {
      const text = readFileSync(join(BROKEN, f), 'utf8');
      const directive = (name: string) => [...text.matchAll(new RegExp(`^# ${name}: *(.*)$`, 'gm'))].map((m) => m[1].trim());
      const flags = directive('check-flags').flatMap((s) => s.split(/\s+/));
      return { rule: f.slice(0, -4), args: ['check', ...flags, ...directive('check-with'), f] };
    });
}

test('every rule except io has a broken fixture, and every fixture names a rule', (t) => {
  const have = new Set(cases().map((c) => c.rule));
  for (const c of have) t.true(isRuleId(c), `${c}.cfg names no rule`);
  const missing = Object.keys(RULES).filter((r) => r !== 'io' && !have.has(r));
  t.deepEqual(missing, []);
  t.true(have.size >= 30);
});

for (const c of cases()) {
  test(`broken/${c.rule}.cfg: check prints the expected error and exits 1`, (t) => {
    const expected = readFileSync(join(BROKEN, `${c.rule}.expected`), 'utf8');
    const r = runCli(c.args, BROKEN);
    t.is(r.status, 1);
    t.is(r.stdout, '');
    t.is(r.stderr, expected);
    t.regex(r.stderr, new RegExp(`error \\[${c.rule.replace(/\./g, '\\.')}\\]`));

    const j = runCli([...c.args.slice(0, 1), '--json', ...c.args.slice(1)], BROKEN);
    t.is(j.status, 1);
    const body = JSON.parse(j.stdout) as { ok: boolean; plan: unknown; errors: Array<{ kind: string; rule: string; code: string; file: string; line: number; column: number; hint?: string }> };
    t.false(body.ok);
    t.is(body.plan, null);
    t.true(body.errors.length >= 1);
    for (const e of body.errors) {
      t.is(e.kind, 'config');
      t.is(e.rule, c.rule);
      t.regex(e.code, /^E[A-Z]+$/);
      t.true(e.line >= 1 && e.column >= 1, `${e.file}:${e.line}:${e.column}`);
      t.truthy(e.hint, 'every error carries a hint');
    }
  });
}
