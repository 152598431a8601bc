import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKS, CheckSpec, checksListText, INJECTED_FAILURE, optInReason } from './checks';
import { ConsoleLine, excerpt, judge, parseConsole } from './results';

const REPO = path.resolve(__dirname, '../../..');

const spec = (name: string, extra: Partial<CheckSpec> = {}): CheckSpec =>
  ({ name, script: `checks/${name}.sh`, expect: 'PASS', limit: 10, what: name, ...extra });

/** Console text as QEMU prints it: Xen, kernel and /init lines mixed, one second apart. */
const consoleOf = (text: string): ConsoleLine[] => text.split('\n').map((l, i) => ({ t: i, text: l }));

const GOOD = `(XEN) Xen version 4.17.7 (Debian 4.17.7) (pkg-xen-devel@lists.alioth.debian.org) (gcc) debug=n
(XEN) Hardware Dom0 loading
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x411fd070]
XENTIME dom0-init 3.48
XENREADY
XENTIME check:alpha 0.40
XENCHECK alpha PASS Xen 4.17.7 answers
(XEN) d1v0: vGICR: SGI: unhandled word write 0x000000ffffffff to ICACTIVER0
XENLOG beta | probe1 reported 'ready probe1 1', expected 'ready probe2 2'
XENCHECK beta FAIL probe1 reported 'ready probe1 1', expected 'ready probe2 2'
[   12.345678] xen:balloon: something XENCHECK gamma PASS interleaved after a kernel message
XENTIME domu-create:probe1 2.46
XENDONE
[   20.000000] reboot: Power down`;

const goodChecks = [
  spec('alpha'),
  spec('beta', { expect: 'FAIL', broken: true, failsWith: "^probe1 reported 'ready probe1 \\d+', expected 'ready probe2 \\d+'$" }),
  spec('gamma'),
];

test('a complete console parses into results, milestones and figures', (t) => {
  const p = parseConsole(consoleOf(GOOD));
  t.is(p.checks.get('alpha')?.status, 'PASS');
  t.is(p.checks.get('alpha')?.detail, 'Xen 4.17.7 answers');
  t.is(p.checks.get('beta')?.status, 'FAIL');
  t.is(p.checks.get('gamma')?.detail, 'interleaved after a kernel message', 'a marker after another writer\'s text');
  t.deepEqual(p.logs.get('beta'), ["probe1 reported 'ready probe1 1', expected 'ready probe2 2'"]);
  t.is(p.guestTimes.get('domu-create:probe1'), 2.46);
  t.is(p.milestones.xenBanner, 0);
  t.is(p.milestones.dom0Kernel, 2);
  t.is(p.milestones.dom0Init, 3);
  t.is(p.milestones.dom0Ready, 4);
  t.true(p.done);
  t.deepEqual(p.problems, []);
});

test('a run is ok when every check reports what it must, broken twins included', (t) => {
  const j = judge(goodChecks, parseConsole(consoleOf(GOOD)), { code: 0, timedOut: false });
  t.true(j.ok);
  t.is(j.passed, 3);
  t.is(j.failed, 0);
  t.regex(j.verdicts[1].detail, /^failed as it must/);
});

test('a failed check fails the run and its output is in the excerpt', (t) => {
  const text = GOOD.replace('XENCHECK alpha PASS Xen 4.17.7 answers', 'XENLOG alpha | xl info failed\nXENCHECK alpha FAIL xl info failed');
  const lines = consoleOf(text);
  const p = parseConsole(lines);
  const j = judge(goodChecks, p, { code: 0, timedOut: false });
  t.false(j.ok);
  t.is(j.failed, 1);
  t.is(j.verdicts[0].got, 'FAIL');
  const ex = excerpt(lines, p, j);
  t.true(ex.includes('xl info failed'));
  t.false(ex.some((l) => l.startsWith('--- last')), 'no console tail when the check explains itself');
});

test('a broken twin that passes, or fails for another reason, fails the run', (t) => {
  const passes = GOOD.replace("XENCHECK beta FAIL probe1 reported 'ready probe1 1', expected 'ready probe2 2'", 'XENCHECK beta PASS both fine');
  const j1 = judge(goodChecks, parseConsole(consoleOf(passes)), { code: 0, timedOut: false });
  t.false(j1.ok);
  t.regex(j1.verdicts[1].detail, /PASSED but must fail/);
  const other = GOOD.replace("XENCHECK beta FAIL probe1 reported 'ready probe1 1', expected 'ready probe2 2'", 'XENCHECK beta FAIL timed out after 60s');
  const j2 = judge(goodChecks, parseConsole(consoleOf(other)), { code: 0, timedOut: false });
  t.false(j2.ok);
  t.regex(j2.verdicts[1].detail, /not for the planted fault/);
});

