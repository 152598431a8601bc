/**
 * The differential runner: the same seeded requests, in lockstep, to C xenstored and to the
 * in-memory server, from several connections; after each request every connection is synced
 * so that all its watch events have arrived, and what each connection received (replies and
 * events, in order) must be identical on both sides.
 */
import { seededRandom } from '../../xenstore-wire/server';
import { MessageType } from '../../xenstore-wire/constants';
import { OpGenerator, Op } from './diff-ops';
import { RawConn, showFrame } from './wire';

export interface Side {
  name: string;
  socketPath: string;
  /** Per connection index, another socket (a guest's) to use instead of socketPath. */
  connSockets?: Record<number, string>;
}

export interface Mismatch {
  index: number;
  op: string;
  conn: number;
  reference: string[];
  candidate: string[];
}

export interface DiffResult {
  ops: number;
  requests: number;
  mismatches: Mismatch[];
  /** How many requests of each type were sent. */
  byType: Record<string, number>;
  /** Watch events received and compared, and replies of each kind (type name or errno). */
  events: number;
  outcomes: Record<string, number>;
  ms: number;
}

const TIMEOUT_MS = 5000;

function describeOp(op: Op): string {
  if (op.reconnect) return `conn${op.conn} RECONNECT`;
  return `conn${op.conn} ${showFrame({ type: op.type, reqId: 0, txId: op.txId, payload: op.payload })}`;
}

async function send(c: RawConn, op: Op): Promise<{ type: number; payload: Buffer } | 'closed' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), TIMEOUT_MS)));
  try {
    const reply = await Promise.race([c.request(op.type, op.payload, op.txId), timeout]);
    if (reply === 'timeout') return reply;
    return { type: reply.type, payload: reply.payload };
  } catch {
    return 'closed';
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `count` generated requests against both sides. Stops at the first mismatch unless
 * `keepGoing` (for investigation), in which case it resynchronises by reconnecting nothing:
 * later mismatches may then be consequences of the first.
 */
export async function runDifferential(
  reference: Side,
  candidate: Side,
  opts: {
    seed: number;
    count: number;
    conns: number;
    fakeDomains: number[];
    keepGoing?: boolean;
    history?: number;
    onOp?: (index: number, op: string, reply: string) => void;
    onSend?: (index: number, op: string) => void;
    /** Connection indexes that are guests (their sockets given by Side.connSockets). */
    guestConns?: number[];
  },
): Promise<DiffResult> {
  const started = Date.now();
  const rnd = seededRandom(opts.seed);
  const gen = new OpGenerator(rnd, opts.conns, opts.fakeDomains, new Set(opts.guestConns ?? []));
  const path = (side: Side, i: number) => side.connSockets?.[i] ?? side.socketPath;
  const ref: RawConn[] = [];
  const cand: RawConn[] = [];
  for (let i = 0; i < opts.conns; i++) {
    ref.push(await RawConn.open(path(reference, i)));
    cand.push(await RawConn.open(path(candidate, i)));
  }
  const mismatches: Mismatch[] = [];
  const byType: Record<string, number> = {};
  const recent: string[] = [];
  let requests = 0;
  let events = 0;
  const outcomes: Record<string, number> = {};
  for (let index = 0; index < opts.count; index++) {
    const op = gen.next();
    const desc = describeOp(op);
    opts.onSend?.(index, desc);
    recent.push(desc);
    if (recent.length > (opts.history ?? 25)) recent.shift();
    let refReply: { type: number; payload: Buffer } | 'closed' | 'timeout' | null = null;
    if (op.reconnect) {
      ref[op.conn].close();
      cand[op.conn].close();
      await Promise.all([ref[op.conn].waitClosed(), cand[op.conn].waitClosed()]);
      ref[op.conn] = await RawConn.open(path(reference, op.conn));
      cand[op.conn] = await RawConn.open(path(candidate, op.conn));
    } else {
      requests++;
      const key = MessageType[op.type] ?? `TYPE${op.type}`;
      byType[key] = (byType[key] ?? 0) + 1;
      const [r, c] = await Promise.all([send(ref[op.conn], op), send(cand[op.conn], op)]);
      refReply = r;
      if ((r === 'closed') !== (c === 'closed') || (r === 'timeout') !== (c === 'timeout')) {
        mismatches.push({ index, op: desc, conn: op.conn, reference: [String(r === 'closed' || r === 'timeout' ? r : 'reply')], candidate: [String(c === 'closed' || c === 'timeout' ? c : 'reply')] });
      }
      if (r === 'closed' || c === 'closed') {
        // The daemon dropped the connection (oversized request): open fresh ones on both.
        ref[op.conn].close();
        cand[op.conn].close();
        ref[op.conn] = await RawConn.open(path(reference, op.conn));
        cand[op.conn] = await RawConn.open(path(candidate, op.conn));
      }
    }
    await Promise.all([...ref, ...cand].map((c) => c.sync()));
    for (let i = 0; i < opts.conns; i++) {
      const frames = ref[i].take();
      for (const f of frames) {
        if (f.type === MessageType.WATCH_EVENT) events++;
        else {
          const k = f.type === MessageType.ERROR ? f.payload.toString('latin1').replace(/\0$/, '') : (MessageType[f.type] ?? `TYPE${f.type}`);
          outcomes[k] = (outcomes[k] ?? 0) + 1;
        }
      }
      const a = frames.map(showFrame);
      const b = cand[i].take().map(showFrame);
      if (a.length !== b.length || a.some((x, k) => x !== b[k])) {
        mismatches.push({ index, op: desc, conn: i, reference: a, candidate: b });
      }
    }
    opts.onOp?.(index, desc, refReply === null ? '' : typeof refReply === 'string' ? refReply : showFrame({ ...refReply, reqId: 0, txId: 0 }));
    gen.observe(op, refReply === null || refReply === 'closed' || refReply === 'timeout' ? null : refReply);
    if (mismatches.length > 0 && !opts.keepGoing) {
      mismatches[0].op = `${mismatches[0].op}\n  recent requests:\n    ${recent.join('\n    ')}`;
      break;
    }
  }
  for (const c of [...ref, ...cand]) c.close();
  return { ops: opts.count, requests, mismatches, byType, events, outcomes, ms: Date.now() - started };
}
