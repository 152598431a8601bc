/**
 * `xs-trace attach` on a real C xenstored (run per release by attach-cxenstored*.test.ts):
 * everything test-xenstore sends appears decoded exactly once, as a proxy in front of it saw
 * it; the daemon's logging is put back (off, or its -T file, and 4.18+ switches); SIGKILL
 * leaves it serving and `detach` repairs it; the log rotates without losing a message;
 * connections are named by domain where the daemon says it.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '../../xenstore-wire/client';
import { DaemonKind, DaemonOptions, RunningDaemon, startDaemon as startHarnessDaemon } from '../harness/daemons';
import { runXenstoreCli } from '../harness/clients';
import { byConnection, openFiles, startAttach } from './attach-helpers';
import { ScriptClient, T, f, listenXsTrace, nul, parseJsonLines, runXsTrace, tmpDir } from './helpers';
import { testXenstore } from './scenarios';

const messages = (rs: Array<Record<string, any>>) => rs.filter((r) => r.kind === 'request' || r.kind === 'reply' || r.kind === 'event');

/** The daemon's trace switches (4.18+), or null (4.17 refuses `log` without argument). */
async function switches(d: RunningDaemon): Promise<string | null> {
  const xs = await connect({ path: d.socketPath });
  try {
    return await xs.control('log');
  } catch {
    return null;
  } finally {
    await xs.close();
  }
}

/**
 * The suite on daemon `kind` started with `base` options (a release, when the harness has
 * several); `label` names the tests ("cxenstored", "cxenstored 4.20").
 */