test('a missing check, a truncated run and a timeout fail with the console tail', (t) => {
  const cut = GOOD.split('\n').filter((l) => !l.includes('gamma') && !l.includes('XENDONE')).join('\n');
  const lines = consoleOf(cut);
  const p = parseConsole(lines);
  const j = judge(goodChecks, p, { code: 124, timedOut: true });
  t.false(j.ok);
  t.is(j.verdicts[2].got, 'MISSING');
  t.true(j.runProblems.some((r) => r.startsWith('timed out')));
  t.true(j.runProblems.some((r) => r.includes('XENDONE')));
  const ex = excerpt(lines, p, j, 5);
  t.true(ex.some((l) => l.startsWith('--- last 5 console lines')));
  t.true(ex[ex.length - 1].includes('reboot: Power down'));
});

test('panics, boot problems, unexpected checks and a bad exit code are run problems', (t) => {
  const text = GOOD
    .replace('XENREADY', 'XENBOOT xenstored does not answer\nXENLOG beta | [ 1.0] Kernel panic - not syncing: in a domU, quoted\nXENREADY')
    .replace('XENDONE', 'XENCHECK stale PASS from an old image\nXENDONE\n[   19.0] Kernel panic - not syncing: Attempted to kill init!');
  const j = judge(goodChecks, parseConsole(consoleOf(text)), { code: 1, timedOut: false });
  t.false(j.ok);
  t.is(j.failed, 0, 'every listed check itself was fine');
  t.true(j.runProblems.includes('xenstored does not answer'));
  t.deepEqual(j.runProblems.filter((r) => r.includes('Kernel panic')), ['[   19.0] Kernel panic - not syncing: Attempted to kill init!'],
    'dom0\'s panic counts; a domU panic quoted by a check does not');
  t.true(j.runProblems.includes('unexpected check stale reported'));
  t.true(j.runProblems.includes('QEMU exited with 1'));
});

test('the check list: unique names, scripts that exist, list file the guest reads', (t) => {
  const all = [...CHECKS, INJECTED_FAILURE];
  t.is(new Set(all.map((c) => c.name)).size, all.length);
  for (const c of all) {
    t.regex(c.name, /^[a-z0-9][a-z0-9-]*$/);
    t.true(c.script.startsWith('checks/') && c.script.endsWith('.sh'), `${c.name}: shell scripts under checks/`);
    t.true(fs.existsSync(path.join(REPO, 'test/xen/guest', c.script)), `${c.name}: ${c.script} exists`);
    if (c.expect === 'FAIL') t.truthy(c.failsWith, `${c.name}: a must-fail check names the failure it plants`);
  }
  const lines = checksListText(CHECKS).trimEnd().split('\n');
  t.is(lines.length, CHECKS.length);
  t.deepEqual(lines[0].split('\t'), [CHECKS[0].name, CHECKS[0].script, 'PASS', String(CHECKS[0].limit), '0']);
  // The node programs the shell checks start are compiled by the same tsc run as this test.
  for (const js of ['xenstore-client.js', 'shim.js']) t.true(fs.existsSync(path.join(__dirname, 'guest', js)), js);
  t.true(fs.existsSync(path.join(REPO, 'dist/test/hypervisor/run-contract.js')), 'the contract runner is compiled');
});

test('opt-in checks: for every release, or only for the releases a record names', (t) => {
  t.is(optInReason(spec('a'), '4.17'), undefined);
  t.is(optInReason(spec('b', { optIn: 'not yet' }), '4.20'), 'not yet');
  const c = spec('c', { optIn: { '4.20': 'too slow there' } });
  t.is(optInReason(c, '4.20'), 'too slow there');
  t.is(optInReason(c, '4.17'), undefined);
  // Every reason is a sentence to print, never empty.
  for (const x of CHECKS) for (const r of ['4.17', '4.20'] as const) {
    const why = optInReason(x, r);
    if (why !== undefined) t.true(why.length > 20, `${x.name} on ${r}: ${why}`);
  }
});
