/**
 * guest/xen-sshm-guest.c as built and as a command: scripts/build-guest.sh builds it for arm64
 * and x86_64 with warnings as errors, static; the Linux ABI it restates (the privcmd hypercall
 * ioctl, IOCTL_EVTCHN_BIND_STATIC) is checked against Xen's copies of Linux's headers; its
 * argument handling refuses every bad input with exit status 2 and one line naming it; its
 * region-ID rule is lib/vocabulary.ts's (through the generated header, which must be current).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_ID_LENGTH, SHM_ID_RE } from '../../lib/vocabulary';
import { xenIncludeDir } from '../hypervisor/c-check';
import { seededRandom } from '../helpers/prng';
import { buildGuest, elfFacts, GUEST_DIR, hostProgram, runProgram } from './helpers';
import { renderVocabularyHeader, VOCABULARY_HEADER } from './vocabulary-header';

test('scripts/build-guest.sh builds the program warning-free, static, for arm64 and x86_64, and the bare-metal example', (t) => {
  const r = buildGuest([]);
  t.is(r.status, 0, r.stderr);
  t.is(r.stderr, '', 'no compiler or linker warnings (they are errors) and no other output on stderr');
  t.deepEqual(r.stdout.trim().split('\n').map((l) => path.relative(r.dir, l)), ['arm64/xen-sshm-guest', 'x86_64/xen-sshm-guest', 'arm64/xen-sshm-baremetal.Image']);
  // An arm64 Image as libxenguest's zimage64 loader probes it: "ARM\x64" at 0x38, text_offset 0,
  // image_size the file (the stack included), first instruction a branch.
  const img = fs.readFileSync(path.join(r.dir, 'arm64', 'xen-sshm-baremetal.Image'));
  t.is(img.readUInt32LE(0x38), 0x644d5241);
  t.is(img.readBigUInt64LE(8), 0n);
  t.is(Number(img.readBigUInt64LE(16)), img.length);
  t.is(img.readUInt32LE(0) >>> 26, 0b000101, 'B imm26');
  t.true(img.length < 64 * 1024, `${img.length} bytes`);
  const arm = elfFacts(path.join(r.dir, 'arm64', 'xen-sshm-guest'));
  const x86 = elfFacts(path.join(r.dir, 'x86_64', 'xen-sshm-guest'));
  t.is(arm.machine, 183, 'EM_AARCH64');
  t.is(x86.machine, 62, 'EM_X86_64');
  for (const f of [arm, x86]) {
    t.false(f.interp, 'no program interpreter: static');
    t.false(f.dynamic, 'no dynamic section: static');
  }
  fs.rmSync(r.dir, { recursive: true, force: true });
});

test('scripts/build-guest.sh fails loudly, naming the package, when a compiler is missing', (t) => {
  const r = buildGuest(['arm64'], { ...process.env, CC_ARM64: 'no-such-aarch64-gcc' });
  t.is(r.status, 127);
  t.regex(r.stderr, /no-such-aarch64-gcc not found \(apt-get install --no-install-recommends gcc-aarch64-linux-gnu\)/);
  fs.rmSync(r.dir, { recursive: true, force: true });
});

test('scripts/build-guest.sh turns a warning into a failed build (test of the test)', (t) => {
  // A compiler wrapper that adds an unused variable to the program: -Werror must stop the build.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-cc-'));
  const wrapper = path.join(dir, 'cc');
  fs.writeFileSync(path.join(dir, 'extra.h'), 'static int unused_on_purpose;\n');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec gcc -include ${dir}/extra.h "$@"\n`, { mode: 0o755 });
  const r = buildGuest(['x86_64'], { ...process.env, CC_X86_64: wrapper });
  t.not(r.status, 0);
  t.regex(r.stderr, /unused_on_purpose/);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(r.dir, { recursive: true, force: true });
});

for (const [arch, compiler] of [['x86_64', 'gcc'], ['arm64', 'aarch64-linux-gnu-gcc']] as const) {
  test(`${arch}: the Linux ioctls the program restates are Linux's (against Xen's copies of the uapi headers)`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-abi-'));
    const src = [
      '#include <stddef.h>',
      '#define main xen_sshm_guest_main',
      `#include "${path.join(GUEST_DIR, 'xen-sshm-guest.c')}"`,
      '#undef main',
      '#include <xen/xen.h>',
      '#include <xen/sys/privcmd.h>',
      '#define SAME(a, b) _Static_assert((a) == (b), #a " == " #b)',
      'SAME(sizeof(struct xsg_privcmd_hypercall), sizeof(privcmd_hypercall_t));',
      'SAME(offsetof(struct xsg_privcmd_hypercall, op), offsetof(privcmd_hypercall_t, op));',
      'SAME(offsetof(struct xsg_privcmd_hypercall, arg), offsetof(privcmd_hypercall_t, arg));',
      'SAME(XSG_IOCTL_PRIVCMD_HYPERCALL, IOCTL_PRIVCMD_HYPERCALL);',
      // Linux 6.5's include/uapi/xen/evtchn.h: _IOC(_IOC_NONE, 'E', 7, sizeof(struct ioctl_evtchn_bind)).
      'SAME(IOCTL_EVTCHN_BIND_STATIC, 0x00044507);',
      'SAME(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x00084501);',
      'SAME(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x00044502);',
      'SAME(IOCTL_EVTCHN_NOTIFY, 0x00044504);',
      'SAME(IOCTL_EVTCHN_UNBIND, 0x00044503);',
      '',
    ].join('\n');
    const file = path.join(dir, 'abi.c');
    fs.writeFileSync(file, src);
    const r = spawnSync(compiler, ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-Wno-unused-function', '-fsyntax-only', '-I', xenIncludeDir(dir), '-I', GUEST_DIR, file], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

test('guest/xen-sshm-vocabulary.h is the rendering of lib/vocabulary.ts', (t) => {
  t.is(fs.readFileSync(VOCABULARY_HEADER, 'utf8'), renderVocabularyHeader(),
    'regenerate it: npx tsc -p . && node dist/test/guest/vocabulary-header.js --write');
});

interface ArgCase {
  args: string[];
  code: number;
  stderr: RegExp;
}

const ID = 'ID1';
const ARG_CASES: ArgCase[] = [
  { args: [], code: 2, stderr: /^xen-sshm-guest: no command: info, wait, notify or ping-pong \(see --help\)$/ },
  { args: ['frob', ID], code: 2, stderr: /^xen-sshm-guest: unknown command frob: info, wait, notify or ping-pong/ },
  { args: ['info'], code: 2, stderr: /^xen-sshm-guest: info needs a region ID/ },
  { args: ['info', ID, 'more'], code: 2, stderr: /^xen-sshm-guest: unexpected argument more/ },
  { args: ['info', 'a/b'], code: 2, stderr: /^xen-sshm-guest: a\/b is not a region ID \(1 to 128 letters, digits or _\)$/ },
  { args: ['info', 'x'.repeat(129)], code: 2, stderr: /is not a region ID/ },
  { args: ['info', ID, '--peer', '1'], code: 2, stderr: /^xen-sshm-guest: info takes no doorbell options$/ },
  { args: ['wait', ID, '--count'], code: 2, stderr: /^xen-sshm-guest: --count needs a value$/ },
  { args: ['wait', ID, '--count', '0'], code: 2, stderr: /^xen-sshm-guest: --count 0: expected a whole number from 1 to 10000000$/ },
  { args: ['wait', ID, '--count', '-1'], code: 2, stderr: /^xen-sshm-guest: --count -1: expected a whole number/ },
  { args: ['wait', ID, '--count', '12abc'], code: 2, stderr: /^xen-sshm-guest: --count 12abc: expected a whole number/ },
  { args: ['wait', ID, '--count', '99999999999'], code: 2, stderr: /^xen-sshm-guest: --count 99999999999: expected/ },
  { args: ['wait', ID, '--timeout', '0'], code: 2, stderr: /^xen-sshm-guest: --timeout 0: expected a whole number from 1 to 86400$/ },
  { args: ['notify', ID, '--owner', '1'], code: 2, stderr: /^xen-sshm-guest: --owner and --port go together$/ },
  { args: ['notify', ID, '--port', '5'], code: 2, stderr: /^xen-sshm-guest: --owner and --port go together$/ },
  { args: ['notify', ID, '--port', '0', '--owner', '1'], code: 2, stderr: /^xen-sshm-guest: --port 0: expected a whole number from 1/ },
  { args: ['notify', ID, '--peer', '32752'], code: 2, stderr: /^xen-sshm-guest: --peer 32752: expected a whole number from 0 to 32751$/ },
  { args: ['notify', ID, '--lead'], code: 2, stderr: /^xen-sshm-guest: --lead is for ping-pong$/ },
  { args: ['ping-pong', ID, '--drain'], code: 2, stderr: /^xen-sshm-guest: --drain is for wait$/ },
  { args: ['wait', ID, '--frob'], code: 2, stderr: /^xen-sshm-guest: unknown option --frob \(see --help\)$/ },
  { args: ['info', ID, '--xenstore'], code: 2, stderr: /^xen-sshm-guest: --xenstore needs a value$/ },
  { args: ['info', ID, '--xenstore', `/tmp/${'s'.repeat(120)}`], code: 2, stderr: /^xen-sshm-guest: --xenstore \/tmp\/s+: socket path longer than 107 bytes$/ },
  { args: ['info', ID, '--xenstore', '/nonexistent/xenstored.socket'], code: 1, stderr: /^xen-sshm-guest: cannot connect to xenstored at \/nonexistent\/xenstored\.socket: ENOENT$/ },
];

for (const c of ARG_CASES) {
  test(`arguments: ${JSON.stringify(c.args).slice(0, 90)} -> exit ${c.code}, one line`, async (t) => {
    const r = await runProgram(c.args);
    t.is(r.code, c.code, r.stderr);
    t.is(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    t.is(lines.length, 1, r.stderr);
    t.regex(lines[0], c.stderr);
  });
}

test('--help prints the usage on stdout and exits 0', async (t) => {
  const r = await runProgram(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^usage: xen-sshm-guest COMMAND ID \[options\]\n/);
  for (const cmd of ['info ID', 'wait ID', 'notify ID', 'ping-pong ID', '--peer DOMID', '--owner DOMID --port PORT', '--xenstore SOCKET', '--timeout SEC']) {
    t.true(r.stdout.includes(cmd), `usage mentions ${cmd}`);
  }
  t.is(r.stderr, '');
});

test('the program accepts exactly the region IDs lib/vocabulary.ts accepts (differential, 300 IDs)', async (t) => {
  const rnd = seededRandom(1616);
  const alphabet = 'abcXYZ019_-./@ :é\t*?$"\'\\';
  const ids = ['', '_', 'A', 'ID1', 'a-b', 'a.b', 'é', 'x'.repeat(MAX_ID_LENGTH), 'x'.repeat(MAX_ID_LENGTH + 1), '0', 'Z_9'];
  while (ids.length < 300) {
    const n = Math.floor(rnd() * 12) + (rnd() < 0.05 ? 120 : 0);
    let s = '';
    for (let i = 0; i < n; i++) s += rnd() < 0.8 ? 'aZ9_'[Math.floor(rnd() * 4)] : alphabet[Math.floor(rnd() * alphabet.length)];
    // A leading '-' reads as an option, which the tool rejects before the ID: keep IDs apart.
    if (!s.startsWith('-')) ids.push(s);
  }
  hostProgram();
  const mismatches: string[] = [];
  for (let i = 0; i < ids.length; i += 20) {
    const batch = ids.slice(i, i + 20);
    const results = await Promise.all(batch.map((id) => runProgram(['info', id, '--xenstore', '/nonexistent/socket'])));
    batch.forEach((id, k) => {
      const valid = SHM_ID_RE.test(id) && id.length <= MAX_ID_LENGTH && Buffer.byteLength(id) === id.length;
      // A valid ID goes on to connect (exit 1, ENOENT); an invalid one stops at the arguments.
      const accepted = results[k].code === 1 && /cannot connect/.test(results[k].stderr);
      const refused = results[k].code === 2 && /is not a region ID|info needs a region ID/.test(results[k].stderr);
      if (!(valid ? accepted : refused)) mismatches.push(`${JSON.stringify(id)}: vocabulary ${valid}, program exit ${results[k].code} ${results[k].stderr.trim()}`);
    });
  }
  t.deepEqual(mismatches, []);
});
