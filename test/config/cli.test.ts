/** `xen-sshm check` end to end: plans of the valid fixtures, --json, --help, bad paths. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, runCli } from './helpers';

const cfgs = (dir: string) => ['vm1', 'vm2', 'vm3'].map((v) => `${dir}/${v}.cfg`);

for (const spelling of ['static_shm', 'static_shared_mem']) {
  test(`three-VM example (${spelling}): check prints the plan and exits 0`, (t) => {
    const r = runCli(['check', ...cfgs(`three-vm/${spelling}`)], FIXTURES);
    t.is(r.stderr, '');
    t.is(r.status, 0);
    t.is(r.stdout, readFileSync(join(FIXTURES, `three-vm/${spelling}.expected`), 'utf8'));
    t.regex(r.stdout, /ID1 +│ vm1/);
    t.regex(r.stdout, /vm2 0x50000000-0x50100000 offset 0x0/);
    t.regex(r.stdout, /vm2 -> vm1, vm3 -> vm1/);
  });

  test(`three-VM example (${spelling}): --json gives { ok, plan, errors }`, (t) => {
    const r = runCli(['check', '--json', ...cfgs(`three-vm/${spelling}`)], FIXTURES);
    t.is(r.status, 0);
    const body = JSON.parse(r.stdout);
    t.true(body.ok);
    t.deepEqual(body.errors, []);
    t.deepEqual(
      body.plan.domains.map((d: { name: string }) => d.name),
      ['vm1', 'vm2', 'vm3'],
    );
    const [id1, id2] = body.plan.regions;
    t.like(id1, { id: 'ID1', spelling, owner: { domain: 'vm1', begin: '0x50000000', end: '0x50100000', size: '0x100000' } });
    t.like(id2, { id: 'ID2', owner: { domain: 'vm1', begin: '0x50100000', end: '0x50200000', size: '0x100000' } });
    t.deepEqual(
      id1.borrowers.map((b: { domain: string; begin: string; offset: string }) => [b.domain, b.begin, b.offset]),
      [['vm2', '0x50000000', '0x0']],
    );
    t.deepEqual(
      id2.borrowers.map((b: { domain: string; begin: string; offset: string }) => [b.domain, b.begin, b.offset]),
      [['vm3', '0x50000000', '0x0']],
    );
    t.deepEqual(body.plan.setTarget, [
      { borrower: 'vm2', owner: 'vm1' },
      { borrower: 'vm3', owner: 'vm1' },
    ]);
  });
}

test('2017 documentation examples: valid once the ID2 window fits, as printed they break the window rule', (t) => {
  const ok = runCli(['check', ...['vm1', 'vm2', 'vm3', 'vm4', 'vm5'].map((v) => `doc2017/${v}.cfg`)], FIXTURES);
  t.is(ok.status, 0);
  t.is(ok.stdout, readFileSync(join(FIXTURES, 'doc2017.expected'), 'utf8'));
  t.regex(ok.stdout, /vm4 0x690000-0x780000 offset 0x10000/);
  const bad = runCli(['check', ...['vm1', 'vm2', 'vm3', 'vm4', 'vm5'].map((v) => `doc2017-verbatim/${v}.cfg`)], FIXTURES);
  t.is(bad.status, 1);
  t.is(bad.stderr, readFileSync(join(FIXTURES, 'doc2017-verbatim.expected'), 'utf8'));
});

test('a borrower checked alone has no owner; with its owner it is fine', (t) => {
  const alone = runCli(['check', 'three-vm/static_shm/vm2.cfg'], FIXTURES);
  t.is(alone.status, 1);
  t.regex(alone.stderr, /\[owner\.missing\]/);
  const both = runCli(['check', 'three-vm/static_shm/vm1.cfg', 'three-vm/static_shm/vm2.cfg'], FIXTURES);
  t.is(both.status, 0, both.stderr);
});

test('a file that cannot be read is an io error with its errno, and the others are still checked', (t) => {
  const r = runCli(['check', '--json', 'no/such.cfg', 'broken/align.cfg'], FIXTURES);
  t.is(r.status, 1);
  const body = JSON.parse(r.stdout);
  t.deepEqual(
    body.errors.map((e: { rule: string; code: string; file: string }) => [e.rule, e.code, e.file]),
    [
      ['io', 'ENOENT', 'no/such.cfg'],
      ['align', 'EINVAL', 'broken/align.cfg'],
    ],
  );
  const text = runCli(['check', 'no/such.cfg'], FIXTURES);
  t.is(text.status, 1);
  t.regex(text.stderr, /^no\/such\.cfg:0:0: error \[io\]: cannot read the config file: ENOENT open/m);
});

test('--dom0less adds the 15-character ID limit', (t) => {
  const args = ['check', 'broken/id.dom0less-length.cfg'];
  t.is(runCli(args, FIXTURES).status, 0);
  const r = runCli(['check', '--dom0less', ...args.slice(1)], FIXTURES);
  t.is(r.status, 1);
  t.regex(r.stderr, /\[id\.dom0less-length\]/);
});

test('warnings (xl corners, misspelt keys) are printed but do not fail the check', (t) => {
  const r = runCli(['check', 'grammar/strings.cfg', 'grammar/xl-example.cfg'], FIXTURES);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /strings\.cfg:6:9: warning: xl drops \\0-\\7 escapes/);
});

test('check --help teaches the syntax; the CLI lists check', (t) => {
  const r = runCli(['check', '--help']);
  t.is(r.status, 0);
  for (const s of ['static_shm = [', 'static_shared_mem = [', 'role=owner|borrower', 'BEGIN+SIZE', '--dom0less', '--json', 'docs/config.md']) {
    t.true(r.stdout.includes(s), `--help mentions ${s}`);
  }
  t.regex(runCli(['--help']).stdout, /check \[options\] <cfg\.\.\.>/);
  const none = runCli(['check']);
  t.is(none.status, 2, 'usage');
  t.regex(none.stderr, /missing required argument 'cfg'/);
});
