/**
 * Every sandbox command is all-or-nothing (issue 13): a refused or failed create, destroy,
 * apply or release leaves the simulated host and xenstore exactly as they were, and says so
 * with exit status 1 (2 for a malformed argument).
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot } from '../harness/daemons';
import { runXenSshm } from '../helpers/cli';

const ROOT = projectRoot();
const THREE = join(ROOT, 'fixtures', 'config', 'three-vm', 'static_shared_mem');

const cli = runXenSshm;

/** Everything the sandbox holds that a command could change: domains, their memory, records. */
async function snapshot(sb: Sandbox): Promise<unknown> {
  const xs = await sb.connect();
  const hv = sb.openHypervisor();
  try {
    const tree: Record<string, string> = {};
    const walk = async (p: string): Promise<void> => {
      tree[p] = (await xs.read(p)).toString('hex');
      for (const c of await xs.directory(p)) await walk(`${p === '/' ? '' : p}/${c}`);
    };
    for (const top of ['/local/domain', '/local/shared_mem']) if (await xs.exists(top)) await walk(top);
    const domains = (await hv.domains()).map((d) => JSON.stringify(d));
    return { tree, domains };
  } finally {
    await xs.close();
    await hv.close();
  }
}

test('refused commands change nothing in the sandbox', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-sbcmd-'));
  const sb = new Sandbox(join(dir, 'sb'), { idleMs: 60_000 });
  t.teardown(async () => {
    await sb.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const S = ['--sandbox-dir', sb.dir];
  t.is((await cli(['create', join(THREE, 'vm1.cfg'), '--raise-maxmem', ...S])).code, 0);
  t.is((await cli(['create', join(THREE, 'vm2.cfg'), '--allow-set-target', ...S])).code, 0);
  const before = await snapshot(sb);

  const bad = join(dir, 'bad.cfg');
  writeFileSync(bad, 'name = "bad"\nmemory = 64\nstatic_shm = ["id=ID1, begin=0x60000000, size=2M"]\n');
  const nameless = join(dir, 'nameless.cfg');
  writeFileSync(nameless, 'memory = 64\n');
  const refused: Array<[string[], number, RegExp]> = [
    // create: apply fails after the domain was made (no set_target consent): undone.
    [['create', join(THREE, 'vm3.cfg')], 1, /step apply failed: .* \(undone: release of d3, sandbox destroy 3\)/],
    // create: the borrower's window does not fit the owner's region: undone.
    [['create', bad, '--allow-set-target'], 1, /step apply failed: .*undone: release of d3, sandbox destroy 3/],
    [['create', nameless], 1, /step check failed: .*names no domain, nothing created/],
    [['create', join(THREE, 'vm2.cfg'), '--no-apply'], 1, /a domain named "vm2" exists already/],
    [['create', join(THREE, 'vm3.cfg'), '--no-apply', '--domid', '2'], 1, /d2 exists already/],
    [['create', join(THREE, 'vm3.cfg'), '--no-apply', '--maxmem', '99999999999'], 1, /more than Xen can give a domain/],
    [['create', join(THREE, 'vm3.cfg'), '--domid', '0'], 1, /0 is not a domU id/],
    [['create', join(THREE, 'vm3.cfg'), '--domid', '32752'], 2, /--domid "32752" is not a domain id/],
    [['destroy', 'vm9'], 1, /step resolve failed: no domain is named "vm9"/],
    [['destroy', '9'], 1, /step resolve failed: d9 does not exist/],
    [['destroy', '0'], 1, /dom0 cannot be destroyed; nothing released/],
    [['destroy', '99999999'], 1, /is not a domain id/],
    [['apply', join(THREE, 'vm3.cfg'), '--domain', 'vm2'], 1, /./],
    [['release', '--domain', 'vm9'], 1, /no domain is named "vm9"/],
    [['release', '--domid', 'x'], 2, /--domid "x" is not a domain id/],
  ];
  for (const [args, code, why] of refused) {
    const r = await cli([...args, ...S]);
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, why, args.join(' '));
    t.deepEqual(await snapshot(sb), before, `${args.join(' ')} changed the sandbox`);
  }
});
