/**
 * Hostile input to xs-trace (issue 13): generated log files for `xs-trace read` (random bytes,
 * lines of megabytes, endless continuation lines, cut messages, both daemons' formats) read in
 * a small heap; hostile command lines for every mode; attach aimed at something that is not a
 * xenstore daemon. Only typed errors: no JS stack, no abort, memory bounded, exit 1 for a
 * failure and 2 for a usage error, echoed input elided.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { seededRandom } from '../helpers/prng';

const ROOT = path.resolve(__dirname, '../../..');
const XS_TRACE = path.join(ROOT, 'dist/lib/cli/xs-trace.js');

/** xs-trace ARGS in a 96 MiB heap: unbounded memory would abort it. */
function xsTrace(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, ['--max-old-space-size=96', XS_TRACE, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 512 * 1024 * 1024, env });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function crashed(out: string): boolean {
  return /\n\s+at .+:\d+:\d+\)?\n|FATAL ERROR|heap out of memory|Aborted|RangeError|TypeError/.test(out);
}

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);

const TYPES = ['READ', 'WRITE', 'DIRECTORY', 'WATCH', 'WATCH_EVENT', 'TRANSACTION_START', 'TRANSACTION_END', 'ERROR', 'GET_FEATURE', 'SET_QUOTA', '**UNKNOWN**', 'BOGUS'];

