/**
 * The simulator and the sandbox with no native addon at all (issue 11): in processes where
 * loading any .node file fails (block-native.ts), the sim still populates, maps and aliases
 * frames in one process and across processes through its folder, and `xen-sshm demo` runs whole,
 * while the privcmd backend says it has no addon.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const BLOCK = join(ROOT, 'dist', 'test', 'hypervisor', 'block-native.js');
const LIB = join(ROOT, 'dist', 'lib', 'hypervisor');
const CLI = join(ROOT, 'dist', 'lib', 'cli', 'xen-sshm.js');

function node(args: string[], opts: { cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    // NODE_OPTIONS reaches every node process the command starts (the sandbox's xenstored too).
    const env = { ...process.env, NODE_OPTIONS: `--require ${BLOCK}`, XEN_SSHM_SANDBOX_IDLE_MS: '60000' };
    const child = spawn(process.execPath, args, { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

test('without any addon the sim populates, maps and aliases frames, in a process and through its folder', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-nonative-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = `
    const { SimHypervisor, gfnRange, openPrivcmd } = require(${JSON.stringify(LIB)});
    (async () => {
      const out = {};
      try { require(${JSON.stringify(join(ROOT, 'build', 'Release', 'xen_sshm_shim.node'))}); out.addon = 'loaded'; } catch (e) { out.addon = e.code; }
      try { openPrivcmd(); out.privcmd = 'opened'; } catch (e) { out.privcmd = e.code + ' ' + e.call; }
      // A device file that exists (as on a dom0): then the missing addon is what it names.
      try { openPrivcmd({ privcmdPath: '/dev/null' }); out.privcmdAddon = 'opened'; } catch (e) { out.privcmdAddon = e.call; }
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      const o = await hv.createDomain({ maxPages: 4096 });
      const b = await hv.createDomain({ maxPages: 64 });
      await hv.populatePhysmap(o, gfnRange(0x40000, 1024));
      await hv.setTarget(b, o);
      await hv.addToPhysmapForeign({ borrower: b, owner: o, ownerGfns: gfnRange(0x40000, 1024), borrowerGfns: gfnRange(0x80000, 1024) });
      const ov = await hv.guestMap(o, gfnRange(0x40000, 1024));
      ov.buffer.write('written by the owner', 1000 * 4096);
      const bv = await hv.guestMap(b, gfnRange(0x80000 + 1000, 2));
      out.inProcess = bv.buffer.toString('latin1', 0, 20);
      bv.buffer.write('and the borrower', 4096);
      out.backInOwner = ov.buffer.toString('latin1', 1001 * 4096, 1001 * 4096 + 16);
      bv.unmap();
      ov.unmap();
      out.extents = hv.lastPopulate;
      await hv.close();
      console.log(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const first = await node(['-e', script]);
  t.is(first.code, 0, first.stderr);
  t.deepEqual(JSON.parse(first.stdout), {
    addon: 'ERR_DLOPEN_FAILED',
    privcmd: 'ENOENT open',
    privcmdAddon: 'dlopen',
    inProcess: 'written by the owner',
    backInOwner: 'and the borrower',
    extents: { largeExtents: 2, smallExtents: 0, largeRefused: 0, hypercalls: 1 },
  });
  // Another process without the addon reads the borrower's view from the folder.
  const second = await node(['-e', `
    const { SimHypervisor, gfnRange } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      const v = await hv.guestMap(2, gfnRange(0x80000 + 1000, 2));
      console.log(v.buffer.toString('latin1', 0, 20) + '|' + v.buffer.toString('latin1', 4096, 4096 + 16));
      v.unmap();
      await hv.close();
    })().catch((e) => { console.error(e); process.exit(1); });`]);
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout.trim(), 'written by the owner|and the borrower');
});

test('xen-sshm demo runs whole with no addon: the sandbox needs no native build', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'xen-sshm-nonative-demo-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const r = await node([CLI, 'demo'], { cwd });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /vm2 reads ID1 at its guest address 0x50000000: +"Hello vm2, this is vm1/);
  // peek: dom0's view of the owner's frames shows the same bytes.
  t.regex(r.stdout, /00000000 {2}48 65 6c 6c 6f 20 76 6d {2}32 2c 20 74 68 69 73 20 {2}\|Hello vm2, this /);
});
