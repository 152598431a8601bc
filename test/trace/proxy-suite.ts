/**
 * Real clients through xs-trace to a real daemon, one suite per daemon kind.
 *
 *   direct:   client -> recorder D -> daemon
 *   proxied:  client -> recorder A -> xs-trace --listen -> recorder B -> daemon
 *
 * A and B are dumb forwarders recording every byte: A shows what the client sent and
 * received, B what the daemon received and sent. The proxy is transparent when A and B saw
 * the same bytes on every connection. Sessions that are byte-stable are also compared with
 * their direct run (D): the client receives exactly what it receives without the proxy.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DaemonKind, RunningDaemon, startDaemon } from '../harness/daemons';
import { ListeningTrace, Recorder, listenXsTrace, parseJsonLines, tmpDir } from './helpers';
import { Outcome, ourClient, ourClientBigDirectory, pyxs, testXenstore, xenstoreUtils, xenstoreWatch } from './scenarios';

interface Ctx {
  daemon: RunningDaemon;
  dir: string;
  direct: Recorder;
  a: Recorder;
  b: Recorder;
  trace: ListeningTrace;
  tracePath: string;
  /** Connections the client side opened through the proxy, over all scenarios. */
  proxied: number;
}

export function proxySuite(kind: DaemonKind): void {
  let ctx: Ctx;

  test.before(async () => {
    const daemon = await startDaemon(kind);
    const dir = tmpDir(`xs-trace-${kind}-`);
    const direct = await Recorder.start(path.join(dir, 'direct'), daemon.socketPath);
    const b = await Recorder.start(path.join(dir, 'b'), daemon.socketPath);
    const tracePath = path.join(dir, 'trace.jsonl');
    const trace = await listenXsTrace(path.join(dir, 'proxy'), ['--upstream', b.socketPath, '--json', '-o', tracePath]);
    const a = await Recorder.start(path.join(dir, 'a'), trace.socketPath);
    ctx = { daemon, dir, direct, a, b, trace, tracePath, proxied: 0 };
  });

  test.after.always(async () => {
    if (!ctx) return;
    await ctx.trace.stop().catch(() => undefined);
    for (const r of [ctx.a, ctx.b, ctx.direct]) await r.close().catch(() => undefined);
    await ctx.daemon.stop();
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });

  /** Runs `session` direct then proxied; checks outcomes and bytes. */
  async function both(
    t: import('ava').ExecutionContext,
    session: (socketPath: string) => Promise<Outcome>,
    byteStable: boolean,
  ): Promise<void> {
    for (const r of [ctx.direct, ctx.a, ctx.b]) r.reset();
    const d = await session(ctx.direct.socketPath);
    t.true(d.ok, `direct run: ${d.detail}`);
    const p = await session(ctx.a.socketPath);
    t.true(p.ok, `through xs-trace: ${p.detail}`);
    t.is(p.output, d.output, 'the client sees the same results with and without the proxy');
    await ctx.direct.idle();
    await ctx.a.idle();
    await ctx.b.idle();
    const n = ctx.a.connections.length;
    t.true(n > 0);
    t.is(ctx.b.connections.length, n, 'one daemon connection per client connection');
    ctx.proxied += n;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const [ai, bi] = [ctx.a.bytes(i), ctx.b.bytes(i)];
      t.true(ai.fromClient.equals(bi.fromClient), `connection ${i}: the daemon received what the client sent`);
      t.true(ai.fromDaemon.equals(bi.fromDaemon), `connection ${i}: the client received what the daemon sent`);
      bytes += ai.fromClient.length + ai.fromDaemon.length;
    }
    t.true(bytes > 0);
    if (byteStable) {
      t.is(ctx.direct.connections.length, n);
      for (let i = 0; i < n; i++) {
        const [di, ai] = [ctx.direct.bytes(i), ctx.a.bytes(i)];
        t.true(di.fromClient.equals(ai.fromClient), `connection ${i}: the client sent the same bytes as when direct`);
        t.true(di.fromDaemon.equals(ai.fromDaemon), `connection ${i}: the client received the same bytes as when direct`);
      }
    }
  }

  test.serial(`${kind}: xenstore-utils through the proxy`, async (t) => {
    await both(t, (s) => xenstoreUtils(s, '/xs-trace-test/utils'), true);
  });

  test.serial(`${kind}: xenstore-watch sees the same events through the proxy`, async (t) => {
    await both(t, (s) => xenstoreWatch(s, '/xs-trace-test/watch'), false);
  });

  test.serial(`${kind}: pyxs through the proxy`, async (t) => {
    await both(t, (s) => pyxs(s, '/xs-trace-test/pyxs'), true);
  });

  test.serial(`${kind}: our client through the proxy`, async (t) => {
    await both(t, (s) => ourClient(s, '/xs-trace-test/ours'), true);
  });

  test.serial(`${kind}: a directory too big for one reply, through the proxy`, async (t) => {
    await both(t, (s) => ourClientBigDirectory(s, '/xs-trace-test/big'), false);
  });

  test.serial(`${kind}: test-xenstore passes every test through the proxy`, async (t) => {
    await both(t, (s) => testXenstore(s), false);
  });

  test.serial(`${kind}: the trace pairs every request and shows what the clients did`, async (t) => {
    const run = await ctx.trace.stop();
    t.is(run.code, 0, run.stderr);
    const recs = parseJsonLines(fs.readFileSync(ctx.tracePath, 'utf8'));
    const conns = new Set(recs.map((r) => r.conn));
    t.is(conns.size, ctx.proxied);
    t.is(recs.filter((r) => r.kind === 'connect').length, ctx.proxied);
    t.is(recs.filter((r) => r.kind === 'disconnect').length, ctx.proxied);
    const requests = recs.filter((r) => r.kind === 'request');
    const replies = recs.filter((r) => r.kind === 'reply');
    t.is(replies.length, requests.length, 'every request answered');
    t.true(replies.every((r) => typeof r.requestSeq === 'number' && typeof r.latencyUs === 'number'));
    // Only oxenstored's single oversized DIRECTORY reply deserves a warning here.
    const warnings = recs.flatMap((r) => r.warnings.map((w: { code: string }) => w.code));
    const expected = kind === 'oxenstored' ? ['oversized-reply'] : [];
    t.deepEqual([...new Set(warnings)], expected);
    const types = new Set(recs.filter((r) => r.type).map((r) => r.type));
    for (const ty of ['READ', 'WRITE', 'DIRECTORY', 'GET_PERMS', 'SET_PERMS', 'MKDIR', 'RM', 'WATCH', 'UNWATCH', 'WATCH_EVENT', 'TRANSACTION_START', 'TRANSACTION_END', 'ERROR', 'GET_DOMAIN_PATH', 'IS_DOMAIN_INTRODUCED']) {
      t.true(types.has(ty), `${ty} seen`);
    }
    if (kind === 'cxenstored') t.true(types.has('DIRECTORY_PART'), 'C xenstored: E2BIG then DIRECTORY_PART');
    const txEvents = new Set(recs.filter((r) => r.tx).map((r) => r.tx.event));
    for (const e of ['start', 'op', 'end', 'commit', 'abort', 'eagain']) t.true(txEvents.has(e), `transaction ${e} seen`);
    t.true(recs.some((r) => r.kind === 'event' && r.watch && r.watch.event === 'fire' && r.token === 'our-token'));
    // libxenstore numbers nothing: all its requests carry req_id 0; pyxs and ours number them.
    t.true(requests.some((r) => r.reqId === 0) && requests.some((r) => r.reqId > 1));
    const nl = recs.find((r) => r.kind === 'request' && r.type === 'WRITE' && r.path === '/xs-trace-test/utils/nl');
    t.is(nl?.value, 'line1\\nline2) still');
  });
}
