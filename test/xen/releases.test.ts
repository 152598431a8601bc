import test from 'ava';
import * as path from 'node:path';
import { privateAptOptions, sourcesList } from './apt';
import { releaseCacheDir, tierRelease, TIER_RELEASES } from './releases';
import { parseArgs, releaseEnv } from './run';

test('the private apt of Debian 13: its own lists, cache and status; both architectures; three suites', (t) => {
  const o = privateAptOptions('/c/apt', ['arm64', 'amd64']);
  const kv = new Map<string, string>();
  for (let i = 0; i < o.length; i += 2) {
    t.is(o[i], '-o');
    const [k, v] = o[i + 1].split('=');
    kv.set(k, v);
  }
  t.is(kv.get('Dir::State::Lists'), '/c/apt/lists');
  t.is(kv.get('Dir::Cache'), '/c/apt/cache');
  t.is(kv.get('Dir::State::status'), '/c/apt/status');
  t.is(kv.get('Dir::Etc::SourceList'), '/c/apt/sources.list');
  t.is(kv.get('APT::Architectures'), 'arm64,amd64');
  const list = sourcesList('trixie', ['arm64', 'amd64'], '/k.gpg').trim().split('\n');
  t.deepEqual(list.map((l) => l.split(' ').slice(-2).join(' ')), ['trixie main', 'trixie-updates main', 'trixie-security main']);
  t.true(list.every((l) => l.startsWith('deb [arch=arm64,amd64 signed-by=/k.gpg] ')));
});

test('tier releases: 4.17 keeps the cache folder itself, 4.20 a subfolder; each names its own packages', (t) => {
  t.deepEqual([...TIER_RELEASES], ['4.17', '4.20']);
  const a = tierRelease('4.17');
  const b = tierRelease('4.20');
  t.is(releaseCacheDir('/c', a), '/c');
  t.is(releaseCacheDir('/c', b), path.join('/c', 'xen-4.20'));
  t.true(a.seeds.includes('xen-hypervisor-4.17-arm64') && a.seeds.includes('xen-utils-4.17'));
  t.true(b.seeds.includes('xen-hypervisor-4.20-arm64') && b.seeds.includes('xen-utils-4.20'));
  t.is(b.nodeMajor, 20);
  t.is(releaseEnv(b), 'XEN_RELEASE=4.20\nXEN_NODE_MAJOR=20\nXEN_LIBEXEC=/usr/lib/xen-4.20\nXEN_DEBIAN="Debian 13"\nXEN_LIMIT_FACTOR=1\n');
  t.regex(releaseEnv(b, 2.5), /\nXEN_LIMIT_FACTOR=2\.5\n$/);
  t.throws(() => tierRelease('4.18'), { message: /--release 4\.18: known releases are 4\.17, 4\.20/ });
});

test('the tier command line: both releases by default, --release picks, unknown options are refused', (t) => {
  t.deepEqual(parseArgs([]).releases.map((r) => r.release), ['4.17', '4.20']);
  t.deepEqual(parseArgs(['--release', '4.20']).releases.map((r) => r.release), ['4.20']);
  t.deepEqual(parseArgs(['--release', '4.20,4.17', '--release', '4.17']).releases.map((r) => r.release), ['4.20', '4.17']);
  const o = parseArgs(['--only', 'xen-boots,node', '--timeout', '300', '-v', '--cache', '/c']);
  t.deepEqual(o.only, ['xen-boots', 'node']);
  t.is(o.timeoutSec, 300);
  t.true(o.verbose);
  t.is(o.cacheDir, '/c');
  t.throws(() => parseArgs(['--nope']), { message: /Unknown option '--nope'/ });
  t.throws(() => parseArgs(['--timeout=-3']), { message: /--timeout must be a positive number/ });
  t.throws(() => parseArgs(['--timeout', 'soon']), { message: /--timeout must be a positive number/ });
  t.throws(() => parseArgs(['--release', '5.0']), { message: /known releases are/ });
  t.is(parseArgs([]).limitFactor, 1);
  t.is(parseArgs(['--limit-factor', '3']).limitFactor, 3);
  t.throws(() => parseArgs(['--limit-factor', '0.5']), { message: /--limit-factor must be a number from 1 to 10/ });
});
