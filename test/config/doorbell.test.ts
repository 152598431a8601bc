/**
 * The doorbell key and its rules (docs/doorbells.md): `doorbell=yes|no` in static_shm entries,
 * `--doorbell` for the proposal's spelling, the owner deciding, a borrower following, declining
 * or insisting (rule doorbell.owner), in the planner with configs alone and against records.
 */
import test from 'ava';
import { ConfigError, parseSharedMemEntries, parseXlConfig, planConfigs, planToJSON, type PeerRegion } from '../../lib/config';
import { runCli } from './helpers';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cfg = (text: string, file: string) => parseXlConfig(text, { file });
const shm = (name: string, ...entries: string[]) => cfg(`name = "${name}"\nstatic_shm = [ ${entries.map((e) => JSON.stringify(e)).join(', ')} ]\n`, `${name}.cfg`);
const mem = (name: string, ...entries: string[]) => cfg(`name = "${name}"\nstatic_shared_mem = [ ${entries.map((e) => JSON.stringify(e)).join(', ')} ]\n`, `${name}.cfg`);
const rulesOf = (errors: ConfigError[]) => errors.map((e) => e.rule);

const OWNER = 'id=DB, begin=0x50000000, size=64K, role=owner';
const BORROW = 'id=DB, begin=0x60000000, size=64K';

test('doorbell=yes|no is read, null when not said; other values are refused with a suggestion', (t) => {
  const r = parseSharedMemEntries(shm('vm1', `${OWNER}, doorbell=yes`, 'id=B, begin=0x1000, size=4K, doorbell=no', 'id=C, begin=0x2000, size=4K'));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.entries.map((e) => e.doorbell), [true, false, null]);
  t.like(r.entries[0].keys.doorbell, { line: 2, column: 64 });
  t.is(parseSharedMemEntries(mem('vm1', '0x1000+4K = A')).entries[0].doorbell, null);

  for (const [value, hint] of [['yse', /^did you mean yes\?/], ['No', /^did you mean no\?/], ['true', /^doorbell is yes/], ['', /^doorbell is yes/]] as const) {
    const bad = parseSharedMemEntries(shm('vm1', `${OWNER}, doorbell=${value}`));
    t.deepEqual(rulesOf(bad.errors), ['entry.doorbell'], value);
    t.regex(bad.errors[0].hint ?? '', hint);
    t.deepEqual(bad.entries, []);
  }
  const typo = parseSharedMemEntries(shm('vm1', `${OWNER}, dorbell=yes`)).errors;
  t.deepEqual(rulesOf(typo), ['entry.unknown-key']);
  t.regex(typo[0].hint ?? '', /^did you mean doorbell\?/);
  t.deepEqual(rulesOf(parseSharedMemEntries(shm('vm1', `${OWNER}, doorbell=yes, doorbell=no`)).errors), ['entry.repeated-key']);
});

test('plan: the owner decides; a borrower follows, declines, or needs one (doorbell.owner)', (t) => {
  const r = planConfigs([
    shm('vm1', `${OWNER}, doorbell=yes`),
    shm('vm2', BORROW),
    shm('vm3', `${BORROW}, doorbell=no`),
    shm('vm4', `${BORROW}, doorbell=yes`),
  ]);
  t.deepEqual(r.errors, []);
  const region = r.plan.regions[0];
  t.true(region.owner.doorbell);
  t.deepEqual(region.borrowers.map((b) => [b.domain, b.doorbell]), [['vm2', true], ['vm3', false], ['vm4', true]]);
  t.deepEqual(r.decisions.map((d) => [d.entry.domain, d.role, d.doorbell]), [['vm1', 'owner', true], ['vm2', 'borrower', true], ['vm3', 'borrower', false], ['vm4', 'borrower', true]]);
  const json = planToJSON(r.plan) as { regions: Array<{ owner: { doorbell: boolean }; borrowers: Array<{ doorbell: boolean }> }> };
  t.true(json.regions[0].owner.doorbell);
  t.deepEqual(json.regions[0].borrowers.map((b) => b.doorbell), [true, false, true]);

  // No doorbell on the owner (default, or no): followers get none; one insisting is refused.
  for (const owner of [OWNER, `${OWNER}, doorbell=no`]) {
    const none = planConfigs([shm('vm1', owner), shm('vm2', BORROW), shm('vm4', `${BORROW}, doorbell=yes`)]);
    t.deepEqual(rulesOf(none.errors), ['doorbell.owner']);
    const e = none.errors[0];
    t.like(e, { file: 'vm4.cfg', line: 2, column: 52, domain: 'vm4' });
    t.like(e.related, { file: 'vm1.cfg', line: 2 });
    t.regex(e.reason, /vm4 asks for a doorbell on DB, but its owner vm1 gives the region none/);
    t.deepEqual(none.plan.regions[0].borrowers.map((b) => [b.domain, b.doorbell]), [['vm2', false]]);
  }
});

