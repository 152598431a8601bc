/**
 * `--stats` totals equal the requests printed, in text mode (the lines a person reads), for each
 * source at once: an attach on the daemon, a proxy in front of it, and `read` of the daemon's
 * -T file afterwards; on C xenstored 4.17 and 4.20 with test-xenstore of the same release as the
 * workload (81 requests: transactions, a conflict, many paths).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startDaemon, XEN_RELEASES } from '../harness/daemons';
import { startAttach } from './attach-helpers';
import { listenXsTrace, runXsTrace, tmpDir } from './helpers';
import { testXenstore } from './scenarios';

/** Request lines of text output: `TIME #CONN[/dN] -> TYPE ...`. */
const REQUEST_LINE = /^\S+ +#\d+(?:\/d\d+)? +-> /;
/** The totals line of a text stats table. */
const TOTALS = /^xs-trace stats \(whole trace over [^)]*\): (\d+) requests, (\d+) watch events, (\d+) errors(?:;.*)?$/m;

interface Counted {
  printed: number;
  events: number;
  stats: { requests: number; events: number };
}

function count(text: string): Counted {
  const lines = text.split('\n');
  const m = TOTALS.exec(text);
  if (!m) throw new Error(`no stats totals line in:\n${text.slice(-2000)}`);
  return {
    printed: lines.filter((l) => REQUEST_LINE.test(l)).length,
    events: lines.filter((l) => /^\S+ +#\d+(?:\/d\d+)? +<~ /.test(l)).length,
    stats: { requests: Number(m[1]), events: Number(m[2]) },
  };
}

for (const release of XEN_RELEASES) {
  test(`C xenstored ${release}: --stats totals are the requests printed, for attach, the proxy and read`, async (t) => {
    const d = await startDaemon('cxenstored', { trace: true, release });
    const dir = tmpDir(`xs-trace-stats-printed-${release}-`);
    try {
      const att = await startAttach(['--upstream', d.socketPath, '--stats', '--dir', dir]);
      const proxy = await listenXsTrace(path.join(dir, 'proxy.sock'), ['--upstream', d.socketPath, '--stats', '-o', path.join(dir, 'proxy.txt')]);
      const o = await testXenstore(proxy.socketPath, release);
      t.true(o.ok, o.detail);
      const p = await proxy.stop();
      t.is(p.code, 0, p.stderr);
      await new Promise((r) => setTimeout(r, 300));
      const a = await att.stop('SIGINT');
      t.is(a.code, 0, a.stderr);

      // test-xenstore again, directly: the daemon logs into its -T file again after the attach.
      const again = await testXenstore(d.socketPath, release);
      t.true(again.ok, again.detail);
      const r = await runXsTrace(['read', '--stats', d.tracePath!]);
      t.is(r.code, 0, r.stderr);

      const proxied = count(fs.readFileSync(path.join(dir, 'proxy.txt'), 'utf8'));
      const attached = count(a.stdout);
      const read = count(r.stdout);
      t.log(`test-xenstore ${release}: proxy printed ${proxied.printed}, attach ${attached.printed}, read ${read.printed} requests`);
      for (const [what, c] of [['proxy', proxied], ['attach', attached], ['read', read]] as const) {
        t.true(c.printed > 50, `${what}: ${c.printed} requests printed`);
        t.deepEqual(c.stats, { requests: c.printed, events: c.events }, `${what}: the totals are what it printed`);
      }
      t.is(attached.printed, proxied.printed, 'the attach printed each request the proxy passed, once');
      t.true(read.printed >= proxied.printed, 'the -T file has the second run (and the harness start-up)');
    } finally {
      await d.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
