/** Entry parsing, per-entry and per-domain rules, and planning across domains, via the API. */
import test from 'ava';
import { ConfigError, parseEntryNumber, parseSharedMemEntries, parseXlConfig, planConfigs, planToJSON, ShmEntry, validateDomain, validateEntry } from '../../lib/config';

const cfg = (text: string, file = 'd.cfg') => parseXlConfig(text, { file });
const shm = (name: string, ...entries: string[]) => cfg(`name = "${name}"\nstatic_shm = [ ${entries.map((e) => JSON.stringify(e)).join(', ')} ]\n`, `${name}.cfg`);
const mem = (name: string, ...entries: string[]) => cfg(`name = "${name}"\nstatic_shared_mem = [ ${entries.map((e) => JSON.stringify(e)).join(', ')} ]\n`, `${name}.cfg`);

function one(text: string): ShmEntry {
  const r = parseSharedMemEntries(shm('vm1', text));
  if (r.errors.length) throw r.errors[0];
  return r.entries[0];
}
const rulesOf = (errors: ConfigError[]) => errors.map((e) => e.rule);
const entryRules = (text: string, opts = {}) => {
  const r = parseSharedMemEntries(shm('vm1', text));
  return [...rulesOf(r.errors), ...r.entries.flatMap((e) => rulesOf(validateEntry(e, opts)))];
};

test('numbers: decimal, 0x hex, K/M/G on sizes, 64 bits', (t) => {
  t.deepEqual(parseEntryNumber('4096', 'size', true), { ok: true, value: 4096n });
  t.deepEqual(parseEntryNumber('0X1000', 'size', true), { ok: true, value: 4096n });
  t.deepEqual(parseEntryNumber('64K', 'size', true), { ok: true, value: 65536n });
  t.deepEqual(parseEntryNumber('1m', 'size', true), { ok: true, value: 1n << 20n });
  t.deepEqual(parseEntryNumber('0x2G', 'size', true), { ok: true, value: 2n << 30n });
  t.deepEqual(parseEntryNumber('0xffffffffffffffff', 'begin', false), { ok: true, value: (1n << 64n) - 1n });
  t.like(parseEntryNumber('0x10000000000000000', 'begin', false), { ok: false, rule: 'range.overflow' });
  t.like(parseEntryNumber('16777216T', 'size', true), { ok: false, rule: 'entry.number' });
  t.like(parseEntryNumber('1G', 'begin', false), { ok: false, rule: 'entry.number', reason: 'begin "1G" has a size suffix' });
  t.like(parseEntryNumber('010', 'begin', false), { ok: false, rule: 'entry.number' });
  t.like(parseEntryNumber('-1', 'size', true), { ok: false, rule: 'entry.number', hint: 'addresses and sizes are unsigned' });
  t.like(parseEntryNumber('', 'size', true), { ok: false, rule: 'entry.number' });
});

test('static_shm entries are normalised (end/size, defaults, aliases) and keep key locations', (t) => {
  const e = one('id=ID1, begin=0x50000000, size=1M, role=owner, prot=r, cache_policy=x86_normal');
  t.like(e, { id: 'ID1', role: 'owner', begin: 0x50000000n, end: 0x50100000n, size: 0x100000n, offset: 0n, prot: 'r', cachePolicy: 'x86_normal', spelling: 'static_shm', domain: 'vm1', file: 'vm1.cfg', index: 0 });
  t.like(e.location, { line: 2, column: 16 });
  t.like(e.keys.size, { line: 2, column: 43 });
  const b = one(' id = ID2 ,begin=0x60000000,end=0x60002000, offset=4K,');
  t.like(b, { role: 'borrower', size: 0x2000n, end: 0x60002000n, offset: 0x1000n, prot: 'rw', cachePolicy: null });
  t.is(one('id=A, begin=0x1000, size=4K, role=master').role, 'owner');
  t.is(one('id=A, begin=0x1000, size=4K, role=slave').role, 'borrower');
});

test('static_shared_mem entries: BEGIN-END and BEGIN+SIZE, role automatic', (t) => {
  const r = parseSharedMemEntries(mem('vm1', '0x50000000-0x50100000 = ID1', ' 0x50100000 + 64K=ID2 '));
  t.deepEqual(r.errors, []);
  t.like(r.entries[0], { id: 'ID1', role: 'auto', begin: 0x50000000n, end: 0x50100000n, size: 0x100000n, spelling: 'static_shared_mem' });
  t.like(r.entries[1], { id: 'ID2', begin: 0x50100000n, size: 0x10000n, end: 0x50110000n });
  const bad = parseSharedMemEntries(mem('vm1', 'ID1', '0x1000 = ID2', '0x1000-0x2000 =', '0x1000-2M = X'));
  t.deepEqual(rulesOf(bad.errors), ['entry.syntax', 'entry.syntax', 'entry.syntax', 'entry.number']);
});

