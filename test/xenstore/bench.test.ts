/**
 * Keeps `npm run bench:xenstore` working: the same code paths with tiny counts, against a real
 * C xenstored, with the libxenstore program really compiled, pyxs really run, and fresh
 * processes really started for the cold figures. Figures are not judged here (benchmarks write
 * bench/results; timed unit tests would only measure the machine's load).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchCold, benchEndpoint, buildLibxsBench, markdown, stats } from '../../bench/xenstore';
import { projectRoot, startDaemon } from '../harness/daemons';

test('stats: mean, median and nearest-rank p99 in µs', (t) => {
  const ns = Array.from({ length: 100 }, (_, i) => (i + 1) * 1000); // 1..100 µs
  t.deepEqual(stats(ns), { samples: 100, meanUs: 50.5, medianUs: 50, p99Us: 99, opsPerSec: 20000 });
  t.is(stats([5000]).p99Us, 5);
});

test('the benchmark runs every client warm and cold against one daemon and reports ratios', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-benchtest-'));
  const d = await startDaemon('cxenstored');
  try {
    const libxsBinary = await buildLibxsBench(work);
    const warm = await benchEndpoint('C xenstored (smoke)', d.socketPath, {
      libxsBinary,
      daemonPid: d.pid,
      rounds: 1,
      reads: 100,
      writes: 20,
      pyxsReads: 20,
      batch: 200,
      batchesPerRound: 2,
    });
    t.is(warm.client.readLatency.samples, 100);
    t.is(warm.libxenstore.readLatency.samples, 100);
    t.is(warm.libxenstore.writeLatency.samples, 20);
    t.is(warm.pyxs.readLatency.samples, 20);
    t.is(warm.client.pipelinedRead.batches, 2);
    for (const s of [warm.client.readLatency, warm.client.writeLatency, warm.libxenstore.readLatency, warm.pyxs.readLatency]) {
      t.true(s.medianUs > 0 && s.p99Us >= s.medianUs && s.meanUs > 0);
    }
    t.true(warm.ratios.readMeanVsLibxenstore > 0);
    t.true(warm.ratios.pipelinedVsLibxenstoreSequential > 0);

    const cold = await benchCold(d.socketPath, { libxsBinary, processes: 2, requests: 10 });
    for (const c of [cold.client, cold.libxenstore, cold.pyxs]) {
      t.is(c.processes, 2);
      t.is(c.read.samples, 20);
      t.is(c.first.samples, 2);
    }
    t.true(cold.client.requireMs! > 0 && cold.client.connectMs! > 0);
    t.true(cold.readMeanVsLibxenstore > 0);

    const md = markdown([{ label: 'C xenstored (smoke)', loadavgBefore: '0', warm, cold }], { date: 'now', node: process.version, cpus: 2, loadavg: '0' });
    t.regex(md, /\| libxenstore \(C\) \| warm sequential read \|/);
    t.regex(md, /\| pyxs \| cold: first 10 reads of 2 processes \|/);
    t.regex(md, /Targets: warm mean sequential read at most 1\.0/);
  } finally {
    await d.stop();
    rmSync(work, { recursive: true, force: true });
  }
});

test('the bench command parses its options (node:util parseArgs) and refuses bad ones', (t) => {
  const script = join(projectRoot(), 'dist', 'bench', 'xenstore.js');
  t.regex(execFileSync(process.execPath, [script, '--help'], { encoding: 'utf8' }), /--cold-processes N/);
  const bad = (args: string[]) => {
    try {
      execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', stdio: 'pipe' });
      return '';
    } catch (e) {
      return String((e as { stderr: string }).stderr);
    }
  };
  t.regex(bad(['--trials', '0']), /--trials must be a positive integer/);
  t.regex(bad(['--no-such-option']), /Unknown option/);
});
