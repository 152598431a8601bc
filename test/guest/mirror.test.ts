/**
 * The guest program's xenstore side, as a guest: `xen-sshm apply` (the real manager, simulated
 * host) writes the mirrors into Debian's C xenstored and into the in-memory xenstored, dom0
 * adds the doorbell keys of docs/doorbells.md (as the manager will), and the program, connected
 * *as the guest domain* (C xenstored through xs-ring-bridge, the in-memory server's domain
 * socket: unprivileged, relative paths resolving to the guest's home), reads and reports them.
 * Then every malformed mirror value, and a scripted peer sending hostile replies: each ends in
 * exit status 1 and one line naming the key or the protocol fault; never a crash, a hang or a
 * second request in flight.
 */
import test from 'ava';
import { connect, MessageType } from '../../xenstore-wire';
import { startServer } from '../../xenstore-wire/server';
import { introduceGuests } from '../server/guest-setup';
import { config, startEnv, type Env, type StoreKind } from '../manager/helpers';
import { seededRandom } from '../helpers/prng';
import { frame, hostProgram, pathOf, runProgram, ScriptedPeer, treeAnswer, type Answer, type SeenRequest } from './helpers';

const OWNER_CFG = 'name = "vm1"\nstatic_shm = [ "id=ID1, begin=0x50000000, size=0x10000, role=owner" ]\n';
const BORROWER_CFG = (name: string) => `name = "${name}"\nstatic_shm = [ "id=ID1, begin=0x60000000, size=0x8000, offset=0x4000, role=borrower" ]\n`;

interface Setup {
  env: Env;
  d1: number;
  d2: number;
  d3: number;
  guestSocket(domid: number): Promise<string>;
}

/** vm1 owns ID1, vm2 and vm3 borrow part of it; dom0 gives vm2 port 5 and vm3 port 6 of vm1. */
async function setup(kind: StoreKind): Promise<Setup> {
  const env = await startEnv(kind);
  const d1 = await env.vm('vm1');
  const d2 = await env.vm('vm2');
  const d3 = await env.vm('vm3');
  const m = env.manager();
  await m.apply({ config: config(OWNER_CFG) });
  await m.apply({ config: config(BORROWER_CFG('vm2')), allowSetTarget: true });
  await m.apply({ config: config(BORROWER_CFG('vm3')), allowSetTarget: true });
  // dom0's doorbell keys (docs/doorbells.md), under the manager's mirrors.
  for (const [b, port] of [[d2, 5], [d3, 6]]) {
    await env.xs.write(`/local/domain/${d1}/shared_mem/ID1/doorbells/${b}`, String(port));
    await env.xs.write(`/local/domain/${b}/shared_mem/ID1/owner`, String(d1));
    await env.xs.write(`/local/domain/${b}/shared_mem/ID1/doorbell`, String(port));
  }
  const guestSocket = (domid: number): Promise<string> => (env.daemon ? env.daemon.guestSocket(domid) : env.server!.domainSocketPath(domid));
  return { env, d1, d2, d3, guestSocket };
}

function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void }, stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  t.is(lines.length, 1, stderr);
  return lines[0];
}

