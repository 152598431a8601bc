/**
 * Client sessions run by the xs-trace tests, each against any xenstore socket (a daemon, the
 * proxy, or a recorder in front of either). Each starts by removing its subtree, so running it
 * twice against one daemon exchanges the same bytes (for the direct-vs-proxy comparison).
 */
import { runPyxs, runTestXenstore, runXenstoreCli } from '../harness/clients';
import { XenRelease } from '../harness/releases';
import { connect } from '../../xenstore-wire/client';

export interface Outcome {
  /** What the session printed or returned, to compare a direct run with a proxied one. */
  output: string;
  ok: boolean;
  detail: string;
}

/** xenstore-utils, one tool per connection, libxenstore underneath (req_id always 0). */
export async function xenstoreUtils(socketPath: string, base: string): Promise<Outcome> {
  const ep = { socketPath };
  const steps: Array<[Parameters<typeof runXenstoreCli>[1], string[]]> = [
    ['xenstore-write', [base, '']],
    ['xenstore-rm', [base]],
    ['xenstore-write', [`${base}/a`, 'hello', `${base}/b`, 'two words', `${base}/nl`, 'line1\nline2) still']],
    ['xenstore-read', [`${base}/a`, `${base}/b`]],
    ['xenstore-ls', ['-f', base]],
    ['xenstore-list', [base]],
    ['xenstore-exists', [`${base}/a`]],
    ['xenstore-chmod', [`${base}/a`, 'n0', 'r1']],
    ['xenstore-ls', ['-p', base]],
    ['xenstore-rm', [`${base}/b`]],
    ['xenstore-read', [`${base}/b`]],
  ];
  let output = '';
  let ok = true;
  for (const [i, [tool, args]] of steps.entries()) {
    const r = await runXenstoreCli(ep, tool, args);
    output += `$ ${tool} ${args.join(' ')}\n[${r.code}]\n${r.stdout}${r.stderr}`;
    // The last read is of a removed node: it must fail.
    const expectFail = i === steps.length - 1;
    if ((r.code === 0) === expectFail) ok = false;
  }
  return { output, ok, detail: output };
}

/** xenstore-watch in one connection while another writes: the event reaches the watcher. */
export async function xenstoreWatch(socketPath: string, base: string): Promise<Outcome> {
  const ep = { socketPath };
  await runXenstoreCli(ep, 'xenstore-write', [`${base}/w`, '0']);
  // -n 2: the event every new watch fires at once, then one caused by a write. The writer
  // keeps writing until the watcher is done, so the result does not depend on timing.
  const watcher = runXenstoreCli(ep, 'xenstore-watch', ['-n', '2', `${base}/w`], { timeoutMs: 20_000 });
  let done = false;
  void watcher.then(() => (done = true));
  let writes = 0;
  while (!done && writes < 100) {
    await new Promise((r) => setTimeout(r, 150));
    if (!done) {
      await runXenstoreCli(ep, 'xenstore-write', [`${base}/w`, '1']);
      writes++;
    }
  }
  const r = await watcher;
  const lines = r.stdout.trim().split('\n');
  return { output: r.stdout, ok: r.code === 0 && lines.length === 2 && lines.every((l) => l === `${base}/w`), detail: `${r.code} ${r.stdout} ${r.stderr}` };
}

