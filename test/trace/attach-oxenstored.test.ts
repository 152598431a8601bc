/**
 * `xs-trace attach` on oxenstored: its access log is followed as it is (oxenstored cannot be
 * told to log at run time), what that log lacks is stated, and a daemon without one is a typed
 * error. Also the access-log reader on lines written by the real daemon, and `xs-trace read`
 * of such a file.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { connect } from '../../xenstore-wire/client';
import { AccessLogParser, unescapeOcaml } from '../../lib/trace/access-log';
import { startDaemon, XEN_RELEASES } from '../harness/daemons';
import { openFiles, startAttach } from './attach-helpers';
import { ScriptClient, T, f, nul, parseJsonLines, runXsTrace, tmpDir } from './helpers';

for (const release of XEN_RELEASES) {
  test(`oxenstored ${release}: attach follows the access log, states what it lacks, changes nothing`, async (t) => {
    const d = await startDaemon('oxenstored', { trace: true, release });
    const dir = tmpDir('xs-trace-attach-ox-');
    try {
      const before = openFiles(d.pid).sort();
      const att = await startAttach(['--upstream', d.socketPath, '--json', '--stats', '--dir', dir]);
      const err = att.stderr();
      t.regex(err, new RegExp(`attached to oxenstored, pid ${d.pid}, following ${d.tracePath}`));
      t.regex(err, /nothing to restore: the daemon is not changed/);
      t.regex(err, /replies other than errors and watch events/);
      t.regex(err, /reads, directory listings and permission reads \(access-log-read-ops is off\)/);
      t.notRegex(err, /xs-trace detach/);
      const xs = await connect({ path: d.socketPath });
      await xs.write('/ox/a', 'hello world');
      await xs.transaction(async (tx) => {
        await tx.write('/ox/t', 'in tx');
      });
      const w = await xs.onWatch('/ox/a', () => undefined, { token: 'tok' });
      await xs.write('/ox/a', Buffer.from('line\nbreak\0nul'));
      await xs.rm('/ox/missing').catch(() => undefined);
      await xs.unwatch(w);
      await xs.close();
      // An error other than ENOENT is logged (ENOENT only with access-log-read-ops).
      const raw = await ScriptClient.connect(d.socketPath);
      t.is((await raw.call(f(T.SET_PERMS, 1, 0, nul('/ox/a', 'x1')))).payload.toString(), 'EINVAL\0');
      await raw.end();
      await new Promise((r) => setTimeout(r, 300));
      const r = await att.stop();
      t.is(r.code, 0, r.stderr);
      const recs = parseJsonLines(r.stdout);
      const stats = recs.pop()!;
      t.is(stats.kind, 'stats');
      const reqs = recs.filter((x) => x.kind === 'request');
      t.deepEqual(
        reqs.map((x) => [x.type, x.path, x.value ?? x.token ?? null, x.txId]),
        [
          ['WRITE', '/ox/a', 'hello world', 0],
          ['WRITE', '/ox/t', 'in tx', reqs[1].txId],
          ['WATCH', '/ox/a', 'tok', 0],
          ['WRITE', '/ox/a', 'line\\nbreak nul', 0],
          ['RM', '/ox/missing', null, 0],
          ['UNWATCH', '/ox/a', 'tok', 0],
          ['SET_PERMS', '/ox/a', null, 0],
        ],
      );
      t.true(reqs[1].txId > 0, 'the transaction id is in the log');
      t.true(recs.every((x) => x.tsPrecision === 'ms' || x.kind === 'note'), 'millisecond times');
      t.true(recs.filter((x) => x.conn > 0).every((x) => x.connDomid === 0), 'socket connections are dom0\'s');
      const events = recs.filter((x) => x.kind === 'event');
      t.true(events.length >= 2);
      t.true(events.every((x) => x.watch?.event === 'fire' && x.watch.path === '/ox/a'));
      t.true(recs.some((x) => x.tx?.event === 'commit' && x.tx.id === reqs[1].txId));
      t.deepEqual(recs.filter((x) => x.kind === 'reply').map((x) => [x.type, x.op, x.path, x.error]), [['ERROR', 'SET_PERMS', '/ox/a', 'EINVAL']], 'ENOENT of the rm is not logged');
      t.is(stats.totals.requests, reqs.length);
      t.deepEqual(stats.source, { latency: false, bytes: false });
      t.deepEqual(openFiles(d.pid).sort(), before, 'the daemon was not changed');
    } finally {
      await d.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`oxenstored ${release} without an access log: a typed error, nothing changed`, async (t) => {
    const d = await startDaemon('oxenstored', { release });
    try {
      const r = await runXsTrace(['attach', '--upstream', d.socketPath, '--json']);
      t.is(r.code, 1);
      t.like(JSON.parse(r.stdout).error, { kind: 'trace', code: 'ENODATA' });
      t.regex(JSON.parse(r.stdout).error.message, /--no-access-log/);
    } finally {
      await d.stop();
    }
  });
}

test('access log lines: connections, transactions, cut lines, escapes, CONTROL print', (t) => {
  const cutLine = '[20261206T03:23:02.620Z]  A1           write     /long xxxxxxxxxxxxxxxxxxx..';
  // The daemon cuts lines at access-log-nb-chars - 1 characters, the last two made '..'.
  const p = new AccessLogParser({ lineChars: cutLine.length + 1 });
  const log = [
    '[20261206T03:23:02.613Z]  A1           newconn   ',
    '[20261206T03:23:02.616Z]  D5           write     data/x a b\\nc',
    '[20261206T03:23:02.617Z]  D5.3         write     data/y v',
    '[20261206T03:23:02.617Z]  D5.3         commit    ',
    '[20261206T03:23:02.618Z]  D5           watch     data tk ',
    '[20261206T03:23:02.618Z]  D5           w event   data/x tk ',
    '[20261206T03:23:02.619Z]  A1           rm        /gone ',
    '[20261206T03:23:02.619Z]  A1           error     ENOENT',
    cutLine,
    '[20261206T03:23:02.621Z]  =======>     debug     hello marker',
    '[20261206T03:23:02.622Z]  A1           endconn   ',
    'garbage',
  ].join('\n') + '\n';
  const recs = [...p.push(Buffer.from(log.slice(0, 100))), ...p.push(Buffer.from(log.slice(100))), ...p.end()];
  const line = (i: number) => recs[i];
  t.like(line(0), { kind: 'connect', conn: 1, connDomid: 0 });
  t.like(line(1), { kind: 'connect', conn: 2, connDomid: 5 });
  t.like(line(2), { kind: 'request', type: 'WRITE', path: 'data/x', conn: 2, connDomid: 5, txId: 0, tsPrecision: 'ms' });
  t.deepEqual(line(2).value, Buffer.from('a b\nc'));
  t.is(line(2).tsUs, Date.UTC(2026, 11, 6, 3, 23, 2, 616) * 1000);
  t.like(line(3), { type: 'WRITE', path: 'data/y', txId: 3, tx: { id: 3, event: 'op' } });
  t.like(line(4), { kind: 'note', tx: { id: 3, event: 'commit' } });
  t.like(line(5), { type: 'WATCH', watch: { event: 'register', path: 'data', token: 'tk' } });
  t.like(line(6), { kind: 'event', path: 'data/x', watch: { event: 'fire', path: 'data', registeredSeq: line(5).seq } });
  t.like(line(8), { kind: 'reply', type: 'ERROR', op: 'RM', path: '/gone', error: 'ENOENT', requestSeq: line(7).seq });
  t.like(line(9), { type: 'WRITE', path: '/long' });
  t.deepEqual(line(9).warnings.map((w) => w.code), ['truncated-line']);
  t.like(line(10), { kind: 'note', text: 'control: hello marker' });
  t.like(line(11), { kind: 'disconnect', conn: 1 });
  t.like(line(12), { kind: 'warning', text: 'garbage' });
  t.deepEqual(unescapeOcaml('a\\\\b\\"c\\n\\t\\255\\000'), Buffer.from([0x61, 0x5c, 0x62, 0x22, 0x63, 0x0a, 0x09, 0xff, 0x00]));
});

for (const release of XEN_RELEASES) {
  test(`oxenstored ${release}: xs-trace read tells an oxenstored access log from a C xenstored trace file`, async (t) => {
    const d = await startDaemon('oxenstored', { trace: true, release });
    try {
      const xs = await connect({ path: d.socketPath });
      await xs.write('/ox-read/a', 'v');
      await xs.close();
      await new Promise((r) => setTimeout(r, 200));
      const r = await runXsTrace(['read', '--json', d.tracePath!]);
      t.is(r.code, 0, r.stderr);
      const recs = parseJsonLines(r.stdout);
      t.true(recs.some((x) => x.kind === 'request' && x.type === 'WRITE' && x.path === '/ox-read/a' && x.value === 'v'));
      const human = await runXsTrace(['read', d.tracePath!]);
      t.regex(human.stdout, /^\d\d:\d\d:\d\d\.\d{3} {4}#\d+\/d0 -> WRITE +req=- tx=0 +\/ox-read\/a = "v"$/m);
      t.notRegex(human.stdout, /connected: A\d \(first seen in the log\)\n.*connected\n/, 'one connected line per connection');
    } finally {
      await d.stop();
    }
  });
}