export function attachSuite(kind: DaemonKind, base: DaemonOptions = {}, label: string = kind): void {
  const startDaemon = (k: DaemonKind, o: DaemonOptions = {}) => startHarnessDaemon(k, { ...base, ...o });
  let dir: string;
  test.before(() => {
    dir = tmpDir(`xs-trace-attach-${label.replace(/\W+/g, '-')}-`);
  });
  test.after.always(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test.serial(`${label}: every request of test-xenstore appears decoded exactly once, as the proxy saw it; --stats totals are the requests printed`, async (t) => {
    const d = await startDaemon(kind);
    try {
      const before = await switches(d);
      const att = await startAttach(['--upstream', d.socketPath, '--json', '--stats', '--dir', dir]);
      t.regex(att.stderr(), new RegExp(`attached to C xenstored \\((4\\.17|4\\.18\\+) log format\\), pid ${d.pid}`));
      const proxyOut = path.join(dir, 'proxy.jsonl');
      const proxy = await listenXsTrace(path.join(dir, 'proxy.sock'), ['--upstream', d.socketPath, '--json', '-o', proxyOut]);
      const o = await testXenstore(proxy.socketPath, d.release);
      t.true(o.ok, o.detail);
      t.is((await proxy.stop()).code, 0);
      await new Promise((r) => setTimeout(r, 300));
      const r = await att.stop('SIGINT');
      t.is(r.code, 0, r.stderr);
      t.regex(r.stderr, /detached; the daemon's logging is back to: logging off/);

      const recs = parseJsonLines(r.stdout);
      const stats = recs.filter((x) => x.kind === 'stats');
      t.is(stats.length, 1);
      const got = recs.filter((x) => x.kind !== 'stats');
      const fromProxy = parseJsonLines(fs.readFileSync(proxyOut, 'utf8'));
      const requests = got.filter((x) => x.kind === 'request');
      const proxied = fromProxy.filter((x) => x.kind === 'request');
      t.true(proxied.length > 50, `${proxied.length} requests`);
      t.is(requests.length, proxied.length, 'each request once');
      t.deepEqual(byConnection(got), byConnection(fromProxy), 'the same conversations, connection by connection');
      t.deepEqual(messages(got).filter((x) => /UNKNOWN/.test(x.type ?? '')), []);
      t.deepEqual(got.flatMap((x) => x.warnings), [], 'every line understood, every reply paired');
      t.is(messages(got).filter((x) => x.kind === 'reply').length, requests.length);
      // The stats count exactly what was printed.
      const s = stats[0];
      t.is(s.scope, 'total');
      t.is(s.totals.requests, requests.length);
      t.is(s.byType.reduce((n: number, row: { requests: number }) => n + row.requests, 0), requests.length);
      t.is(s.totals.events, got.filter((x) => x.kind === 'event').length);
      t.deepEqual(s.source, { latency: false, bytes: true });

      // Put back: no log open, the attach folder gone, the switches as they were.
      t.false(openFiles(d.pid).some((f) => f.includes('xs-trace-attach-')), openFiles(d.pid).join(' '));
      t.deepEqual(fs.readdirSync(dir).filter((x) => x.startsWith('xs-trace-attach-')), []);
      t.is(await switches(d), before);
    } finally {
      await d.stop();
    }
  });

  test.serial(`${label}: a daemon logging to its -T file gets its file back, and logs there again`, async (t) => {
    const d = await startDaemon(kind, { trace: true });
    try {
      const trace = d.tracePath!;
      t.true(openFiles(d.pid).includes(trace));
      const att = await startAttach(['--upstream', d.socketPath, '--dir', dir]);
      t.regex(att.stderr(), new RegExp(`returns to: logging into ${trace.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      t.false(openFiles(d.pid).includes(trace), 'while attached the daemon logs into the attach folder');
      await runXenstoreCli(d, 'xenstore-write', ['/attach/during', 'x']);
      const r = await att.stop();
      t.is(r.code, 0, r.stderr);
      t.regex(r.stdout, /-> WRITE +req=- tx=- +\/attach\/during = "x"/);
      t.true(openFiles(d.pid).includes(trace), openFiles(d.pid).join(' '));
      await runXenstoreCli(d, 'xenstore-write', ['/attach/after', 'y']);
      const text = fs.readFileSync(trace, 'latin1');
      t.regex(text, /WRITE \(\/attach\/after y\)/);
      t.notRegex(text, /\/attach\/during/, 'what happened while attached went to the attach folder only');
    } finally {
      await d.stop();
    }
  });

  test.serial(`${label}: SIGKILL leaves the daemon serving; attach is refused until detach repairs it`, async (t) => {
    const d = await startDaemon(kind, { trace: true });
    try {
      const before = await switches(d);
      const att = await startAttach(['--upstream', d.socketPath, '--dir', dir]);
      const killed = await att.stop('SIGKILL');
      t.is(killed.signal, 'SIGKILL');
      const w = await runXenstoreCli(d, 'xenstore-write', ['/attach/killed', 'still serving']);
      t.is(w.code, 0, w.stderr);
      t.is((await runXenstoreCli(d, 'xenstore-read', ['/attach/killed'])).stdout, 'still serving\n');
      const left = openFiles(d.pid).find((f) => f.includes('xs-trace-attach-'));
      t.truthy(left, 'the daemon still logs into the attach folder');
      const again = await runXsTrace(['attach', '--upstream', d.socketPath, '--dir', dir]);
      t.is(again.code, 1);
      t.regex(again.stderr, /still logs into .*xs-trace-attach-.*left by an xs-trace attach that was killed; run `xs-trace detach` first/);
      const det = await runXsTrace(['detach', '--upstream', d.socketPath, '--dir', dir, '--json']);
      t.is(det.code, 0, det.stderr);
      const body = JSON.parse(det.stdout);
      t.like(body, { ok: true, found: 'attach-log', daemonPid: d.pid });
      t.deepEqual(body.commands.slice(-1), [`logfile ${d.tracePath}`]);
      t.true(openFiles(d.pid).includes(d.tracePath!));
      t.false(fs.existsSync(path.dirname(left!)), 'the folder is removed');
      t.is(await switches(d), before);
      const none = await runXsTrace(['detach', '--upstream', d.socketPath, '--dir', dir]);
      t.is(none.code, 0);
      t.regex(none.stdout, /nothing to repair/);
    } finally {
      await d.stop();
    }
  });

  test.serial(`${label}: the log rotates (--rotate-size 64K): 2,000 writes all appear, old files are deleted`, async (t) => {
    const d = await startDaemon(kind);
    try {
      const att = await startAttach(['--upstream', d.socketPath, '--dir', dir, '--rotate-size', '64K', '--type', 'WRITE', '--path', '/rot', '--json']);
      const attachDir = (/following (\S+)\/log\.1/.exec(att.stderr()) ?? [])[1];
      t.truthy(attachDir, att.stderr());
      const xs = await connect({ path: d.socketPath });
      let most = 0;
      let highest = 0;
      const look = (): void => {
        const logs = fs.readdirSync(attachDir!).filter((x) => x.startsWith('log.'));
        most = Math.max(most, logs.length);
        highest = Math.max(highest, ...logs.map((x) => Number(x.slice(4))));
      };
      for (let i = 0; i < 2000; i++) {
        await xs.write(`/rot/${i % 50}`, `value ${i} ${'v'.repeat(60)}`);
        if (i % 50 === 0) look();
        // Rotation follows what the attach has read (a file is deleted only once read): on a
        // loaded machine the writes can outrun it, so after each 400 (over 64 KiB of log on
        // either release) wait for it to move the daemon on before writing more.
        if (i % 400 === 399) {
          const before = highest;
          const until = Date.now() + 15_000;
          while (highest <= before && Date.now() < until) {
            await new Promise((r) => setTimeout(r, 20));
            look();
          }
        }
      }
      await xs.close();
      await new Promise((r) => setTimeout(r, 300));
      highest = Math.max(highest, ...fs.readdirSync(attachDir!).filter((x) => x.startsWith('log.')).map((x) => Number(x.slice(4))));
      const r = await att.stop();
      t.is(r.code, 0, r.stderr);
      const writes = parseJsonLines(r.stdout).filter((x) => x.kind === 'request');
      t.is(writes.length, 2000);
      t.deepEqual(
        writes.map((x) => Number(/^value (\d+)/.exec(x.value)?.[1])),
        Array.from({ length: 2000 }, (_, i) => i),
        'every write, in order',
      );
      t.true(most <= 2, `at most 2 log files at once (saw ${most})`);
      // 4.17 logs ~600 bytes per write (wrl: lines too), 4.20 ~250: several rotations either way.
      t.true(highest >= 4, `the daemon was moved to new files (up to log.${highest})`);
    } finally {
      await d.stop();
    }
  });

  test.serial(`${label}: connections are named by domain where the daemon says it; --domain keeps one guest`, async (t) => {
    const d = await startDaemon(kind, { fakeDomains: [5] });
    try {
      const att = await startAttach(['--upstream', d.socketPath, '--dir', dir, '--json', '--domain', '5']);
      const dom0 = await ScriptClient.connect(d.socketPath);
      t.is((await dom0.call(f(T.INTRODUCE, 1, 0, nul('5', '100', '1')))).payload.toString(), 'OK\0');
      t.is((await dom0.call(f(T.WRITE, 2, 0, Buffer.concat([nul('/local/domain/5/data'), Buffer.from('for five')])))).payload.toString(), 'OK\0');
      t.is((await dom0.call(f(T.SET_PERMS, 3, 0, nul('/local/domain/5/data', 'b5')))).payload.toString(), 'OK\0');
      await dom0.end();
      const guest = await ScriptClient.connect(await d.guestSocket(5));
      t.is((await guest.call(f(T.READ, 7, 0, nul('data')))).payload.toString(), 'for five');
      t.is((await guest.call(f(T.WRITE, 8, 0, Buffer.concat([nul('data'), Buffer.from('from five')])))).payload.toString(), 'OK\0');
      t.is((await guest.call(f(T.READ, 9, 0, nul('/tool/xenstored')))).payload.toString(), 'EACCES\0');
      await new Promise((r) => setTimeout(r, 300));
      const r = await att.stop();
      t.is(r.code, 0, r.stderr);
      const recs = parseJsonLines(r.stdout);
      t.true(recs.length > 0);
      t.true(recs.every((x) => x.connDomid === 5), JSON.stringify(recs.filter((x) => x.connDomid !== 5)));
      const m = messages(recs).map((x) => [x.kind, x.kind === 'reply' ? x.op : x.type, x.path, x.value ?? x.error ?? x.result ?? null]);
      t.deepEqual(m, [
        ['request', 'READ', 'data', null],
        ['reply', 'READ', 'data', 'for five'],
        ['request', 'WRITE', 'data', 'from five'],
        ['reply', 'WRITE', 'data', 'OK'],
        ['request', 'READ', '/tool/xenstored', null],
        ['reply', 'READ', '/tool/xenstored', 'EACCES'],
      ]);
    } finally {
      await d.stop();
    }
  });

  test.serial(`${label}: attach refuses a second attach, bad options before touching the daemon (exit 2)`, async (t) => {
    const d = await startDaemon(kind);
    try {
      const bad = await runXsTrace(['attach', '--upstream', d.socketPath, '--interval', '5']);
      t.is(bad.code, 2);
      t.regex(bad.stderr, /--interval goes with --stats/);
      t.deepEqual(openFiles(d.pid).filter((x) => x.includes('xs-trace')), []);
      const att = await startAttach(['--upstream', d.socketPath, '--dir', dir]);
      const second = await runXsTrace(['attach', '--upstream', d.socketPath, '--dir', dir]);
      t.is(second.code, 1);
      t.regex(second.stderr, new RegExp(`xs-trace attach \\(pid ${att.child.pid}\\) is already attached`));
      const det = await runXsTrace(['detach', '--upstream', d.socketPath, '--dir', dir]);
      t.is(det.code, 1);
      t.regex(det.stderr, /is running: stop it/);
      t.is((await att.stop()).code, 0);
    } finally {
      await d.stop();
    }
  });
}
