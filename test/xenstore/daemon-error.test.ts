/**
 * The daemon's ERROR answers are made without a stack trace (their frames would name only the
 * client's read callback; capturing them was most of the cost of an ENOENT answer, see
 * docs/notes/scale-wave2.md). What a caller sees must not change: a typed XenstoreError with
 * the errno name, the request and the path, and the process's Error.stackTraceLimit as it was,
 * also when the answers come in a pipelined burst mixed with successful replies. On Debian's
 * C xenstored 4.17.
 */
import test from 'ava';
import { connect, XenstoreError } from '../../xenstore-wire';
import { startDaemon } from '../harness/daemons';

test('C xenstored 4.17: ERROR answers are typed XenstoreErrors and leave Error.stackTraceLimit as it was', async (t) => {
  const d = await startDaemon('cxenstored');
  const before = Error.stackTraceLimit;
  try {
    const xs = await connect({ path: d.socketPath });
    await xs.write('/perf/present', 'yes');
    // A pipelined burst: absent and present nodes interleaved.
    const paths = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? '/perf/present' : `/perf/absent-${i}`));
    const settled = await Promise.allSettled(paths.map((p) => xs.read(p)));
    settled.forEach((r, i) => {
      if (paths[i] === '/perf/present') {
        t.is(r.status, 'fulfilled');
        if (r.status === 'fulfilled') t.is(r.value.toString(), 'yes');
        return;
      }
      t.is(r.status, 'rejected');
      if (r.status !== 'rejected') return;
      const e = r.reason as XenstoreError;
      t.true(e instanceof XenstoreError);
      t.like(e, { name: 'XenstoreError', kind: 'xenstore', code: 'ENOENT', op: 'READ', path: paths[i], source: 'daemon' });
      t.is(e.message, `ENOENT: READ ${paths[i]}`);
      t.is(e.stack, `XenstoreError: ENOENT: READ ${paths[i]}`);
      t.deepEqual(JSON.parse(JSON.stringify(e)), { name: 'XenstoreError', kind: 'xenstore', code: 'ENOENT', message: `ENOENT: READ ${paths[i]}`, errno: e.errno, op: 'READ', path: paths[i], source: 'daemon' });
    });
    t.is(Error.stackTraceLimit, before);
    // Inside a transaction the error names it.
    await t.throwsAsync(
      xs.transaction(async (tx) => {
        try {
          await tx.read('/perf/absent-tx');
        } catch (e) {
          t.like(e, { code: 'ENOENT', op: 'READ', path: '/perf/absent-tx', txId: tx.txId });
          throw e;
        }
      }),
      { instanceOf: XenstoreError, code: 'ENOENT' },
    );
    // Errors this process makes itself still carry their stack.
    t.true((new Error('mine').stack ?? '').split('\n').length > 1);
    t.is(Error.stackTraceLimit, before);
    await xs.close();
  } finally {
    await d.stop();
  }
});
