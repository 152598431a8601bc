/**
 * Development runner for the differential test (not a test): many seeds, one release, dom0
 * only or with guests, and either the in-memory server or another real daemon as candidate.
 *
 *   node dist/test/server/diff-run.js --release 4.20 --seeds 1-20 --ops 12000 [--guests]
 *     [--candidate memory|cxenstored-4.17] [--history 40] [--log=CONN|-1] [--show N]
 *
 * Prints, per seed, how many requests ran and the first difference (with recent requests).
 */
import { parseArgs } from 'node:util';
import { startServer } from '../../xenstore-wire/server';
import { isXenRelease as isServerRelease } from '../../xenstore-wire/server/release';
import { startDaemon, XenRelease, XEN_RELEASES } from '../harness/daemons';
import { runDifferential, Side } from './differential';
import { cxenstoredWithGuests, GuestTarget, inMemoryWithGuests, SMALL_QUOTAS, SMALL_QUOTA_ARGS } from './guest-setup';

const FAKE_DOMAINS = [1, 2, 3];

function seedList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m) for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    else out.push(Number(part));
  }
  return out;
}

async function guestSide(t: GuestTarget): Promise<Side> {
  return { name: t.label, socketPath: t.socketPath, connSockets: { 2: await t.guestSocket(1), 3: await t.guestSocket(2) } };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      release: { type: 'string', default: '4.20' },
      seeds: { type: 'string', default: '1' },
      ops: { type: 'string', default: '12000' },
      guests: { type: 'boolean', default: false },
      candidate: { type: 'string', default: 'memory' },
      history: { type: 'string', default: '30' },
      /** Go on after the first difference; print the first N (default 1). */
      show: { type: 'string', default: '1' },
      /** Print every request and C's reply, for one connection (or all: -1). */
      log: { type: 'string' },
    },
  });
  const release = values.release as XenRelease;
  if (!XEN_RELEASES.includes(release) || !isServerRelease(release)) throw new Error(`bad --release ${values.release}`);
  let total = 0;
  let failed = 0;
  for (const seed of seedList(values.seeds!)) {
    const candRelease = values.candidate === 'cxenstored-4.17' ? '4.17' : values.candidate === 'cxenstored-4.20' ? '4.20' : undefined;
    let ref: Side;
    let cand: Side;
    const stops: (() => Promise<void>)[] = [];
    if (values.guests) {
      const r = await cxenstoredWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTA_ARGS, release);
      const c = candRelease
        ? await cxenstoredWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTA_ARGS, candRelease)
        : await inMemoryWithGuests([1, 2], FAKE_DOMAINS, SMALL_QUOTAS, release);
      stops.push(() => r.stop(), () => c.stop());
      ref = await guestSide(r);
      cand = await guestSide(c);
    } else {
      const r = await startDaemon('cxenstored', { fakeDomains: FAKE_DOMAINS, release });
      stops.push(() => r.stop());
      ref = { name: `C ${release}`, socketPath: r.socketPath };
      if (candRelease) {
        const c = await startDaemon('cxenstored', { fakeDomains: FAKE_DOMAINS, release: candRelease });
        stops.push(() => c.stop());
        cand = { name: `C ${candRelease}`, socketPath: c.socketPath };
      } else {
        const s = await startServer({ domains: FAKE_DOMAINS, release });
        stops.push(() => s.close());
        cand = { name: 'in-memory', socketPath: s.socketPath };
      }
    }
    try {
      const r = await runDifferential(ref, cand, {
        seed,
        count: Number(values.ops),
        conns: 4,
        fakeDomains: FAKE_DOMAINS,
        guestConns: values.guests ? [2, 3] : undefined,
        history: Number(values.history),
        keepGoing: Number(values.show) > 1,
        onOp: values.log === undefined ? undefined : (i, op, reply) => {
          if (values.log === '-1' || op.startsWith(`conn${values.log} `)) console.log(`#${i} ${op} -> ${reply}`);
        },
      });
      total += r.requests;
      if (r.mismatches.length === 0) {
        console.log(`seed ${seed}: ${r.requests} requests, ${r.events} events, no difference (${r.ms} ms)`);
      } else {
        failed++;
        for (const m of r.mismatches.slice(0, Number(values.show))) {
          console.log(`seed ${seed}: difference at request #${m.index} on conn${m.conn}: ${m.op}`);
          console.log(`  reference: ${JSON.stringify(m.reference)}\n  candidate: ${JSON.stringify(m.candidate)}`);
        }
      }
    } finally {
      for (const s of stops.reverse()) await s();
    }
  }
  console.log(`total: ${total} requests compared, ${failed} seeds with a difference`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