/** Debian's pyxs: numbered req_ids, transactions, permissions, a watch. */
export async function pyxs(socketPath: string, base: string): Promise<Outcome> {
  const b = base;
  const src = `
import pyxs
with pyxs.Client() as c:
    c.write(b'${b}', b'')
    c.delete(b'${b}')
    c.write(b'${b}/x', b'1')
    c.write(b'${b}/nul', b'a\\x00b')
    print(c.read(b'${b}/x'), c.read(b'${b}/nul'))
    c.transaction()
    c.write(b'${b}/t', b'in-tx')
    c.mkdir(b'${b}/dir')
    c.commit()
    c.transaction()
    c.write(b'${b}/never', b'no')
    c.rollback()
    print(sorted(c.list(b'${b}')), c.exists(b'${b}/never'))
    c.set_perms(b'${b}/x', [b'n0', b'r2'])
    print(c.get_perms(b'${b}/x'))
    print(c.get_domain_path(0), c.is_domain_introduced(0))
    with c.monitor() as m:
        m.watch(b'${b}/x', b'tok')
        print(next(m.wait()))
        m.unwatch(b'${b}/x', b'tok')
    try:
        c.read(b'${b}/missing')
    except pyxs.PyXSError as e:
        print('error', e.args[0])
`;
  const r = await runPyxs({ socketPath }, src);
  return { output: r.stdout, ok: r.code === 0 && r.stdout.includes('error 2'), detail: `${r.code} ${r.stdout} ${r.stderr}` };
}

/**
 * Xen's own client test of `release` (default the machine's 4.17): every test must pass. Uses
 * its pid in paths: not byte-stable.
 */
export async function testXenstore(socketPath: string, release?: XenRelease): Promise<Outcome> {
  const r = await runTestXenstore({ socketPath, release }, []);
  return { output: '', ok: r.code === 0 && r.stderr === '', detail: `${r.code} ${r.stdout} ${r.stderr}` };
}

/**
 * Our client: pipelined requests with numbered req_ids, a transaction that conflicts once
 * (EAGAIN, then retried), a watch, binary values, permissions.
 */
export async function ourClient(socketPath: string, base: string): Promise<Outcome> {
  const env = { XENSTORED_PATH: socketPath };
  const xs = await connect({ env });
  const other = await connect({ env });
  const out: string[] = [];
  try {
    await xs.write(base, '');
    await xs.rm(base);
    await Promise.all([xs.write(`${base}/p`, 'v0'), xs.write(`${base}/bin`, Buffer.from([0, 1, 2, 0xfe])), xs.mkdir(`${base}/d`)]);
    out.push((await xs.read(`${base}/bin`)).toString('hex'));
    let attempts = 0;
    await xs.transaction(
      async (tx) => {
        attempts++;
        const v = await tx.readString(`${base}/p`);
        if (attempts === 1) await other.write(`${base}/p`, 'outside');
        await tx.write(`${base}/p`, `${v}+tx`);
      },
      { baseDelayMs: 0, maxDelayMs: 1 },
    );
    out.push(`attempts ${attempts}`, await xs.readString(`${base}/p`));
    const w = xs.watch(`${base}/p`, 'our-token');
    const first = await w.next();
    out.push(`event ${JSON.stringify(first.value)}`);
    await w.return?.();
    await xs.setPerms(`${base}/p`, ['n0', 'r3']);
    out.push(JSON.stringify(await xs.getPerms(`${base}/p`)));
    out.push(JSON.stringify(await xs.directory(base)));
  } finally {
    await xs.close();
    await other.close();
  }
  const output = out.join('\n');
  return { output, ok: output.includes('attempts 2') && output.includes('000102fe'), detail: output };
}

/**
 * A directory too big for one reply: C xenstored answers E2BIG and our client pages with
 * DIRECTORY_PART; oxenstored sends one oversized reply. Not byte-stable: DIRECTORY_PART
 * replies carry the node's generation, which grows with every write to the daemon.
 */
export async function ourClientBigDirectory(socketPath: string, base: string): Promise<Outcome> {
  const xs = await connect({ env: { XENSTORED_PATH: socketPath } });
  try {
    await xs.write(base, '');
    await xs.rm(base);
    const names = Array.from({ length: 300 }, (_, i) => `child-with-a-long-name-${String(i).padStart(3, '0')}`);
    await xs.transaction(async (tx) => {
      await Promise.all(names.map((n) => tx.write(`${base}/${n}`, '')));
    });
    const listed = await xs.directory(base);
    const output = `big ${listed.length}`;
    return { output, ok: listed.length === 300, detail: output };
  } finally {
    await xs.close();
  }
}
