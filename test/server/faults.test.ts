/**
 * Fault injection (off by default): seeded EAGAIN on commit, delayed replies, a connection
 * dropped after N messages, the whole daemon restarted; and --persist across restarts.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType } from '../../xenstore-wire/constants';
import { startServer, XenstoreServer } from '../../xenstore-wire/server';
import { RawConn } from './wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');

async function commitOutcomes(server: XenstoreServer, n: number): Promise<string> {
  const c = await RawConn.open(server.socketPath);
  let out = '';
  for (let i = 0; i < n; i++) {
    const start = await c.request(MessageType.TRANSACTION_START, nul(''));
    const tx = Number(start.payload.toString('latin1').replace(/\0$/, ''));
    const w = await c.request(MessageType.WRITE, `/f/tx\0${i}`, tx);
    if (w.type !== MessageType.WRITE) throw new Error('write in transaction failed');
    const end = await c.request(MessageType.TRANSACTION_END, nul('T'), tx);
    out += end.type === MessageType.ERROR ? (end.payload.toString('latin1') === 'EAGAIN\0' ? 'A' : '?') : '.';
  }
  c.close();
  return out;
}

test('commit failures: off by default; at a seeded rate they fail with EAGAIN, reproducibly', async (t) => {
  const plain = await startServer();
  const a = await startServer({ faults: { commitEagainRate: 0.5, seed: 7 } });
  const b = await startServer({ faults: { commitEagainRate: 0.5, seed: 7 } });
  try {
    t.is(await commitOutcomes(plain, 50), '.'.repeat(50));
    const pa = await commitOutcomes(a, 200);
    const pb = await commitOutcomes(b, 200);
    t.is(pa, pb, 'same seed, same failures');
    const failed = [...pa].filter((c) => c === 'A').length;
    t.log(`rate 0.5: ${failed}/200 commits failed with EAGAIN`);
    t.true(failed > 70 && failed < 130, `${failed} failures`);
    t.false(pa.includes('?'));
    // A failed commit changes nothing: the last successful write is what READ returns.
    const c = await RawConn.open(a.socketPath);
    const last = pa.lastIndexOf('.');
    t.is((await c.request(MessageType.READ, nul('/f/tx'))).payload.toString(), String(last));
    c.close();
  } finally {
    await Promise.all([plain.close(), a.close(), b.close()]);
  }
});

test('replies can be delayed, in order', async (t) => {
  const s = await startServer({ faults: { replyDelayMs: [5, 40], seed: 3 } });
  try {
    const c = await RawConn.open(s.socketPath);
    const t0 = Date.now();
    const w = await c.request(MessageType.WRITE, '/f/d\0x');
    t.true(Date.now() - t0 >= 5);
    t.is(w.type, MessageType.WRITE);
    // 20 pipelined requests with random delays still come back in request order.
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => c.request(MessageType.READ, nul('/f/d')).then(() => order.push(i))),
    );
    t.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
    c.close();
  } finally {
    await s.close();
  }
});

test('a connection is dropped after N messages, once they are answered', async (t) => {
  const s = await startServer({ faults: { dropAfterMessages: 3 } });
  try {
    const c = await RawConn.open(s.socketPath);
    for (let i = 0; i < 3; i++) t.is((await c.request(MessageType.WRITE, `/f/n${i}\0v`)).type, MessageType.WRITE);
    await c.waitClosed();
    await t.throwsAsync(c.request(MessageType.READ, nul('/f/n0')), { message: /closed/ });
    // Other connections carry on, with the same limit each.
    const d = await RawConn.open(s.socketPath);
    t.is((await d.request(MessageType.READ, nul('/f/n2'))).payload.toString(), 'v');
    d.close();
  } finally {
    await s.close();
  }
});

test('restart: clients are disconnected, the tree stays (or not, with fresh)', async (t) => {
  const s = await startServer();
  try {
    const c = await RawConn.open(s.socketPath);
    await c.request(MessageType.WRITE, '/f/r\0kept');
    const w = await c.request(MessageType.WATCH, nul('/f/r', 'tok'));
    t.is(w.type, MessageType.WATCH);
    await s.restart();
    await c.waitClosed();
    const d = await RawConn.open(s.socketPath);
    t.is((await d.request(MessageType.READ, nul('/f/r'))).payload.toString(), 'kept');
    await s.restart({ fresh: true });
    await d.waitClosed();
    const e = await RawConn.open(s.socketPath);
    t.is((await e.request(MessageType.READ, nul('/f/r'))).payload.toString(), 'ENOENT\0');
    t.is((await e.request(MessageType.DIRECTORY, nul('/'))).payload.toString(), 'tool\0');
    e.close();
  } finally {
    await s.close();
  }
});

test('--persist keeps the tree, permissions and generation across daemon lifetimes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-persist-'));
  const file = join(dir, 'tree.json');
  try {
    const s1 = await startServer({ persist: file });
    const c = await RawConn.open(s1.socketPath);
    await c.request(MessageType.WRITE, Buffer.concat([Buffer.from('/p/bin\0'), Buffer.from([0, 1, 255, 10])]));
    await c.request(MessageType.SET_PERMS, nul('/p/bin', 'n0', 'r0'));
    await c.request(MessageType.SET_PERMS, nul('@releaseDomain', 'r0'));
    const gen1 = (await c.request(MessageType.DIRECTORY_PART, nul('/p', '0'))).payload.toString('latin1').split('\0')[0];
    c.close();
    await s1.close();
    t.true(existsSync(file));
    t.is((JSON.parse(readFileSync(file, 'utf8')) as { format: string }).format, 'xen-sshm-xenstored-tree');

    const s2 = await startServer({ persist: file });
    const d = await RawConn.open(s2.socketPath);
    t.deepEqual([...(await d.request(MessageType.READ, nul('/p/bin'))).payload], [0, 1, 255, 10]);
    t.is((await d.request(MessageType.GET_PERMS, nul('/p/bin'))).payload.toString(), 'n0\0r0\0');
    const gen2 = (await d.request(MessageType.DIRECTORY_PART, nul('/p', '0'))).payload.toString('latin1').split('\0')[0];
    t.is(gen2, gen1);
    // Writes after a restart still move the generation forward.
    await d.request(MessageType.WRITE, '/p/more\0x');
    const gen3 = (await d.request(MessageType.DIRECTORY_PART, nul('/p', '0'))).payload.toString('latin1').split('\0')[0];
    t.true(Number(gen3) > Number(gen1));
    d.close();
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt persist file is a typed error naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-persist-'));
  const file = join(dir, 'tree.json');
  try {
    writeFileSync(file, '{"format":"something else"}');
    const err = await t.throwsAsync(startServer({ persist: file }));
    t.is((err as unknown as { kind: string }).kind, 'server');
    t.is((err as unknown as { code: string }).code, 'EINVAL');
    t.is((err as unknown as { path: string }).path, file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