for (const kind of ['cxenstored', 'memory'] as StoreKind[]) {
  const label = kind === 'memory' ? 'the in-memory xenstored' : 'C xenstored';

  test(`as each guest of ${label}: info reports the mirror xen-sshm apply wrote and dom0's doorbell keys`, async (t) => {
    const s = await setup(kind);
    t.teardown(() => s.env.close());
    hostProgram();
    const info = async (domid: number) => runProgram(['info', 'ID1', '--xenstore', await s.guestSocket(domid)]);

    // Without the toolstack's `domid` key the program reads relative to the guest's home.
    await s.env.xs.rm(`/local/domain/${s.d2}/domid`);
    const b = await info(s.d2);
    t.is(b.code, 0, b.stderr);
    t.is(b.stdout, ['id ID1', 'role borrower', 'begin 0x60000000', 'size 0x8000', 'offset 0x4000', 'prot rw', `owner ${s.d1}`, 'doorbell 5', ''].join('\n'));
    t.is(b.stderr, '');
    const o = await info(s.d1);
    t.is(o.code, 0, o.stderr);
    const lines = o.stdout.trimEnd().split('\n');
    t.deepEqual(lines.slice(0, 7), ['id ID1', `domid ${s.d1}`, 'role owner', 'begin 0x50000000', 'size 0x10000', 'offset 0x0', 'prot rw']);
    t.is(lines.length, 8);
    t.deepEqual(lines[7].split(' ').sort(), ['doorbells', `${s.d2}=5`, `${s.d3}=6`].sort());

    // With it (the toolstack writes /local/domain/<domid>/domid, as libxl does), paths are absolute.
    const c = await info(s.d3);
    t.is(c.code, 0, c.stderr);
    t.true(c.stdout.startsWith(`id ID1\ndomid ${s.d3}\nrole borrower\n`), c.stdout);
    t.true(c.stdout.endsWith(`owner ${s.d1}\ndoorbell 6\n`), c.stdout);
  });

  test(`as each guest of ${label}: choosing and binding the doorbell, refusals, and after release`, async (t) => {
    const s = await setup(kind);
    t.teardown(() => s.env.close());
    hostProgram();
    const as = async (domid: number, ...args: string[]) => runProgram([...args, '--xenstore', await s.guestSocket(domid)]);

    // The borrower goes as far as the evtchn device (absent on this machine: no Xen here).
    let r = await as(s.d2, 'notify', 'ID1');
    t.is(r.code, 1);
    t.regex(oneLine(t, r.stderr), /^xen-sshm-guest: cannot open \/dev\/xen\/evtchn: (ENOENT|EACCES|ENODEV) \(load the xen-evtchn module: modprobe xen-evtchn\)$/);
    // The owner of two doorbells must say which.
    r = await as(s.d1, 'wait', 'ID1');
    t.is(r.code, 2);
    t.is(oneLine(t, r.stderr), `xen-sshm-guest: region ID1 has doorbells for 2 borrowers (d${s.d2}, d${s.d3}): choose one with --peer DOMID`);
    r = await as(s.d1, 'wait', 'ID1', '--peer', '9');
    t.is(r.code, 1);
    t.is(oneLine(t, r.stderr), `xen-sshm-guest: region ID1 has no doorbell for d9: /local/domain/${s.d1}/shared_mem/ID1/doorbells/9 does not exist (ENOENT)`);
    r = await as(s.d1, 'wait', 'ID1', '--peer', String(s.d3));
    t.regex(oneLine(t, r.stderr), /cannot open \/dev\/xen\/evtchn/);
    r = await as(s.d1, 'ping-pong', 'ID1', '--owner', '1', '--port', '5');
    t.is(r.code, 2);
    t.is(oneLine(t, r.stderr), 'xen-sshm-guest: --owner and --port are for a borrower; this domain owns ID1');
    r = await as(s.d2, 'notify', 'ID1', '--peer', '3');
    t.is(oneLine(t, r.stderr), 'xen-sshm-guest: --peer is for the owner; this domain borrows ID1');

    // A borrower that declined its doorbell (no keys): a clear refusal, not a bind.
    await s.env.xs.rm(`/local/domain/${s.d3}/shared_mem/ID1/doorbell`);
    r = await as(s.d3, 'notify', 'ID1');
    t.is(r.code, 1);
    t.is(oneLine(t, r.stderr), `xen-sshm-guest: region ID1 has no doorbell for this domain: /local/domain/${s.d3}/shared_mem/ID1/doorbell does not exist (ENOENT): the owner's region has doorbell=no, or this borrower declined it`);
    r = await as(s.d3, 'info', 'ID1');
    t.is(r.code, 0, r.stderr);
    t.true(r.stdout.endsWith(`owner ${s.d1}\ndoorbell none\n`), r.stdout);

    // Released by dom0: the mirror (and its doorbell keys) are gone for the guest.
    await s.env.manager().release({ domid: s.d2, ids: ['ID1'], force: false });
    r = await as(s.d2, 'info', 'ID1');
    t.is(r.code, 1);
    t.is(oneLine(t, r.stderr), `xen-sshm-guest: no region ID1 in this domain's mirror: /local/domain/${s.d2}/shared_mem/ID1 does not exist (ENOENT): not applied to this domain, or released`);
    // ... while the raw form reads no mirror and goes on to the bind (Xen decides there).
    r = await as(s.d2, 'notify', 'ID1', '--owner', String(s.d1), '--port', '5');
    t.regex(oneLine(t, r.stderr), /^xen-sshm-guest: cannot open \/dev\/xen\/evtchn/);
  });

  test(`as a guest of ${label}: a mirror the guest may not read is refused with EACCES, named`, async (t) => {
    const s = await setup(kind);
    t.teardown(() => s.env.close());
    hostProgram();
    // dom0 gets the perms wrong: the mirror readable by nobody but dom0.
    await s.env.xs.setPerms(`/local/domain/${s.d2}/shared_mem/ID1`, ['n0']);
    const r = await runProgram(['info', 'ID1', '--xenstore', await s.guestSocket(s.d2)]);
    t.is(r.code, 1);
    t.is(oneLine(t, r.stderr), `xen-sshm-guest: xenstore directory /local/domain/${s.d2}/shared_mem/ID1: EACCES (dom0 gives each domain read access to its own mirror only: perms n0 r<domid>)`);
  });
}

