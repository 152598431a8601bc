/**
 * The "fresh process" side of `npm run bench:xenstore` for this client: started as a new Node
 * process per run, it loads xen-sshm/xenstore, connects to XENSTORED_PATH and times its first
 * READs one by one, like a command-line tool would issue them. Prints one JSON line:
 * `{ requireNs, connectNs, read: [ns...] }`.
 *
 *   node dist/bench/xenstore-cold.js <path> <reads>
 *
 * Kept apart from bench/xenstore.ts so that nothing but the client is loaded before it.
 */
export {};

const t0 = process.hrtime.bigint();
// require(), not import: the load is timed.
const { connect } = require('../xenstore-wire') as typeof import('../xenstore-wire');
const t1 = process.hrtime.bigint();

async function main(): Promise<void> {
  const [path, n] = [process.argv[2], Number(process.argv[3] ?? 100)];
  if (!path || !Number.isInteger(n) || n < 1) throw new Error('usage: xenstore-cold.js <node path> <reads>');
  const xs = await connect();
  const t2 = process.hrtime.bigint();
  const read: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await xs.read(path);
    read.push(Number(process.hrtime.bigint() - a));
  }
  await xs.close();
  process.stdout.write(JSON.stringify({ requireNs: Number(t1 - t0), connectNs: Number(t2 - t1), read }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`xenstore-cold: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