/** A C xenstored log with every kind of damage. */
function cLog(r: Rand, lines: number): Buffer {
  const parts: Buffer[] = [];
  const ptr = () => `0x${(0x5600 + int(r, 4)).toString(16)}`;
  for (let i = 0; i < lines; i++) {
    const k = r();
    const pre = r() < 0.5 ? `${r() < 0.5 ? 'IN' : 'OUT'} ${ptr()}` : `io: ${['IN', 'OUT', 'OUT(START)', 'OUT(END)', 'OUT(ERR)'][int(r, 5)]} ${ptr()} (d${int(r, 70000)})`;
    const payload = Buffer.from(Array.from({ length: int(r, 300) }, () => int(r, 256)));
    if (k < 0.6) parts.push(Buffer.from(`${pre} 20261206 04:${String(int(r, 60)).padStart(2, '0')}:00 ${TYPES[int(r, TYPES.length)]} (`), payload, Buffer.from(r() < 0.9 ? ')\n' : '\n'));
    else if (k < 0.7) parts.push(Buffer.from(`${r() < 0.5 ? 'obj: ' : ''}${r() < 0.5 ? 'CREATE' : 'DESTROY'} ${['connection', 'watch', 'transaction'][int(r, 3)]} ${ptr()}\n`));
    else if (k < 0.8) parts.push(Buffer.from(`wrl: dom ${int(r, 9)} garbage\n`));
    else parts.push(payload, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** An oxenstored access log with damage. */
function oxLog(r: Rand, lines: number): Buffer {
  const ops = ['read', 'write', 'w event', 'error', 'newconn', 'endconn', 'commit', 't start', 'debug', 'frobnicate'];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const con = r() < 0.1 ? '=======>' : `${r() < 0.5 ? 'A' : 'D'}${int(r, 1e6)}${r() < 0.3 ? `.${int(r, 1e6)}` : ''}`;
    const data = Array.from({ length: int(r, 250) }, () => String.fromCharCode(32 + int(r, 95))).join('');
    out.push(r() < 0.9 ? `[20261206T03:23:02.${String(int(r, 1000)).padStart(3, '0')}Z]  ${con.padEnd(12)} ${ops[int(r, ops.length)].padEnd(9)} ${data}` : data);
  }
  return Buffer.from(`[20261206T03:23:02.000Z]  A1           newconn   \n${out.join('\n')}\n`, 'latin1');
}

test('xs-trace read of hostile log files: exit 0, no JS stack, bounded memory, every record JSON', (t) => {
  const r = seededRandom(Number(process.env.XEN_SSHM_SEED ?? 0x7ace) >>> 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-trace-hostile-'));
  try {
    const files: Array<[string, Buffer]> = [
      ['c-log', cLog(r, 20_000)],
      ['ox-log', oxLog(r, 20_000)],
      ['random', Buffer.from(Array.from({ length: 300_000 }, () => int(r, 256)))],
      // One line of 8 MiB with no newline, then a real message: the line is skipped, the message read.
      ['long-line', Buffer.concat([Buffer.from('IN 0x1 20261206 04:00:00 WRITE (/a '), Buffer.alloc(8 << 20, 0x61), Buffer.from(')\nIN 0x1 20261206 04:00:01 READ (/b )\n')])],
      // A message followed by 200,000 continuation lines that are not its own.
      ['continuation', Buffer.concat([Buffer.from('IN 0x1 20261206 04:00:00 WRITE (/a v\n'), Buffer.alloc(200_000 * 4, 'xyz\n'), Buffer.from('OUT 0x1 20261206 04:00:00 WRITE (OK )\n')])],
      ['ox-long-line', Buffer.concat([Buffer.from('[20261206T03:23:02.000Z]  A1           write     /a '), Buffer.alloc(8 << 20, 0x62), Buffer.from('\n[20261206T03:23:02.001Z]  A1           rm        /b \n')])],
    ];
    for (const [name, bytes] of files) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes);
      for (const json of [true, false]) {
        const res = xsTrace(['read', ...(json ? ['--json'] : []), '--stats', '--log', file]);
        t.is(res.status, 0, `${name}: ${res.signal ?? ''} ${res.stderr.slice(0, 500)}`);
        t.false(crashed(res.stderr), `${name}: ${res.stderr.slice(0, 2000)}`);
        if (json) {
          const lines = res.stdout.split('\n').filter((l) => l !== '');
          t.true(lines.length > 0, name);
          // Records stay small; the stats line has at most 513 rows per table, keys elided.
          const tooLong = lines.filter((l) => l.length > (l.startsWith('{"kind":"stats"') ? 256 : 80) * 1024);
          t.deepEqual(tooLong.map((l) => l.length), [], `${name}: lines too long`);
          t.true(lines.every((l) => typeof JSON.parse(l) === 'object'), `${name}: not JSON`);
          const recs = lines.map((l) => JSON.parse(l) as { kind: string; type?: string; path?: string; warnings?: Array<{ code: string }> });
          if (name === 'long-line') {
            t.true(recs.some((x) => x.warnings?.some((w) => w.code === 'unparsed-line')));
            t.true(recs.some((x) => x.kind === 'request' && x.type === 'READ' && x.path === '/b'), 'the message after the long line is read');
          }
          if (name === 'ox-long-line') t.true(recs.some((x) => x.kind === 'request' && x.type === 'RM' && x.path === '/b'));
          if (name === 'continuation') t.true(recs.some((x) => x.kind === 'reply' && x.type === 'WRITE'), 'the reply after the junk is read and paired');
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile command lines: usage errors exit 2, failures 1, typed and short, for every mode', async (t) => {
  const long = 'Z'.repeat(20_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-trace-hostile-cli-'));
  // A Unix socket served by this process: not a xenstore daemon.
  const sock = path.join(dir, 'not-xenstored');
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(sock, () => r()));
  try {
    const env = { ...process.env, XENSTORED_PATH: sock };
    const usage: string[][] = [
      ['--type', long, '--', 'true'],
      ['--conn', '-1', '--', 'true'],
      ['--domain', '99999', '--', 'true'],
      ['--domain', long, '--', 'true'],
      ['--max-value', '1e999', '--', 'true'],
      ['--interval', '5', '--', 'true'],
      ['--stats', '--interval', '0', '--', 'true'],
      ['--stats', '--interval', long, '--', 'true'],
      [`--${long}`],
      ['attach', '--pid', long],
      ['attach', '--pid', '0'],
      ['attach', '--rotate-size', long],
      ['attach', '--rotate-size', '1K'],
      ['attach', '--quiet'],
      ['detach', '--pid', 'x'],
      ['read'],
      ['read', '--stats', '--interval', '1', '/dev/null'],
    ];
    for (const args of usage) {
      const r = xsTrace(args, env);
      t.is(r.status, 2, `${args.join(' ').slice(0, 60)}: ${r.stderr.slice(0, 300)}`);
      t.false(crashed(r.stderr + r.stdout), args.join(' ').slice(0, 60));
      // A usage error prints the usage too: a few KiB at most, whatever the input.
      t.true(r.stderr.length < 8000, `${args.join(' ').slice(0, 60)}: ${r.stderr.length} bytes`);
    }
    const failures: string[][] = [
      ['attach'],
      ['attach', '--upstream', path.join(dir, 'missing')],
      ['attach', '--upstream', `/nonexistent/${long}`],
      ['attach', '--pid', String(process.pid)],
      ['detach'],
      ['read', `/nonexistent/${long}`],
      ['read', dir],
      ['read', '/dev/null', '-o', `/nonexistent/${long}`],
      ['--upstream', `/nonexistent/${long}`, '--', 'true'],
      ['--listen', `/nonexistent/dir/${long.slice(0, 50)}`],
    ];
    for (const args of failures) {
      for (const json of [false, true]) {
        // --json after the subcommand, before any `--` (what follows `--` is the command's).
        const sub = ['attach', 'detach', 'read'].includes(args[0]) ? 1 : 0;
        const r = xsTrace(json ? [...args.slice(0, sub), '--json', ...args.slice(sub)] : args, env);
        t.is(r.status, 1, `${args.join(' ').slice(0, 80)}: ${r.stderr.slice(0, 300)} ${r.stdout.slice(0, 300)}`);
        t.false(crashed(r.stderr + r.stdout), `${args.join(' ').slice(0, 80)}: ${r.stderr}`);
        t.true(r.stderr.length + r.stdout.length < 2000, `${args.join(' ').slice(0, 60)}: ${r.stderr.length + r.stdout.length} bytes`);
        if (json) t.like(JSON.parse(r.stdout), { ok: false, error: { kind: 'trace' } });
      }
    }
    const notDaemon = xsTrace(['attach'], env);
    t.regex(notDaemon.stderr, /is neither xenstored nor oxenstored|ESRCH|no process listens/);
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
