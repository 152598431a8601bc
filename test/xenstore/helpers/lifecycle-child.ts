/**
 * Run as a child process by lifecycle.test.ts: uses every long-lived part of the client, then
 * lets the process end on its own. It must exit by itself (nothing left holding the event
 * loop) and without unhandled rejections (the parent runs it with --unhandled-rejections=strict).
 *
 *   mode "close": work, then close()           -> prints "done", exits 0
 *   mode "lost":  work, print "ready", wait for the parent to kill the daemon -> prints
 *                 "closed <code>", exits 0
 */
import { connect, ConnectionError } from '../../../xenstore-wire';

async function main(mode: string): Promise<void> {
  const xs = await connect(); // XENSTORED_PATH from the parent
  await xs.write('/life/a', '1');
  await xs.transaction(async (tx) => tx.write('/life/b', await tx.readString('/life/a')));
  const it = xs.watch('/life');
  await it.next();
  const cb = await xs.onWatch('/life/b', () => undefined);
  xs.watch('@releaseDomain'); // never awaited, never iterated
  if (mode === 'close') {
    await cb.close();
    await xs.close();
    process.stdout.write('done\n');
    return;
  }
  const tx = await xs.transactionStart();
  await tx.write('/life/c', 'x');
  const reads = Array.from({ length: 20 }, () => xs.read('/life/a').catch((e: unknown) => e));
  const commit = tx.commit().catch((e: unknown) => e);
  process.stdout.write('ready\n');
  const err = await xs.closed;
  const outcomes = [...(await Promise.all(reads)), await commit];
  // A value (a read, or the commit's undefined) if answered before the kill, else ConnectionError.
  const typed = outcomes.filter((o) => o instanceof ConnectionError || Buffer.isBuffer(o) || o === undefined).length;
  process.stdout.write(`closed ${err?.code} ${typed}/${outcomes.length}\n`);
}

main(process.argv[2] ?? 'close').catch((e: unknown) => {
  process.stderr.write(`child failed: ${String(e)}\n`);
  process.exitCode = 1;
});
