/**
 * Keeps `npm run bench:xenstore` working: the same code path with tiny counts, against a real
 * C xenstored, with the libxenstore program really compiled and pyxs really run.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchEndpoint, buildLibxsBench, markdown } from '../../bench/xenstore';
import { startDaemon } from '../harness/daemons';

test('the benchmark runs every client against one daemon and reports ratios', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'xen-sshm-benchtest-'));
  const d = await startDaemon('cxenstored');
  try {
    const libxsBinary = await buildLibxsBench(work);
    const r = await benchEndpoint('C xenstored (smoke)', d.socketPath, {
      libxsBinary,
      daemonPid: d.pid,
      rounds: 1,
      reads: 100,
      writes: 20,
      pyxsReads: 20,
      batch: 200,
      batchesPerRound: 2,
    });
    t.is(r.client.readLatency.samples, 100);
    t.is(r.libxenstore.readLatency.samples, 100);
    t.is(r.libxenstore.writeLatency.samples, 20);
    t.is(r.pyxs.readLatency.samples, 20);
    t.is(r.client.pipelinedRead.batches, 2);
    for (const s of [r.client.readLatency, r.client.writeLatency, r.libxenstore.readLatency, r.pyxs.readLatency]) {
      t.true(s.medianUs > 0 && s.p99Us >= s.medianUs);
    }
    t.true(r.ratios.readLatencyVsLibxenstore > 0);
    t.true(r.ratios.pipelinedVsLibxenstoreSequential > 0);
    const md = markdown([r], { date: 'now', node: process.version, cpus: 2, loadavg: '0' });
    t.regex(md, /\| libxenstore \(C\) \| sequential read \|/);
    t.regex(md, /Targets: sequential read latency at most 1\.0/);
  } finally {
    await d.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
