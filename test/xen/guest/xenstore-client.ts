/**
 * Runs in dom0 on real Xen (node 18): our xenstore client (dist/xenstore-wire) against the real
 * C xenstored, over one transport, through a subset of the conformance suite's operations:
 * bytes in and out, empty values, directories (one over 4096 bytes of names, so that
 * DIRECTORY_PART is used), permissions, error names, transactions with a conflict between two
 * connections, a watch with its initial firing, and a watch on @releaseDomain fired by
 * destroying a real domU.
 *
 *   node dist/test/xen/guest/xenstore-client.js --path /var/run/xenstored/socket --destroy probe2
 *   node dist/test/xen/guest/xenstore-client.js --path /dev/xen/xenbus --destroy probe1
 *
 * Prints one line per step and, last, a summary; exits 1 at the first failed assertion.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect, XenstoreClient, XenstoreError } from '../../../xenstore-wire';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`--${name} is required`);
  return v;
}

async function expectCode(p: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof XenstoreError, `${what}: a XenstoreError (got ${String(e)})`);
    assert.equal((e as XenstoreError).code, code, `${what}: ${(e as Error).message}`);
    return;
  }
  assert.fail(`${what}: expected ${code}, but it succeeded`);
}

/** --limit-factor of the run (/xen/release.env through lib.sh), as for the shell checks' waits. */
const LIMIT_FACTOR = Number(process.env.XEN_LIMIT_FACTOR) || 1;

function withTimeout<T>(p: Promise<T>, limitMs: number, what: string): Promise<T> {
  const ms = limitMs * LIMIT_FACTOR;
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); }),
  ]);
}

const xl = (...args: string[]): string => execFileSync('xl', args, { encoding: 'utf8', timeout: 60_000 });

/** Open clients, closed on failure too: a process that exits with a /dev/xen/xenbus client
 * still open hangs in exit (the transport's read blocks a libuv thread), so close first. */
const open: XenstoreClient[] = [];