// ---- malformed mirror values (in-memory xenstored, one guest) --------------------------------

const M = '/local/domain/2/shared_mem/ID1';
const GOOD: Record<string, string> = { role: 'borrower', begin: '0x60000000', size: '0x8000', offset: '0x4000', prot: 'rw', owner: '1', doorbell: '5' };

interface BadCase {
  what: string;
  set?: Record<string, string | Buffer>;
  drop?: string[];
  owner?: boolean;
  stderr: string;
}

const BAD: BadCase[] = [
  { what: 'an unknown role', set: { role: 'boss' }, stderr: `mirror key ${M}/role is "boss", expected owner or borrower (EINVAL)` },
  { what: 'a begin that is no number', set: { begin: 'zzz' }, stderr: `mirror key ${M}/begin is "zzz", expected a hex number (0x...) (EINVAL)` },
  { what: 'a bare 0x', set: { begin: '0x' }, stderr: `mirror key ${M}/begin is "0x", expected a hex number (0x...) (EINVAL)` },
  { what: 'a decimal size', set: { size: '32768' }, stderr: `mirror key ${M}/size is "32768", expected a hex number (0x...) (EINVAL)` },
  { what: 'a 17-digit offset', set: { offset: '0x12345678901234567' }, stderr: `mirror key ${M}/offset is "0x12345678901234567", expected a hex number (0x...) (EINVAL)` },
  { what: 'a size of 0', set: { size: '0x0' }, stderr: `mirror ${M}: begin 0x60000000, size 0x0, offset 0x4000 do not make a window of whole 4096-byte pages (EINVAL)` },
  { what: 'a begin inside a page', set: { begin: '0x60000010' }, stderr: `mirror ${M}: begin 0x60000010, size 0x8000, offset 0x4000 do not make a window of whole 4096-byte pages (EINVAL)` },
  { what: 'a window past 2^64', set: { begin: '0xfffffffffffff000', size: '0x2000' }, stderr: `mirror ${M}: begin 0xfffffffffffff000, size 0x2000, offset 0x4000 do not make a window of whole 4096-byte pages (EINVAL)` },
  { what: 'a prot of rwx', set: { prot: 'rwx' }, stderr: `mirror key ${M}/prot is "rwx", expected r or rw (EINVAL)` },
  { what: 'a NUL inside a value', set: { prot: Buffer.from('rw\0', 'latin1') }, stderr: `mirror key ${M}/prot is "rw\\x00", expected r or rw (EINVAL)` },
  { what: 'a 2000-byte value', set: { role: 'x'.repeat(2000) }, stderr: `mirror key ${M}/role is "${'x'.repeat(59)}...", expected owner or borrower (EINVAL)` },
  { what: 'port 0', set: { doorbell: '0' }, stderr: `mirror key ${M}/doorbell is "0", expected a port number (decimal, not 0) (EINVAL)` },
  { what: 'a negative port', set: { doorbell: '-5' }, stderr: `mirror key ${M}/doorbell is "-5", expected a port number (decimal, not 0) (EINVAL)` },
  { what: 'a port past 32 bits', set: { doorbell: '4294967296' }, stderr: `mirror key ${M}/doorbell is "4294967296", expected a port number (decimal, not 0) (EINVAL)` },
  { what: 'a reserved owner domid', set: { owner: '32752' }, stderr: `mirror key ${M}/owner is "32752", expected a domid (decimal) (EINVAL)` },
  { what: 'a hex owner', set: { owner: '0x1' }, stderr: `mirror key ${M}/owner is "0x1", expected a domid (decimal) (EINVAL)` },
  { what: 'a doorbell without its owner', drop: ['owner'], stderr: `mirror ${M} has a doorbell but no owner key (EINVAL)` },
  { what: 'no role', drop: ['role'], stderr: `mirror key ${M}/role does not exist (ENOENT): the mirror is incomplete` },
  { what: 'no begin', drop: ['begin'], stderr: `mirror key ${M}/begin does not exist (ENOENT): the mirror is incomplete` },
  { what: 'an owner\'s doorbell entry that is no domid', owner: true, set: { 'doorbells/abc': '5' }, stderr: `mirror ${M}/doorbells has an entry "abc" that is not a domid (EINVAL)` },
  { what: 'an owner\'s doorbell port that is no number', owner: true, set: { 'doorbells/3': 'x' }, stderr: `mirror key ${M}/doorbells/3 is "x", expected a port number (decimal, not 0) (EINVAL)` },
];

