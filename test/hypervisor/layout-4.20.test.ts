/**
 * Issue 14 point 3, the header part: the hypervisor layer's tables (every struct layout it reads or
 * writes, every ABI number, and the release table's XEN_DOMCTL_INTERFACE_VERSION) checked by the C
 * compiler against Xen 4.20's public headers, Debian 13's libxen-dev (the harness's private root:
 * test/harness/releases.ts fetches it), for x86_64 and arm64: the same checks layout.test.ts makes
 * against the machine's 4.17 headers.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as abi from '../../lib/hypervisor/abi';
import { releaseRuntime } from '../harness/releases';
import { compile, PRELUDE, staticAsserts } from './c-check';

const RELEASE = { major: 4, minor: 20 };

/** Debian 13's /usr/include/xen, unpacked by the harness (prepared on first use). */
function xenInclude420(): string {
  const rt = releaseRuntime('4.20');
  // binDir is ROOT/usr/lib/xen-4.20/bin.
  return path.resolve(rt.binDir, '../../../include/xen');
}

test('Debian 13\'s libxen-dev is Xen 4.20: domctl.h says XEN_DOMCTL_INTERFACE_VERSION 0x17, as the release table does', (t) => {
  const header = fs.readFileSync(path.join(xenInclude420(), 'domctl.h'), 'utf8');
  const m = /#define XEN_DOMCTL_INTERFACE_VERSION\s+(0x[0-9a-fA-F]+)/.exec(header);
  t.truthy(m, 'domctl.h defines XEN_DOMCTL_INTERFACE_VERSION');
  t.is(Number(m![1]), 0x17);
  t.is(abi.DOMCTL_INTERFACE_VERSIONS['4.20'], Number(m![1]));
  // The 4.17 headers on this machine say 0x15: the interface moved, and the table follows it.
  t.not(abi.DOMCTL_INTERFACE_VERSIONS['4.20'], abi.DOMCTL_INTERFACE_VERSIONS['4.17']);
});

for (const [arch, compiler] of [['x86_64', 'gcc'], ['arm64', 'aarch64-linux-gnu-gcc']] as const) {
  test(`${arch}: ${compiler} accepts every size, offset and constant of the tables against the 4.20 headers`, (t) => {
    const source = [...PRELUDE, ...staticAsserts(undefined, RELEASE), 'int xen_sshm_layout_ok;', ''].join('\n');
    const r = compile(compiler, source, ['-fsyntax-only'], undefined, xenInclude420());
    t.true(r.ok, `${compiler} rejected the layout checks against Xen 4.20's headers:\n${r.stderr}`);
    t.true(source.includes('_Static_assert(XEN_DOMCTL_INTERFACE_VERSION == 23'), 'the domctl version is among the checks');
    const asserts = source.split('\n').filter((l) => l.startsWith('_Static_assert')).length;
    t.true(asserts > 100, `${asserts} assertions`);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });

  test(`${arch}: against the 4.20 headers, 4.17's interface version is refused (test of the test)`, (t) => {
    const source = [...PRELUDE, ...staticAsserts(undefined, { major: 4, minor: 17 }), ''].join('\n');
    const r = compile(compiler, source, ['-fsyntax-only'], undefined, xenInclude420());
    t.false(r.ok);
    t.regex(r.stderr, /XEN_DOMCTL_INTERFACE_VERSION == 21/);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });
}
