/**
 * Golden output: a scripted session (golden-client.ts) run as `xs-trace -- node ...` against
 * C xenstored, traced in human and JSON form, must match the checked-in fixtures with times
 * and latencies normalised. XS_TRACE_UPDATE_GOLDEN=1 rewrites the fixtures instead.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunningDaemon, startDaemon } from '../harness/daemons';
import { runXenstoreCli } from '../harness/clients';
import { startServer } from '../../xenstore-wire/server';
import { FIXTURES, normaliseHuman, normaliseJson, runXsTrace, tmpDir } from './helpers';

const CLIENT = path.join(__dirname, 'golden-client.js');
const HUMAN = path.join(FIXTURES, 'golden-session.txt');
const JSONL = path.join(FIXTURES, 'golden-session.jsonl');
const HUMAN_422 = path.join(FIXTURES, 'golden-xen422.txt');
const JSONL_422 = path.join(FIXTURES, 'golden-xen422.jsonl');
const update = process.env.XS_TRACE_UPDATE_GOLDEN === '1';

let daemon: RunningDaemon;
let dir: string;

test.before(async () => {
  daemon = await startDaemon('cxenstored');
  dir = tmpDir('xs-trace-golden-');
});

test.after.always(async () => {
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs the scripted session under xs-trace on a fresh subtree; returns the trace text. */
async function traced(extra: string[]): Promise<string> {
  const out = path.join(dir, `trace-${extra.join('') || 'human'}`);
  // The same starting state every time: the session's subtree does not exist.
  await runXenstoreCli(daemon, 'xenstore-write', ['/xs-trace-golden', '']);
  const rm = await runXenstoreCli(daemon, 'xenstore-rm', ['/xs-trace-golden']);
  if (rm.code !== 0) throw new Error(`xenstore-rm: ${rm.stderr}`);
  const r = await runXsTrace(['--upstream', daemon.socketPath, '--utc', '-o', out, ...extra, '--', process.execPath, CLIENT]);
  if (r.code !== 0) throw new Error(`xs-trace exited with ${r.code}: ${r.stderr}`);
  return fs.readFileSync(out, 'utf8');
}

test.serial('human output of the scripted session matches the fixture', async (t) => {
  const got = normaliseHuman(await traced([]));
  if (update) fs.writeFileSync(HUMAN, got);
  t.is(got, fs.readFileSync(HUMAN, 'utf8'));
  // The times were really there, with microseconds, before normalising.
  t.regex(await traced([]), /^\d\d:\d\d:\d\d\.\d{6} #1 {3}-- connected$/m);
});

test.serial('JSON output of the scripted session matches the fixture', async (t) => {
  const raw = await traced(['--json']);
  const got = normaliseJson(raw);
  if (update) fs.writeFileSync(JSONL, got.map((o) => JSON.stringify(o)).join('\n') + '\n');
  const want = normaliseJson(fs.readFileSync(JSONL, 'utf8'));
  t.deepEqual(got, want);
  for (const line of raw.trim().split('\n')) {
    const o = JSON.parse(line) as { ts: number; time: string; latencyUs?: number };
    t.true(Number.isInteger(o.ts) && o.ts > 1.6e15, 'microseconds since the epoch');
    t.regex(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    if (o.latencyUs !== undefined) t.true(Number.isInteger(o.latencyUs) && o.latencyUs >= 0);
  }
});

test.serial('Xen 4.21-4.22 messages answered by the in-memory xenstored (--release 4.22): decoded, human and JSON, match the fixtures', async (t) => {
  const server = await startServer({ rundir: path.join(dir, 'inmem-422'), release: '4.22', domains: [1] });
  try {
    for (const json of [false, true]) {
      const out = path.join(dir, `new-types-${json}`);
      const r = await runXsTrace(['--upstream', server.socketPath, '--utc', '-o', out, ...(json ? ['--json'] : []), '--', process.execPath, CLIENT, 'new-types']);
      t.is(r.code, 0, r.stderr);
      const raw = fs.readFileSync(out, 'utf8');
      const file = json ? JSONL_422 : HUMAN_422;
      if (json) {
        const got = normaliseJson(raw);
        if (update) fs.writeFileSync(file, got.map((o) => JSON.stringify(o)).join('\n') + '\n');
        t.deepEqual(got, normaliseJson(fs.readFileSync(file, 'utf8')));
        t.deepEqual((got as Array<{ warnings: unknown[] }>).flatMap((o) => o.warnings), [], 'every message understood');
      } else {
        const got = normaliseHuman(raw);
        if (update) fs.writeFileSync(file, got);
        t.is(got, fs.readFileSync(file, 'utf8'));
      }
    }
  } finally {
    await server.close();
  }
});