test('entry text problems: syntax, unknown and repeated keys, missing keys, enumerations', (t) => {
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, role=owner, , prot=r'), ['entry.syntax']);
  t.deepEqual(entryRules(''), ['entry.syntax']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, role=owner, cache-policy=ARM_normal'), ['entry.unknown-key']);
  const unknown = parseSharedMemEntries(shm('vm1', 'ID=A, begin=0x1000, size=4K')).errors;
  t.deepEqual(rulesOf(unknown), ['entry.unknown-key'], 'the misspelt id is not also reported missing');
  t.regex(unknown[0].hint ?? '', /^did you mean id\?/);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, size=8K'), ['entry.repeated-key']);
  t.deepEqual(entryRules('begin=0x1000'), ['entry.missing-key', 'entry.missing-key']);
  t.deepEqual(entryRules('id=A, begin=0x1000, end=0x2000, size=4K'), ['entry.end-and-size']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, role=boss'), ['entry.role']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, prot=w'), ['entry.prot']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, role=owner, cache_policy=normal'), ['entry.cache-policy']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, prot=rw, role=onwer'), ['entry.role']);
  const r = parseSharedMemEntries(cfg('name = "x"\nstatic_shm = "id=A"\nstatic_shared_mem = [ ["a"] ]\n'));
  t.deepEqual(rulesOf(r.errors), ['shm.not-list', 'shm.not-string']);
});

test('per-entry rules: ID, alignment, order, overflow, role-specific keys', (t) => {
  t.deepEqual(entryRules('id=A-1, begin=0x1000, size=4K, role=owner'), ['id.syntax']);
  t.deepEqual(entryRules(`id=${'x'.repeat(128)}, begin=0x1000, size=4K, role=owner`), []);
  t.deepEqual(entryRules(`id=${'x'.repeat(129)}, begin=0x1000, size=4K, role=owner`), ['id.length']);
  t.deepEqual(entryRules('id=abcdefghijklmno, begin=0x1000, size=4K, role=owner', { dom0less: true }), []);
  t.deepEqual(entryRules('id=abcdefghijklmnop, begin=0x1000, size=4K, role=owner', { dom0less: true }), ['id.dom0less-length']);
  t.deepEqual(entryRules('id=A, begin=0x1001, size=0x1001, offset=0x10'), ['align', 'align', 'align']);
  t.deepEqual(entryRules('id=A, begin=0x1000, end=0x2800, role=owner'), ['align']);
  t.deepEqual(entryRules('id=A, begin=0x2000, end=0x2000, role=owner'), ['range.order']);
  t.deepEqual(entryRules('id=A, begin=0x2000, size=0, role=owner'), ['range.order']);
  t.deepEqual(entryRules('id=A, begin=0xfffffffffffff000, size=4K, role=owner'), ['range.overflow']);
  t.deepEqual(entryRules('id=A, begin=0xffffffffffffe000, size=4K, role=owner'), []);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, offset=0xfffffffffffff000'), ['range.overflow']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, offset=0, role=owner'), ['offset.owner']);
  t.deepEqual(entryRules('id=A, begin=0x1000, size=4K, cache_policy=ARM_normal'), ['cache-policy.borrower']);
  const e = validateEntry(one('id=A, begin=0x50000800, size=4K, role=owner'))[0];
  t.like(e, { kind: 'config', rule: 'align', code: 'EINVAL', file: 'vm1.cfg', line: 2, column: 23, domain: 'vm1', entry: 'id=A, begin=0x50000800, size=4K, role=owner' });
  t.is(e.hint, 'use 0x50000000 or 0x50001000: static shared memory is mapped in 4 KiB pages');
});

test('per-domain rules: an ID once, ranges never overlap (END is exclusive)', (t) => {
  const entries = parseSharedMemEntries(shm('vm1', 'id=A, begin=0x1000, size=4K, role=owner', 'id=B, begin=0x2000, size=4K, role=owner', 'id=A, begin=0x8000, size=4K, role=owner', 'id=C, begin=0x2000, end=0x4000, role=owner')).entries;
  const errors = validateDomain(entries);
  t.deepEqual(rulesOf(errors), ['id.repeated', 'range.overlap']);
  t.like(errors[1].related, { note: 'B is at 0x2000-0x3000' });
});

