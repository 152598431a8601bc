/**
 * The native shim on this machine, which has no Xen: it loads, its syscalls work where they do
 * not need Xen (locked buffers), its glue refuses bad arguments with TypeError, and the privcmd
 * backend fails with the documented error naming the missing device. It carries privcmd's
 * syscalls only: the simulator needs none (no-native.test.ts). Also: the arm64 cross-build
 * produces a loadable-looking addon.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HypercallError, missingPrivcmdMessage, openHypervisor, PrivcmdTransport, XenHypervisor } from '../../lib/hypervisor';
import { loadShim } from '../../lib/hypervisor/shim';

const REPO = path.resolve(__dirname, '..', '..', '..');
const shim = loadShim();
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-shim-'));

test('the addon built by cmake-js loads and exports the syscalls', (t) => {
  t.true(fs.existsSync(path.join(REPO, 'build', 'Release', 'xen_sshm_shim.node')));
  const exported = Object.keys(shim as unknown as Record<string, unknown>).sort();
  t.deepEqual(exported, ['allocBuffer', 'close', 'hypercall', 'mmapBatchV2', 'open', 'pageSize', 'restrict', 'unmap'], 'privcmd syscalls only');
  for (const f of exported) t.is(typeof (shim as unknown as Record<string, unknown>)[f], 'function', f);
  t.is(shim.pageSize(), 4096);
});

test('privcmd without /dev/xen/privcmd: the documented error names the device', (t) => {
  t.false(fs.existsSync('/dev/xen/privcmd'), 'this test runs on a machine without Xen (no /dev/xen/privcmd)');
  const e = t.throws(() => openHypervisor({ backend: 'privcmd' }), { instanceOf: HypercallError }) as HypercallError;
  t.is(e.kind, 'hypercall');
  t.is(e.code, 'ENOENT');
  t.is(e.errno, os.constants.errno.ENOENT);
  t.is(e.call, 'open');
  t.is(e.path, '/dev/xen/privcmd');
  t.is(e.message, missingPrivcmdMessage('/dev/xen/privcmd'));
  t.is(e.message, '/dev/xen/privcmd does not exist: this machine is not a Xen dom0, or Linux\'s privcmd driver (xen-privcmd, with xenfs on /proc/xen) is not loaded');
});

test('privcmd over a file that is not the device: every ioctl is ENOTTY, surfaced as HypercallError', async (t) => {
  const dir = tmp();
  const fake = path.join(dir, 'privcmd');
  fs.writeFileSync(fake, Buffer.alloc(8192));
  const transport = new PrivcmdTransport({ privcmdPath: fake, hypercallPath: path.join(dir, 'no-hypercall') });
  // IOCTL_PRIVCMD_HYPERCALL: the result is -errno, not a throw.
  t.is(transport.hypercall(17, [0, 0]), -os.constants.errno.ENOTTY);
  // The hypercall buffer falls back to mlock'd anonymous pages.
  const b = transport.allocBuffer(100);
  t.is(b.size, 4096);
  t.true(b.address > 0n && b.address % 4096n === 0n);
  b.bytes[10] = 42;
  t.is(b.view.getUint8(10), 42);
  transport.freeBuffer(b);
  t.is(b.bytes.length, 0, 'freed: the view is detached');
  const m = t.throws(() => transport.mmapBatch(1, [0x40000], new Int32Array(1)), { instanceOf: HypercallError }) as HypercallError;
  t.is(m.code, 'ENOTTY');
  t.is(m.call, 'ioctl(MMAPBATCH_V2)');
  t.is(m.domid, 1);
  const r = t.throws(() => transport.restrict(3), { instanceOf: HypercallError }) as HypercallError;
  t.is(r.code, 'ENOTTY');
  const hv = new XenHypervisor(transport);
  const v = await t.throwsAsync(hv.xenVersion(), { instanceOf: HypercallError });
  t.is(v.code, 'ENOTTY');
  t.is(v.call, 'xen_version(version)');
  // Through the mlock'd hypercall buffer to the ioctl: the errno of privcmd comes back whole.
  const p = await t.throwsAsync(hv.populatePhysmap(1, [0x40000, 0x40001]), { instanceOf: HypercallError });
  t.is(p.code, 'ENOTTY');
  t.is(p.call, 'memory_op(populate_physmap)');
  t.is(p.done, 0);
  await hv.close();
  fs.rmSync(dir, { recursive: true });
});

test('open errors carry errno, syscall and path', (t) => {
  const e = t.throws(() => shim.open('/nonexistent/xen-sshm')) as Error & { errno: number; syscall: string; path: string };
  t.is(e.errno, os.constants.errno.ENOENT);
  t.is(e.syscall, 'open');
  t.is(e.path, '/nonexistent/xen-sshm');
  t.regex(e.message, /^open \/nonexistent\/xen-sshm: No such file or directory$/);
});

test('the glue refuses bad arguments with TypeError', (t) => {
  const bad: Array<[string, () => unknown]> = [
    ['open(1)', () => (shim.open as unknown as (x: unknown) => void)(1)],
    ['hypercall with 5 slots', () => shim.hypercall(0, new BigUint64Array(5))],
    ['hypercall with a Uint32Array', () => (shim.hypercall as unknown as (f: number, c: unknown) => void)(0, new Uint32Array(6))],
    ['allocBuffer of 0 bytes', () => shim.allocBuffer(-1, 0)],
    ['mmapBatchV2 with errs too short', () => shim.mmapBatchV2(0, 1, new BigUint64Array(2), new Int32Array(1))],
    ['mmapBatchV2 with domid 70000', () => shim.mmapBatchV2(0, 70000, new BigUint64Array(1), new Int32Array(1))],
    ['restrict with a negative fd', () => shim.restrict(-1, 1)],
    ['unmap of a plain ArrayBuffer', () => shim.unmap(new ArrayBuffer(8))],
  ];
  for (const [what, f] of bad) t.throws(f, { instanceOf: TypeError }, what);
});

test('buffers: mlock\'d pages, unmapped once, then detached', (t) => {
  const m = shim.allocBuffer(-1, 3 * 4096 + 1);
  t.is(m.buffer.byteLength, 4 * 4096, 'whole pages');
  new Uint8Array(m.buffer).fill(7);
  t.is(new Uint8Array(m.buffer)[4 * 4096 - 1], 7);
  shim.unmap(m.buffer);
  t.is(m.buffer.byteLength, 0);
  t.throws(() => shim.unmap(m.buffer), { instanceOf: TypeError, message: /not a live mapping/ });
});

test('the arm64 cross-build produces an AArch64 shared object exporting the Node-API entry', (t) => {
  const dir = tmp();
  const out = path.join(dir, 'xen_sshm_shim.node');
  const r = spawnSync('bash', [path.join(REPO, 'scripts', 'cross-build-shim-arm64.sh'), out], { cwd: REPO, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const elf = fs.readFileSync(out);
  t.is(elf.toString('latin1', 1, 4), 'ELF');
  t.is(elf[4], 2, '64-bit');
  t.is(elf.readUInt16LE(16), 3, 'ET_DYN');
  t.is(elf.readUInt16LE(18), 183, 'EM_AARCH64');
  const syms = spawnSync('readelf', ['--dyn-syms', '-W', out], { encoding: 'utf8' });
  t.regex(syms.stdout, /FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+napi_register_module_v1/);
  fs.rmSync(dir, { recursive: true });
});
