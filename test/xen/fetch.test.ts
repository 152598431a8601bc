import test from 'ava';
import { closure, kernelPackage, Manifest, parseAptShow, parseDepends } from './fetch';

// Two paragraphs in the shape `apt-cache show --no-all-versions` prints them.
const SHOW = `Package: libnode108
Version: 18.20.4+dfsg-1~deb12u3
Architecture: arm64
Section: libs
Depends: libbrotli1 (>= 0.6.0), libc-ares2 (>= 1.11.0~rc1), libc6 (>= 2.34),
 zlib1g (>= 1:1.2.0), node-acorn (>= 8.8.1+ds+~cs25.17.7-2~), nodejs:any | nodejs (<< 12)
Filename: pool/updates/main/n/nodejs/libnode108_18.20.4+dfsg-1~deb12u3_arm64.deb
Description: evented I/O for V8 javascript (library)

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: arm64
Section: shells
Pre-Depends: libc6 [arm64]
Filename: pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb
`;

test('apt-cache show paragraphs: fields, continuation lines, the .deb name apt-get download writes', (t) => {
  const [node, bb] = parseAptShow(SHOW);
  t.is(node.name, 'libnode108');
  t.is(node.section, 'libs');
  t.deepEqual(node.depends, ['libbrotli1', 'libc-ares2', 'libc6', 'zlib1g', 'node-acorn', 'nodejs']);
  t.is(node.deb, 'libnode108_18.20.4+dfsg-1~deb12u3_arm64.deb');
  t.is(bb.deb, 'busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb', 'the epoch is written %3a');
  t.deepEqual(bb.depends, ['libc6']);
});

test('dependency groups keep their first alternative, without versions or qualifiers', (t) => {
  t.deepEqual(parseDepends('a (>= 1), b:any | c, d:arm64 [arm64], '), ['a', 'b', 'd']);
  t.deepEqual(parseDepends(''), []);
});

const pkg = (name: string, depends: string[] = []) =>
  ({ name, version: '1', arch: 'arm64', section: 'libs', deb: `${name}_1_arm64.deb`, depends });

test('closure follows dependencies the manifest holds; the kernel comes from the metapackage', (t) => {
  const m: Manifest = {
    seeds: [], resolvedAt: '',
    packages: [
      pkg('xenstore-utils', ['libc6', 'libxenstore4']), pkg('libxenstore4', ['libc6', 'libxentoolcore1']),
      pkg('libxentoolcore1', ['libc6']), pkg('libc6', ['libgcc-s1']), pkg('libgcc-s1', ['libc6']),
      pkg('linux-image-arm64', ['linux-image-6.1.0-99-arm64']), pkg('linux-image-6.1.0-99-arm64', ['kmod']),
    ],
  };
  t.deepEqual(closure(m, ['xenstore-utils']), ['libc6', 'libgcc-s1', 'libxenstore4', 'libxentoolcore1', 'xenstore-utils']);
  t.is(kernelPackage(m).name, 'linux-image-6.1.0-99-arm64');
});