test('plan: static_shm owners and borrowers, windows, prot, set_target pairs', (t) => {
  const r = planConfigs([
    shm('vm1', 'id=ID1, begin=0x50000000, size=1M, role=owner', 'id=RO, begin=0x60000000, size=64K, role=owner, prot=r'),
    shm('vm2', 'id=ID1, begin=0x70000000, size=0x1000, offset=0xff000', 'id=RO, begin=0x80000000, size=64K, prot=r'),
  ]);
  t.deepEqual(r.errors, []);
  t.deepEqual(r.plan.setTarget, [{ borrower: 'vm2', owner: 'vm1' }]);
  const json = planToJSON(r.plan) as { regions: Array<{ id: string; borrowers: Array<{ begin: string; offset: string }> }> };
  t.like(json.regions[0], { id: 'ID1', borrowers: [{ begin: '0x70000000', offset: '0xff000' }] });

  const bad = planConfigs([
    shm('vm1', 'id=ID1, begin=0x50000000, size=1M, role=owner', 'id=RO, begin=0x60000000, size=64K, role=owner, prot=r'),
    shm('vm2', 'id=ID1, begin=0x70000000, size=0x2000, offset=0xff000', 'id=RO, begin=0x80000000, size=64K'),
    shm('vm3', 'id=ID1, begin=0x50000000, size=1M, role=owner'),
    shm('vm4', 'id=NOBODY, begin=0x50000000, size=1M'),
  ]);
  t.deepEqual(rulesOf(bad.errors), ['window', 'prot.above-owner', 'owner.multiple', 'owner.missing']);
  t.like(bad.errors[0].related, { file: 'vm1.cfg', line: 2 });
});

test('plan: static_shared_mem owner is the first config listing the ID; sizes must match', (t) => {
  const r = planConfigs([mem('vm2', '0x50000000-0x50100000 = ID1'), mem('vm1', '0x40000000+1M = ID1', '0x40100000+1M = ID2'), mem('vm3', '0x50000000+1M = ID2')]);
  t.deepEqual(r.errors, []);
  t.deepEqual(
    r.plan.regions.map((x) => [x.id, x.owner.domain, x.owner.role, x.borrowers.map((b) => b.domain)]),
    [
      ['ID1', 'vm2', 'auto', ['vm1']],
      ['ID2', 'vm1', 'auto', ['vm3']],
    ],
  );
  const bad = planConfigs([mem('vm1', '0x50000000+1M = ID1'), mem('vm2', '0x50000000+2M = ID1')]);
  t.deepEqual(rulesOf(bad.errors), ['size.mismatch']);
  const mixed = planConfigs([mem('vm1', '0x50000000+1M = ID1'), shm('vm2', 'id=ID1, begin=0x50000000, size=1M')]);
  t.deepEqual(rulesOf(mixed.errors), ['id.mixed-spelling']);
});

test('plan: a domain borrowing from two owners is refused with the set_target explanation', (t) => {
  // The proposal's example applied in the order vm2, vm3, vm1: vm1 would borrow from both.
  const r = planConfigs([mem('vm2', '0x50000000+1M = ID1'), mem('vm3', '0x50000000+1M = ID2'), mem('vm1', '0x50000000+1M = ID1', '0x50100000+1M = ID2')]);
  t.deepEqual(rulesOf(r.errors), ['set-target']);
  const e = r.errors[0];
  t.is(e.file, 'vm1.cfg');
  t.regex(e.reason, /vm1 would borrow ID2 from vm3 and ID1 from vm2/);
  t.regex(e.hint ?? '', /XEN_DOMCTL_set_target/);
  t.regex(e.hint ?? '', /once per domain and never undone/);
  t.regex(e.hint ?? '', /device-model rights/);
  t.regex(e.hint ?? '', /FLASK/);
});

test('plan: domain names are required and unique; misspelt shared memory keys warn', (t) => {
  const r = planConfigs([cfg('memory = 1\n', 'a.cfg'), shm('vm1'), shm('vm1'), cfg('name = "w"\nstatic_shmem = [ "x" ]\n', 'w.cfg')]);
  t.deepEqual(rulesOf(r.errors), ['domain.name', 'domain.name-repeated']);
  t.is(r.warnings.length, 1);
  t.like(r.warnings[0], { file: 'w.cfg', line: 2, column: 1, message: 'key static_shmem is not read by xen-sshm; did you mean static_shm?' });
});