test('plan: --doorbell means doorbell=yes for every entry that does not say (static_shared_mem)', (t) => {
  const configs = [mem('vm1', '0x50000000+1M = ID1'), mem('vm2', '0x50000000+1M = ID1')];
  t.false(planConfigs(configs).plan.regions[0].owner.doorbell);
  const r = planConfigs(configs, undefined, { doorbell: true });
  t.deepEqual(r.errors, []);
  t.true(r.plan.regions[0].owner.doorbell);
  t.true(r.plan.regions[0].borrowers[0].doorbell);
  // An entry that says doorbell=no keeps it.
  const said = planConfigs([shm('vm1', `${OWNER}, doorbell=no`), shm('vm2', BORROW)], undefined, { doorbell: true });
  t.false(said.plan.regions[0].owner.doorbell);
  t.deepEqual(rulesOf(said.errors), ['doorbell.owner'], 'the borrower, --doorbell, needs the doorbell the owner declined');
  t.regex(said.errors[0].hint ?? '', /apply the owner with --doorbell/);
});

test('plan against the records: a recorded region with or without a doorbell', (t) => {
  const region = (doorbell?: boolean): PeerRegion => ({ id: 'DB', owner: 1, begin: 0x50000000n, size: 0x10000n, prot: 'rw', cachePolicy: 'ARM_normal', spelling: 'static_shm', doorbell, mappings: [{ domid: 1, begin: 0x50000000n, end: 0x50010000n, offset: 0n, prot: 'rw' }] });
  const apply = (c: ReturnType<typeof shm>, r: PeerRegion) => planConfigs([{ config: c, domid: 2 }], { regions: [r] });
  t.deepEqual(apply(shm('vm2', BORROW), region(true)).decisions.map((d) => d.doorbell), [true]);
  t.deepEqual(apply(shm('vm2', `${BORROW}, doorbell=no`), region(true)).decisions.map((d) => d.doorbell), [false]);
  t.deepEqual(apply(shm('vm2', BORROW), region(undefined)).decisions.map((d) => d.doorbell), [false]);
  const bad = apply(shm('vm2', `${BORROW}, doorbell=yes`), region(false));
  t.deepEqual(rulesOf(bad.errors), ['doorbell.owner']);
  t.regex(bad.errors[0].reason, /its owner d1, as recorded, gives the region none/);
  t.is(bad.againstRecords.size, 1, 'an error whose other party is the records');
  t.deepEqual(bad.decisions, []);
  // The owner's own decision says what its config asks (the manager compares it with the record).
  const owner = planConfigs([{ config: shm('vm1', `${OWNER}, doorbell=yes`), domid: 1 }], { regions: [region(false)] });
  t.deepEqual(owner.errors, []);
  t.deepEqual(owner.decisions.map((d) => [d.role, d.doorbell]), [['owner', true]]);
  t.false(owner.plan.regions[0].owner.doorbell, 'the plan shows the recorded region');
});

test('check shows the doorbell in its plan and takes --doorbell', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-bell-'));
  writeFileSync(join(dir, 'vm1.cfg'), `name = "vm1"\nstatic_shm = [ "${OWNER}, doorbell=yes" ]\n`);
  writeFileSync(join(dir, 'vm2.cfg'), `name = "vm2"\nstatic_shm = [ "${BORROW}" ]\n`);
  writeFileSync(join(dir, 'vm3.cfg'), `name = "vm3"\nstatic_shm = [ "id=DB, begin=0x70000000, size=4K, doorbell=no" ]\n`);
  const r = runCli(['check', 'vm1.cfg', 'vm2.cfg', 'vm3.cfg'], dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /doorbell: a port per borrower/);
  t.regex(r.stdout, /vm2 0x60000000-0x60010000 offset 0x0 \(64 KiB, rw, doorbell\)/);
  t.regex(r.stdout, /vm3 0x70000000-0x70001000 offset 0x0 \(4 KiB, rw, no doorbell\)/);
  const j = JSON.parse(runCli(['check', '--json', 'vm1.cfg', 'vm2.cfg'], dir).stdout) as { plan: { regions: Array<{ owner: { doorbell: boolean }; borrowers: Array<{ doorbell: boolean }> }> } };
  t.true(j.plan.regions[0].owner.doorbell);
  t.true(j.plan.regions[0].borrowers[0].doorbell);

  writeFileSync(join(dir, 'p1.cfg'), 'name = "p1"\nstatic_shared_mem = [ "0x50000000+1M = ID1" ]\n');
  writeFileSync(join(dir, 'p2.cfg'), 'name = "p2"\nstatic_shared_mem = [ "0x60000000+1M = ID1" ]\n');
  t.notRegex(runCli(['check', 'p1.cfg', 'p2.cfg'], dir).stdout, /doorbell/);
  const bell = runCli(['check', '--doorbell', 'p1.cfg', 'p2.cfg'], dir);
  t.is(bell.status, 0, bell.stderr);
  t.regex(bell.stdout, /p2 0x60000000-0x60100000 offset 0x0 \(1 MiB, rw, doorbell\)/);
});
