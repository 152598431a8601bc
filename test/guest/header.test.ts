/**
 * guest/xen-sshm-doorbell.h, the bare-metal and RTOS header: every structure, number and
 * constant it restates checked against Xen's public headers (Debian libxen-dev) with static
 * asserts, by gcc for x86_64 and aarch64-linux-gnu-gcc for arm64; compiled freestanding and
 * pedantic, warning-free, in each of its hypercall variants; the machine code holds the
 * documented instructions (objdump); and the wrappers, run on this machine with the guest's
 * own hypercall hook, issue exactly the hypercalls the design says.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { xenIncludeDir } from '../hypervisor/c-check';
import { GUEST_DIR } from './helpers';

const COMPILERS = [['x86_64', 'gcc', 'objdump'], ['arm64', 'aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-objdump']] as const;

/** Our struct, Xen's struct, and the fields (dotted for union members) that must coincide. */
const STRUCTS: ReadonlyArray<[ours: string, xen: string, fields: string[]]> = [
  ['xen_sshm_evtchn_bind_interdomain', 'evtchn_bind_interdomain', ['remote_dom', 'remote_port', 'local_port']],
  ['xen_sshm_evtchn_send', 'evtchn_send', ['port']],
  ['xen_sshm_evtchn_unmask', 'evtchn_unmask', ['port']],
  ['xen_sshm_evtchn_close', 'evtchn_close', ['port']],
  ['xen_sshm_evtchn_alloc_unbound', 'evtchn_alloc_unbound', ['dom', 'remote_dom', 'port']],
  ['xen_sshm_evtchn_status', 'evtchn_status', ['dom', 'port', 'status', 'vcpu', 'u', 'u.unbound.dom', 'u.interdomain.dom', 'u.interdomain.port', 'u.pirq', 'u.virq']],
];

/** Our constant and Xen's. */
const CONSTANTS: ReadonlyArray<[ours: string, xen: string]> = [
  ['XEN_SSHM_HYPERVISOR_event_channel_op', '__HYPERVISOR_event_channel_op'],
  ...['bind_interdomain', 'close', 'send', 'status', 'alloc_unbound', 'unmask'].map((c) => [`XEN_SSHM_EVTCHNOP_${c}`, `EVTCHNOP_${c}`] as [string, string]),
  ...['closed', 'unbound', 'interdomain', 'pirq', 'virq', 'ipi'].map((c) => [`XEN_SSHM_EVTCHNSTAT_${c}`, `EVTCHNSTAT_${c}`] as [string, string]),
  ['XEN_SSHM_DOMID_SELF', 'DOMID_SELF'],
  ['sizeof(xen_sshm_domid_t)', 'sizeof(domid_t)'],
  ['sizeof(xen_sshm_port_t)', 'sizeof(evtchn_port_t)'],
];

export function layoutAsserts(structs = STRUCTS, constants = CONSTANTS): string[] {
  const out: string[] = [];
  const same = (a: string, b: string): void => {
    out.push(`_Static_assert((${a}) == (${b}), ${JSON.stringify(`${a} == ${b}`)});`);
  };
  for (const [ours, xen, fields] of structs) {
    same(`sizeof(struct ${ours})`, `sizeof(struct ${xen})`);
    same(`_Alignof(struct ${ours})`, `_Alignof(struct ${xen})`);
    for (const f of fields) {
      same(`offsetof(struct ${ours}, ${f})`, `offsetof(struct ${xen}, ${f})`);
      same(`sizeof(((struct ${ours} *)0)->${f})`, `sizeof(((struct ${xen} *)0)->${f})`);
    }
  }
  for (const [ours, xen] of constants) same(ours, xen);
  return out;
}

const PRELUDE = [
  '#define __XEN_TOOLS__ 1',
  '#include <stddef.h>',
  '#include <stdint.h>',
  '#include <xen/xen.h>',
  '#include <xen/event_channel.h>',
  '#include "xen-sshm-doorbell.h"',
];

interface Compiled {
  ok: boolean;
  stderr: string;
  dir: string;
}

function compileC(compiler: string, source: string, args: string[]): Compiled {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-header-'));
  const file = path.join(dir, 'check.c');
  fs.writeFileSync(file, source);
  const r = spawnSync(compiler, [...args, '-I', GUEST_DIR, file], { encoding: 'utf8', cwd: dir });
  if (r.error) throw new Error(`${compiler}: ${r.error.message} (install it: see .ci/run)`);
  return { ok: r.status === 0, stderr: r.stderr, dir };
}

