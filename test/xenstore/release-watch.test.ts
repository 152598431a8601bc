/**
 * Why the client asks for XENSTORE_SERVER_FEATURE_WATCHDEPTH before watching
 * `@releaseDomain/<domid>`: Debian's C xenstored 4.17 accepts such a watch (it checks only the
 * length of `@` paths) and fires its initial event, but a domain's release fires `@releaseDomain`
 * only, so the per-domain watch would wait forever. Shown here on the real daemon with a fake
 * domain that is introduced and released; the client instead ends its watch with ENOSYS.
 */
import test from 'ava';
import { connect as netConnect } from 'node:net';
import { connect, MessageType as T, XenstoreError } from '../../xenstore-wire';
import { startDaemon } from '../harness/daemons';
import { FixtureReader, SeenFrame } from './helpers/fake-peer';
import { frameBytes, nul } from './helpers/wire';
import { nextEvent, withTimeout } from './helpers/async';

const DOMID = 7;

test('C xenstored 4.17: a raw @releaseDomain/<domid> watch is accepted but never fires; the client refuses it typed', async (t) => {
  const d = await startDaemon('cxenstored', { fakeDomains: [DOMID] });
  try {
    const xs = await connect({ path: d.socketPath });
    await xs.introduce(DOMID, 100, 1);

    // An observer speaking raw frames, so the daemon gets exactly these two watches.
    const sock = netConnect(d.socketPath);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const seen: SeenFrame[] = [];
    const reader = new FixtureReader();
    let notify: (() => void) | null = null;
    sock.on('data', (c: Buffer) => {
      seen.push(...reader.push(c));
      notify?.();
    });
    const until = (what: string, cond: () => boolean) =>
      withTimeout(
        new Promise<void>((r) => {
          notify = () => cond() && r();
          notify();
        }),
        5000,
        what,
      );
    const events = () => seen.filter((f) => f.type === T.WATCH_EVENT).map((f) => f.payload.toString('latin1'));
    sock.write(frameBytes(T.WATCH, 1, 0, nul(`@releaseDomain/${DOMID}`, 'one')));
    sock.write(frameBytes(T.WATCH, 2, 0, nul('@releaseDomain', 'all')));
    await until('both watches acknowledged and fired', () => events().length === 2);
    t.deepEqual(
      seen.filter((f) => f.type === T.WATCH).map((f) => f.payload.toString('latin1')),
      ['OK\0', 'OK\0'],
      'both accepted',
    );

    await xs.release(DOMID);
    await until('@releaseDomain to fire', () => events().length === 3);
    // A READ round trip after the event: anything the daemon fired for the release is in by now.
    sock.write(frameBytes(T.GET_DOMAIN_PATH, 3, 0, nul('0')));
    await until('the round trip', () => seen.some((f) => f.reqId === 3));
    t.deepEqual(events(), [`@releaseDomain/${DOMID}\0one\0`, '@releaseDomain\0all\0', '@releaseDomain\0all\0']);
    sock.destroy();

    const w = xs.watchDomainRelease(DOMID);
    const e = await t.throwsAsync(w.ready, { instanceOf: XenstoreError });
    t.is(e?.code, 'ENOSYS');
    t.is(e?.source, 'client');
    t.regex(e?.message ?? '', /XENSTORE_SERVER_FEATURE_WATCHDEPTH/);
    // The fallback the error suggests works: @releaseDomain fires on the next release.
    const all = xs.watch('@releaseDomain');
    t.is((await nextEvent(all)).path, '@releaseDomain');
    await xs.introduce(DOMID, 100, 1);
    await xs.release(DOMID);
    t.is((await nextEvent(all)).path, '@releaseDomain');
    await xs.close();
  } finally {
    await d.stop();
  }
});
