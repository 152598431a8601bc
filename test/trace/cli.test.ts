/**
 * The xs-trace command line: run mode (status, signals, discovery, output streams), listen
 * mode, filters end to end, option errors. Against a real C xenstored.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunningDaemon, startDaemon } from '../harness/daemons';
import { ROOT, ScriptClient, T, f, listenXsTrace, nul, parseJsonLines, runXsTrace, tmpDir } from './helpers';
import { ATTACH_HELP } from '../../lib/trace/commands/attach-help';
import { LOGGING_DAEMONS, LoggingResult, costText } from '../../bench/trace-logging';

let daemon: RunningDaemon;
let dir: string;

/** Environment without any xenstore location, plus `extra`. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('XENSTORED_PATH' in extra)) delete e.XENSTORED_PATH;
  if (!('XENSTORED_RUNDIR' in extra)) e.XENSTORED_RUNDIR = path.join(dir, 'no-rundir');
  delete e.NO_COLOR;
  return e;
}

test.before(async () => {
  daemon = await startDaemon('cxenstored');
  dir = tmpDir('xs-trace-cli-');
});

test.after.always(async () => {
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('run mode: the command gets XENSTORED_PATH, its stdout stays clean, the trace goes to stderr', async (t) => {
  const r = await runXsTrace(['--', 'sh', '-c', 'xenstore-write /cli/a hello && xenstore-read /cli/a'], env({ XENSTORED_PATH: daemon.socketPath }));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\n');
  t.regex(r.stderr, /#1 +-> WRITE +req=0 tx=\d+ +\/cli\/a = "hello"/);
  t.regex(r.stderr, /#2 +<- READ +req=0 tx=0 +\/cli\/a = "hello" \(\d/);
  t.notRegex(r.stderr, /\x1b\[/, 'no colour when not on a terminal');
});

test('run mode: the daemon is found through XENSTORED_RUNDIR too, and --upstream wins', async (t) => {
  const viaRundir = await runXsTrace(['--', 'xenstore-read', '/cli/none'], env({ XENSTORED_RUNDIR: daemon.rundir }));
  t.is(viaRundir.code, 1);
  t.regex(viaRundir.stderr, /ERROR ENOENT/);
  const viaOption = await runXsTrace(['--upstream', daemon.socketPath, '--', 'xenstore-read', '/cli/none'], env());
  t.regex(viaOption.stderr, /ERROR ENOENT/);
});

test('run mode: exit status and signals of the command are passed on', async (t) => {
  const e = env({ XENSTORED_PATH: daemon.socketPath });
  t.is((await runXsTrace(['--', 'sh', '-c', 'exit 3'], e)).code, 3);
  t.is((await runXsTrace(['--', 'sh', '-c', 'kill -TERM $$'], e)).code, 128 + 15);
  const missing = await runXsTrace(['--', 'no-such-command-xs-trace'], e);
  t.is(missing.code, 127);
  t.regex(missing.stderr, /cannot run no-such-command-xs-trace/);
});

test('run mode: a program called read is run, not the read subcommand', async (t) => {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'read'), '#!/bin/sh\nexit 7\n', { mode: 0o755 });
  const r = await runXsTrace(['--', 'read', 'x'], env({ XENSTORED_PATH: daemon.socketPath, PATH: `${bin}:${process.env.PATH}` }));
  t.is(r.code, 7, r.stderr);
});

test('errors: no daemon, not a socket, bad options; typed, through the shared handler (JSON on stdout with --json), usage errors exit 2', async (t) => {
  const none = await runXsTrace(['--', 'true'], env());
  t.is(none.code, 1);
  t.regex(none.stderr, /^xs-trace: no xenstored socket found \(tried .*no-rundir\/socket\)/);
  t.is(none.stdout, '');
  const file = path.join(dir, 'plain-file');
  fs.writeFileSync(file, '');
  const notSock = await runXsTrace(['--json', '--', 'true'], env({ XENSTORED_PATH: file }));
  t.is(notSock.code, 1);
  t.is(notSock.stderr, '');
  t.like(JSON.parse(notSock.stdout), { ok: false, error: { kind: 'trace', code: 'ENOTSOCK', path: file } });
  const e = env({ XENSTORED_PATH: daemon.socketPath });
  const badType = await runXsTrace(['--json', '--type', 'FROB', '--', 'true'], e);
  t.is(badType.code, 2);
  t.like(JSON.parse(badType.stdout).error, { kind: 'trace', code: 'EINVAL', option: '--type' });
  const badConn = await runXsTrace(['--conn', '0', '--', 'true'], e);
  t.is(badConn.code, 2);
  t.regex(badConn.stderr, /^xs-trace: --conn expects a positive integer/);
  const badMax = await runXsTrace(['--max-value', 'lots', '--', 'true'], e);
  t.is(badMax.code, 2);
  t.regex(badMax.stderr, /--max-value expects a non-negative integer/);
  const nothing = await runXsTrace([], e);
  t.is(nothing.code, 2);
  t.regex(nothing.stderr, /nothing to run/);
  const both = await runXsTrace(['--listen', path.join(dir, 'x'), '--', 'true'], e);
  t.is(both.code, 2);
  t.regex(both.stderr, /exclusive/);
  const unknown = await runXsTrace(['--frobnicate', '--', 'true'], e);
  t.is(unknown.code, 2, 'commander usage errors exit 2 too');
  t.regex(unknown.stderr, /unknown option '--frobnicate'/);
  // Echoed input is elided: a 10,000-character type name gives a short line.
  const long = await runXsTrace(['--type', 'X'.repeat(10_000), '--', 'true'], e);
  t.is(long.code, 2);
  t.true(long.stderr.length < 400, `${long.stderr.length} characters`);
  t.regex(long.stderr, /X\.\.\.\[9920 more characters\]\.\.\.X/);
});

test('filters: path prefix, type, connection, transaction, end to end', async (t) => {
  const e = env({ XENSTORED_PATH: daemon.socketPath });
  const script = 'xenstore-write /cli/f/a 1 /cli/f/b 2 && xenstore-read /cli/f/a && xenstore-read /cli/f/b && xenstore-ls /cli/f';
  const run = async (...opts: string[]) => {
    const r = await runXsTrace(['--json', ...opts, '--', 'sh', '-c', script], e);
    t.is(r.code, 0, r.stderr);
    return parseJsonLines(r.stderr);
  };
  const all = await run();
  const msgs = (rs: Array<Record<string, any>>) => rs.filter((r) => ['request', 'reply', 'event'].includes(r.kind));
  t.true(msgs(all).length > 10);

  const byPath = msgs(await run('--path', '/cli/f/a'));
  t.true(byPath.length >= 6);
  t.true(byPath.every((r) => r.path === '/cli/f/a'));

  const byType = await run('--type', 'read,DIRECTORY');
  t.true(byType.length > 0);
  t.true(byType.every((r) => r.type === 'READ' || r.type === 'DIRECTORY' || (r.kind === 'reply' && ['READ', 'DIRECTORY'].includes(r.op))));
  t.true(byType.some((r) => r.type === 'DIRECTORY'));

  const byConn = await run('--conn', '2');
  t.true(byConn.length > 0);
  t.true(byConn.every((r) => r.conn === 2));
  t.true(byConn.some((r) => r.kind === 'connect'), 'connect and close lines of the connection stay');

  // xenstore-write runs its writes in a transaction; its id is 1 on that connection.
  const byTx = msgs(await run('--tx', '1'));
  t.true(byTx.length >= 6);
  t.true(byTx.every((r) => r.txId === 1 || r.tx?.id === 1));
  t.true(byTx.some((r) => r.tx?.event === 'commit'));
});

test('output: --output FILE, --color, --max-value', async (t) => {
  const e = env({ XENSTORED_PATH: daemon.socketPath });
  const out = path.join(dir, 'trace.txt');
  const r = await runXsTrace(['-o', out, '--color', '--max-value', '4', '--', 'xenstore-write', '/cli/o', 'abcdefgh'], e);
  t.is(r.code, 0);
  t.is(r.stderr, '');
  const text = fs.readFileSync(out, 'utf8');
  t.regex(text, /\x1b\[36m->/);
  t.regex(text, /"abcd"\.\.\.\(\+4 of 8 bytes\)/);
});

test('listen mode: any number of clients, each connection numbered, until SIGTERM', async (t) => {
  const sock = path.join(dir, 'listen.sock');
  const trace = await listenXsTrace(sock, ['--upstream', daemon.socketPath, '--json']);
  const clients = await Promise.all([1, 2, 3].map(() => ScriptClient.connect(sock)));
  for (const [i, c] of clients.entries()) {
    const r = await c.call(f(T.GET_DOMAIN_PATH, 40 + i, 0, nul('0')));
    t.is(r.reqId, 40 + i);
  }
  await Promise.all(clients.map((c) => c.end()));
  await new Promise((r) => setTimeout(r, 200));
  const run = await trace.stop();
  t.is(run.code, 0);
  t.regex(run.stderr, /listening on .*listen\.sock, forwarding to /);
  const recs = parseJsonLines(run.stdout);
  t.deepEqual(
    recs.filter((r) => r.kind === 'reply').map((r) => [r.conn, r.reqId, r.result]),
    [
      [1, 40, '/local/domain/0'],
      [2, 41, '/local/domain/0'],
      [3, 42, '/local/domain/0'],
    ],
  );
  t.is(recs.filter((r) => r.kind === 'disconnect').length, 3);
  t.false(fs.existsSync(sock), 'the socket is removed on exit');
});

test('attach --help explains the mechanism, states what logging costs the daemon and what SIGKILL leaves', async (t) => {
  const r = await runXsTrace(['attach', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /logfile FILE/);
  t.regex(r.stdout, /Cost: .*\n(.*\n)*.*requests per\s+second/);
  t.regex(r.stdout, /bench\/results\/trace-attach\.md/);
  t.regex(r.stdout, /SIGKILL(.|\n)*xs-trace detach/);
  for (const o of ['--domain', '--stats', '--interval', '--json', '--upstream', '--pid', '--rotate-size']) t.true(r.stdout.includes(o), o);
});

test('attach --help quotes the current bench:trace results (bench/results/trace-attach.json) for every daemon measured', (t) => {
  const results = JSON.parse(fs.readFileSync(path.join(ROOT, 'bench', 'results', 'trace-attach.json'), 'utf8')) as { results: LoggingResult[] };
  t.deepEqual(
    results.results.map((r) => r.daemon),
    LOGGING_DAEMONS.map((d) => d.label),
    'the results are of the daemons the bench measures now (rerun `npm run bench:trace` if not)',
  );
  for (const r of results.results) for (const w of r.workloads) for (const s of Object.values(w.states)) t.true(Number.isFinite(s.meanRatio) && Number.isFinite(s.p99Ratio), `${r.daemon} ${w.name}: mean and p99 ratios`);
  t.true(ATTACH_HELP.includes(costText(results.results)), `attach --help must quote bench:trace's summary (bench/results/trace-attach.md, last section):\n${costText(results.results)}`);
});