const withXen = (dir: string): string[] => ['-std=gnu11', '-Wall', '-Wextra', '-I', xenIncludeDir(dir)];

for (const [arch, compiler, objdump] of COMPILERS) {
  test(`${arch}: every structure, field and number of the header is Xen's (${compiler}, static asserts)`, (t) => {
    const asserts = layoutAsserts();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-inc-'));
    const r = compileC(compiler, [...PRELUDE, ...asserts, 'int xen_sshm_guest_header_ok;', ''].join('\n'), [...withXen(tmp), '-fsyntax-only', '-Werror']);
    t.true(r.ok, r.stderr);
    t.is(r.stderr, '');
    t.true(asserts.length >= 60, `${asserts.length} assertions`);
    fs.rmSync(r.dir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test(`${arch}: a wrong layout or number is caught (test of the test)`, (t) => {
    // Xen's bind_interdomain against our send, and alloc_unbound's fields swapped.
    const bad = layoutAsserts(
      [['xen_sshm_evtchn_send', 'evtchn_bind_interdomain', ['remote_dom']], ['xen_sshm_evtchn_alloc_unbound', 'evtchn_alloc_unbound', ['dom']]],
      [['XEN_SSHM_EVTCHNOP_send', 'EVTCHNOP_unmask']],
    ).map((l) => l.replace('offsetof(struct xen_sshm_evtchn_alloc_unbound, dom)', 'offsetof(struct xen_sshm_evtchn_alloc_unbound, remote_dom)'));
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-guest-inc-'));
    const r = compileC(compiler, [...PRELUDE, ...bad, ''].join('\n'), [...withXen(tmp), '-fsyntax-only']);
    t.false(r.ok);
    t.regex(r.stderr, /sizeof\(struct xen_sshm_evtchn_send\) == sizeof\(struct evtchn_bind_interdomain\)/);
    t.regex(r.stderr, /XEN_SSHM_EVTCHNOP_send == EVTCHNOP_unmask/);
    t.regex(r.stderr, /offsetof\(struct xen_sshm_evtchn_alloc_unbound, remote_dom\)/);
    fs.rmSync(r.dir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const variants = arch === 'x86_64'
    ? [['vmcall/vmmcall', []], ['hypercall page', ['-DXEN_SSHM_HYPERCALL_PAGE=hypercall_page']]] as const
    : [['hvc', []]] as const;
  for (const [variant, defs] of variants) {
    test(`${arch} (${variant}): a freestanding guest compiles warning-free, pedantic C99, and calls Xen as documented`, (t) => {
      const guest = [
        '#include "xen-sshm-doorbell.h"',
        ...(defs.length ? ['char hypercall_page[4096];'] : []),
        'int ring_borrower(void) {',
        '  struct xen_sshm_region r = XEN_SSHM_BORROWER("ID1", 0x50000000, 0x100000, 0, 1, 5);',
        '  int rc = xen_sshm_doorbell_bind(&r);',
        '  return rc ? rc : xen_sshm_doorbell_ring(&r);',
        '}',
        'int ring_owner(void) {',
        '  struct xen_sshm_region r = XEN_SSHM_OWNER("ID1", 0x50000000, 0x100000, 2, 7);',
        '  int rc = xen_sshm_doorbell_bind(&r);',
        '  return rc ? rc : xen_sshm_doorbell_ring(&r);',
        '}',
        '',
      ].join('\n');
      const r = compileC(compiler, guest, ['-std=c99', '-pedantic', '-Wall', '-Wextra', '-Werror', '-ffreestanding', '-O2', '-c', '-o', 'guest.o', ...defs]);
      t.true(r.ok, r.stderr);
      t.is(r.stderr, '');
      const dis = spawnSync(objdump, ['-d', path.join(r.dir, 'guest.o')], { encoding: 'utf8' });
      t.is(dis.status, 0, dis.stderr);
      if (arch === 'arm64') {
        t.regex(dis.stdout, /\bhvc\s+#0xea1\b/);
        t.regex(dis.stdout, /\bmov\s+x16, #0x20\b/, 'the hypercall number (32, event_channel_op) in x16');
      } else if (defs.length) {
        t.regex(dis.stdout, /\bcall\s+\*%r/, 'an indirect call into the hypercall page');
        t.notRegex(dis.stdout, /\bvmm?call\b/);
      } else {
        t.regex(dis.stdout, /\bvmcall\b/);
        t.regex(dis.stdout, /\bvmmcall\b/);
        t.regex(dis.stdout, /\bcpuid\b/, 'the vendor looked up from CPUID leaf 0');
        t.regex(dis.stdout, /mov\s+\$0x20,%eax/, 'the hypercall number (32, event_channel_op) in rax');
      }
      fs.rmSync(r.dir, { recursive: true, force: true });
    });
  }
}

test('the header refuses other architectures by name', (t) => {
  // The preprocessor alone, with neither architecture macro: the #error must fire.
  const r = compileC('gcc', '#include "xen-sshm-doorbell.h"\n', ['-E', '-ffreestanding', '-U__x86_64__', '-U__aarch64__']);
  t.false(r.ok);
  t.regex(r.stderr, /hypercalls for arm64 \(__aarch64__\) and x86_64 \(__x86_64__\) only/);
  fs.rmSync(r.dir, { recursive: true, force: true });
});

/**
 * The wrappers with the guest's own hypercall (XEN_SSHM_HYPERCALL2), run here: each call's
 * number, command and argument bytes are printed, and a scripted result returned.
 */
const MOCK = `
#include <stdio.h>
#include <string.h>
static long results[8]; static int calls;
static long mock(unsigned long op, unsigned long cmd, unsigned long arg) {
  const unsigned char *p = (const unsigned char *)arg;
  size_t n = cmd == 0 ? 12 : 4;
  printf("op %lu cmd %lu arg", op, cmd);
  for (size_t i = 0; i < n; i++) printf(" %02x", p[i]);
  printf("\\n");
  if (cmd == 0 && results[calls] == 0) { unsigned v = 77; memcpy((unsigned char *)arg + 8, &v, 4); }
  return results[calls++];
}
#define XEN_SSHM_HYPERCALL2(op, a1, a2) mock((op), (a1), (a2))
#include "xen-sshm-doorbell.h"
static void run(const char *what, struct xen_sshm_region r, long r0, long r1) {
  calls = 0; results[0] = r0; results[1] = r1; results[2] = 0;
  printf("%s\\n", what);
  int rc = xen_sshm_doorbell_ring(&r);
  printf("ring before bind %d\\n", rc);
  rc = xen_sshm_doorbell_bind(&r);
  printf("bind %d local %u\\n", rc, r.local_port);
  if (rc == 0) printf("ring %d\\n", xen_sshm_doorbell_ring(&r));
}
int main(void) {
  struct xen_sshm_region b = XEN_SSHM_BORROWER("ID1", 0x50000000, 0x100000, 0, 0x102, 0x0a0b0c0d);
  struct xen_sshm_region o = XEN_SSHM_OWNER("ID1", 0x50000000, 0x100000, 2, 9);
  struct xen_sshm_region none = XEN_SSHM_BORROWER("ID1", 0x50000000, 0x100000, 0, 1, 0);
  struct xen_sshm_region odd = o; odd.role = 3;
  run("borrower", b, 0, 0);
  run("owner", o, 0, 0);
  run("refused", b, -22, 0);
  run("no doorbell", none, 0, 0);
  run("no role", odd, 0, 0);
  return 0;
}
`;

test('x86_64: the wrappers issue bind_interdomain, unmask and send with Xen\'s argument bytes (guest hypercall hook, run here)', (t) => {
  const r = compileC('gcc', MOCK, ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O1', '-o', 'mock']);
  t.true(r.ok, r.stderr);
  const run = spawnSync(path.join(r.dir, 'mock'), { encoding: 'utf8' });
  t.is(run.status, 0, run.stderr);
  t.is(run.stdout, [
    'borrower',
    'ring before bind -22',
    // bind_interdomain {remote_dom 0x102, pad, remote_port 0x0a0b0c0d, local_port 0}
    'op 32 cmd 0 arg 02 01 00 00 0d 0c 0b 0a 00 00 00 00',
    'op 32 cmd 9 arg 4d 00 00 00', // unmask the local port Xen returned (77)
    'bind 0 local 77',
    'op 32 cmd 4 arg 4d 00 00 00', // send on it
    'ring 0',
    'owner',
    'ring before bind -22',
    'op 32 cmd 9 arg 09 00 00 00', // the owner unmasks its own port: no bind
    'bind 0 local 9',
    'op 32 cmd 4 arg 09 00 00 00',
    'ring 0',
    'refused',
    'ring before bind -22',
    'op 32 cmd 0 arg 02 01 00 00 0d 0c 0b 0a 00 00 00 00',
    'bind -22 local 0', // Xen's error, nothing unmasked
    'no doorbell',
    'ring before bind -22',
    'bind -22 local 0',
    'no role',
    'ring before bind -22',
    'bind -22 local 0',
    '',
  ].join('\n'));
  fs.rmSync(r.dir, { recursive: true, force: true });
});