async function main(): Promise<void> {
  const devPath = arg('path');
  const victim = arg('destroy');
  const kind = devPath.startsWith('/dev/') ? 'xenbus' : 'socket';
  const root = `/local/domain/0/xencheck-${kind}`;
  const t0 = Date.now();
  const step = (s: string): void => console.log(`ok ${((Date.now() - t0) / 1000).toFixed(2)}s ${s}`);

  const c: XenstoreClient = await connect({ path: devPath });
  open.push(c);
  const c2: XenstoreClient = await connect({ path: devPath });
  open.push(c2);
  step(`connected twice to ${devPath}`);

  await c.rm(root).catch(() => undefined);
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await c.write(`${root}/bytes`, every);
  assert.deepEqual(await c.read(`${root}/bytes`), every, 'every byte value round-trips');
  await c.write(`${root}/empty`, '');
  assert.equal((await c.read(`${root}/empty`)).length, 0, 'an empty value reads back empty');
  step('values with every byte value and an empty value round-trip');

  await expectCode(c.read(`${root}/missing`), 'ENOENT', 'read of a missing node');
  await expectCode(c.read('/local/domain/0/bad//path'), 'EINVAL', 'a bad path');
  step('ENOENT and EINVAL come back typed');

  // 200 children of 25-character names: a listing of 5200 bytes, over the 4096 payload limit.
  const names = Array.from({ length: 200 }, (_, i) => `child-${String(i).padStart(4, '0')}-${'x'.repeat(14)}`);
  await Promise.all(names.map((n) => c.write(`${root}/big/${n}`, n)));
  const listed = await c.directory(`${root}/big`);
  const missing = names.filter((n) => !listed.includes(n));
  // Tell a listing problem from lost writes: do the missing nodes exist at all?
  for (const n of missing.slice(0, 5)) console.log(`missing from the listing: ${n}, exists: ${await c.exists(`${root}/big/${n}`)}`);
  assert.deepEqual([...listed].sort(), [...names].sort(),
    `the large directory lists completely (got ${listed.length} of ${names.length}; first missing ${missing[0]}; first listed ${JSON.stringify(listed[0])})`);
  step(`a directory of ${names.length} children (${names.reduce((s, n) => s + n.length + 1, 0)} bytes of names) lists completely`);

  // 500 pipelined writes of different lengths, each read back: every request must reach its own
  // path with its own value, however many are in flight.
  const burst = Array.from({ length: 500 }, (_, i) => [`${root}/burst/n${i}`, `v${i}-${'y'.repeat(i % 37)}`] as const);
  await Promise.all(burst.map(([p, v]) => c.write(p, v)));
  const back = await Promise.all(burst.map(([p]) => c.readString(p).catch((e: Error & { code?: string }) => `<${e.code}>`)));
  const wrong = burst.filter(([, v], i) => back[i] !== v);
  assert.equal(wrong.length, 0,
    `${wrong.length} of 500 pipelined writes did not land (first: ${wrong[0]?.[0]} = ${JSON.stringify(back[burst.indexOf(wrong[0])])})`);
  step('500 pipelined writes of different lengths each read back their own value');

  await c.setPerms(`${root}/bytes`, ['n0', 'r1']);
  const perms = await c.getPerms(`${root}/bytes`);
  assert.deepEqual(perms.map((p) => `${p.access}${p.domid}`), ['n0', 'r1'], 'permissions round-trip');
  step('permissions n0 r1 set and read back');

  // A conflict: c2 changes a node c's open transaction read; the commit must be EAGAIN.
  await c.write(`${root}/counter`, '0');
  const tx = await c.transactionStart();
  await tx.read(`${root}/counter`);
  await tx.write(`${root}/counter`, 'from-tx');
  await c2.write(`${root}/counter`, 'from-c2');
  await expectCode(tx.commit(), 'EAGAIN', 'a conflicting commit');
  assert.equal(await c.readString(`${root}/counter`), 'from-c2', 'the conflicting transaction left nothing');
  step('a conflicting commit is refused with EAGAIN');

  // The retry helper converges with both connections incrementing one counter at once.
  await c.write(`${root}/counter`, '0');
  const bump = (cl: XenstoreClient) => cl.transaction(async (t) => {
    const n = Number(await t.readString(`${root}/counter`));
    await t.write(`${root}/counter`, String(n + 1));
  });
  let retries = 0;
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 10; i++) {
    jobs.push(bump(c), c2.transaction(async (t) => {
      const n = Number(await t.readString(`${root}/counter`));
      await t.write(`${root}/counter`, String(n + 1));
    }, { onRetry: () => { retries++; } }));
  }
  await Promise.all(jobs);
  assert.equal(await c.readString(`${root}/counter`), '20', '20 increments from two connections');
  step(`20 concurrent transactional increments converge (${retries} retries seen on one side)`);

  // A watch: initial firing, then an event for a child written by the other connection.
  const w = c.watch(`${root}/watched`, 'tok-watched');
  const it = w[Symbol.asyncIterator]();
  const first = await withTimeout(it.next(), 10_000, 'initial firing');
  assert.equal(first.value?.path, `${root}/watched`, 'initial firing names the watched path');
  await c2.write(`${root}/watched/child`, 'x');
  let ev = await withTimeout(it.next(), 10_000, 'child event');
  while (ev.value && ev.value.path !== `${root}/watched/child`) ev = await withTimeout(it.next(), 10_000, 'child event');
  assert.equal(ev.value?.token, 'tok-watched', 'the event carries our token');
  await w.close();
  step('a watch fires at once, then for a child written by another connection');

  // @releaseDomain fires when a real domain dies.
  const domid = Number(xl('domid', victim).trim());
  assert.ok(domid > 0, `${victim} exists`);
  assert.equal(await c.getDomainPath(domid), `/local/domain/${domid}`, 'getDomainPath');
  assert.equal(await c.isDomainIntroduced(domid), true, `${victim} is introduced`);
  const rw = c.watch('@releaseDomain', 'tok-release');
  const rit = rw[Symbol.asyncIterator]();
  await withTimeout(rit.next(), 10_000, '@releaseDomain initial firing');
  const tDestroy = Date.now();
  xl('destroy', victim);
  const rel = await withTimeout(rit.next(), 30_000, '@releaseDomain after xl destroy');
  assert.equal(rel.value?.path, '@releaseDomain', 'a @releaseDomain event');
  await rw.close();
  const gone = !(await c.exists(`/local/domain/${domid}`));
  assert.ok(gone, `/local/domain/${domid} removed after destroy`);
  step(`@releaseDomain fired ${Date.now() - tDestroy} ms after xl destroy ${victim} (domid ${domid})`);

  await c.rm(root);
  await c.close();
  await c2.close();
  console.log(`xenstore client over ${kind} (${devPath}): 10 steps ok in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch(async (e: unknown) => {
  const err = e as Error & { code?: string };
  const closing = Promise.allSettled(open.map((c) => c.close()));
  await Promise.race([closing, new Promise((r) => setTimeout(r, 5000).unref())]);
  console.log(`FAILED: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