test('malformed mirror values: each refused with exit 1 and one line naming the key (in-memory xenstored, as the guest)', async (t) => {
  const server = await startServer({ domains: [1, 2] });
  t.teardown(() => server.close());
  await introduceGuests(server.socketPath, [1, 2]);
  const xs = await connect({ path: server.socketPath });
  t.teardown(() => xs.close());
  await xs.write('/local/domain/2/domid', '2');
  const sock = await server.domainSocketPath(2);
  hostProgram();
  const failures: string[] = [];
  for (const c of BAD) {
    await xs.rm('/local/domain/2/shared_mem').catch(() => undefined);
    await xs.mkdir(M);
    await xs.setPerms('/local/domain/2/shared_mem', ['n0', 'r2']);
    await xs.setPerms(M, ['n0', 'r2']);
    const values: Record<string, string | Buffer> = { ...GOOD, ...(c.owner ? { role: 'owner', offset: '0x0' } : {}), ...c.set };
    if (c.owner) {
      delete values.owner;
      delete values.doorbell;
    }
    for (const d of c.drop ?? []) delete values[d];
    for (const [k, v] of Object.entries(values)) await xs.write(`${M}/${k}`, v);
    const r = await runProgram(['notify', 'ID1', '--xenstore', sock]);
    const got = r.stderr.trimEnd();
    if (r.code !== 1 || got !== `xen-sshm-guest: ${c.stderr}`) failures.push(`${c.what}: exit ${r.code}, ${JSON.stringify(got)}\n  expected xen-sshm-guest: ${c.stderr}`);
  }
  t.deepEqual(failures, []);
});

// ---- hostile replies from a scripted peer --------------------------------------------------

/** The first request is READ "domid": answer it with `first`, and the rest from a good tree. */
function hostile(first: (req: SeenRequest) => Answer): (req: SeenRequest, i: number) => Answer {
  const tree = new Map<string, string>(Object.entries(GOOD).map(([k, v]) => [`${M}/${k}`, v]));
  tree.set('/local/domain/2/domid', '2');
  const good = treeAnswer(tree, '/local/domain/2');
  return (req, i) => (i === 0 ? first(req) : good(req));
}

const HOSTILE: Array<[string, (req: SeenRequest) => Answer, RegExp]> = [
  ['a reply longer than the protocol allows', (q) => frame(2, q.reqId, Buffer.alloc(5000, 0x41)), /xenstore read domid over \S+: reply of 5000 bytes exceeds the protocol's 4096 \(protocol error\)$/],
  ['a reply length lying about 4 GiB', (q) => frame(2, q.reqId, '2', 0, 0xffffffff), /reply of 4294967295 bytes exceeds the protocol's 4096 \(protocol error\)$/],
  ['a reply to another request', (q) => frame(2, q.reqId + 1, '2'), /xenstore read domid over \S+: reply for request \d+, expected \d+ \(protocol error\)$/],
  ['a reply of another type', (q) => frame(MessageType.WRITE, q.reqId, 'OK\0'), /reply of type 11 to a request of type 2 \(protocol error\)$/],
  ['a watch event', (q) => frame(MessageType.WATCH_EVENT, q.reqId, 'domid\0tok\0'), /a watch event arrived, but this program sets no watch \(protocol error\)$/],
  ['an error name without its NUL', (q) => frame(16, q.reqId, 'ENOENT'), /malformed error reply of 6 bytes \(protocol error\)$/],
  ['an error name in lower case', (q) => frame(16, q.reqId, 'enoent\0'), /malformed error reply of 7 bytes \(protocol error\)$/],
  ['an empty error', (q) => frame(16, q.reqId, ''), /malformed error reply of 0 bytes \(protocol error\)$/],
  ['a hang-up in the header', () => ({ bytes: Buffer.from([2, 0, 0]), hangUp: true }), /connection closed by xenstored after 3 of 16 bytes \(ECONNRESET\)$/],
  ['a hang-up in the payload', (q) => ({ bytes: frame(2, q.reqId, 'abc', 0, 10), hangUp: true }), /connection closed by xenstored after 3 of 10 bytes \(ECONNRESET\)$/],
  ['no reply at all', () => null, /xenstore read domid over \S+: no reply within 1 s \(ETIMEDOUT\)$/],
];

for (const [what, answer, expected] of HOSTILE) {
  test(`hostile xenstore peer: ${what} -> exit 1, one line`, async (t) => {
    const peer = new ScriptedPeer(hostile(answer));
    await peer.listen();
    t.teardown(() => peer.close());
    const r = await runProgram(['info', 'ID1', '--xenstore', peer.socketPath, '--timeout', '1']);
    t.is(r.signal, null);
    t.is(r.code, 1, r.stderr);
    t.regex(oneLine(t, r.stderr), expected);
    t.is(r.stdout, '');
  });
}

test('hostile xenstore peer: a directory listing without its final NUL', async (t) => {
  const tree = new Map<string, string>([['/local/domain/2/domid', '2'], [`${M}/role`, 'owner'], [`${M}/begin`, '0x1000'], [`${M}/size`, '0x1000'], [`${M}/offset`, '0x0'], [`${M}/prot`, 'rw']]);
  const good = treeAnswer(tree, '/local/domain/2');
  const peer = new ScriptedPeer((q) => (q.type === 1 && pathOf(q).endsWith('/doorbells') ? frame(1, q.reqId, '3\0' + '4') : good(q)));
  await peer.listen();
  t.teardown(() => peer.close());
  const r = await runProgram(['info', 'ID1', '--xenstore', peer.socketPath]);
  t.is(r.code, 1);
  t.is(oneLine(t, r.stderr), `xen-sshm-guest: xenstore directory ${M}/doorbells: an entry without its NUL (protocol error)`);
});

test('replies split across reads at 1, 3, 16 and 17 bytes read the same; one request in flight, tx 0, fresh ids', async (t) => {
  const tree = new Map<string, string>(Object.entries(GOOD).map(([k, v]) => [`${M}/${k}`, v]));
  tree.set('/local/domain/2/domid', '2');
  let first: string | undefined;
  for (const chunk of [1, 3, 16, 17]) {
    const peer = new ScriptedPeer(treeAnswer(tree, '/local/domain/2'), chunk, 1);
    await peer.listen();
    const r = await runProgram(['info', 'ID1', '--xenstore', peer.socketPath]);
    await peer.close();
    t.is(r.code, 0, r.stderr);
    first ??= r.stdout;
    t.is(r.stdout, first);
    t.deepEqual(peer.violations, []);
    t.true(peer.requests.every((q) => q.txId === 0));
    t.is(new Set(peer.requests.map((q) => q.reqId)).size, peer.requests.length);
    // domid, the mirror's directory, then its seven keys: nothing else asked.
    t.deepEqual(peer.requests.map((q) => `${q.type} ${pathOf(q)}`), [
      '2 domid', `1 ${M}`, ...['role', 'begin', 'size', 'offset', 'prot', 'owner', 'doorbell'].map((k) => `2 ${M}/${k}`),
    ]);
  }
  t.is(first, 'id ID1\ndomid 2\nrole borrower\nbegin 0x60000000\nsize 0x8000\noffset 0x4000\nprot rw\nowner 1\ndoorbell 5\n');
});

test('random replies (200, seeded): always exit 1 with one line, never a signal or a hang', async (t) => {
  const rnd = seededRandom(16_4);
  hostProgram();
  const bad: string[] = [];
  for (let i = 0; i < 200; i += 10) {
    const runs = Array.from({ length: 10 }, async () => {
      const n = Math.floor(rnd() * 40);
      const bytes = Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
      // Sometimes a plausible header first, so the payload path is reached too.
      const lead = rnd() < 0.5 ? frame(Math.floor(rnd() * 24), 0, Buffer.alloc(0), 0, Math.floor(rnd() * 64)) : Buffer.alloc(0);
      const peer = new ScriptedPeer((q) => {
        if (lead.length) lead.writeUInt32LE(rnd() < 0.5 ? q.reqId : Math.floor(rnd() * 2 ** 32), 4);
        return { bytes: Buffer.concat([lead, bytes]), hangUp: true };
      }, 7, 0);
      await peer.listen();
      const r = await runProgram(['info', 'ID1', '--xenstore', peer.socketPath, '--timeout', '5']);
      await peer.close();
      const lines = r.stderr.trimEnd().split('\n');
      if (r.signal || r.code !== 1 || lines.length !== 1 || !lines[0].startsWith('xen-sshm-guest: xenstore ')) {
        bad.push(`${Buffer.concat([lead, bytes]).toString('hex')}: exit ${r.code} signal ${r.signal} ${JSON.stringify(r.stderr)}`);
      }
    });
    await Promise.all(runs);
  }
  t.deepEqual(bad, []);
});
