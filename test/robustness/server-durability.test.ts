/**
 * Durability of the in-memory xenstored with --persist (issue 13 point 2): the sandbox's
 * xenstored (lib/sandbox/xenstored-main.ts) is SIGKILLed right after replies that acknowledged
 * changes, and a new one on the same folder must have every one of them. Before the
 * write-ahead log the tree was saved some milliseconds after the reply, and these were lost.
 * Also: a record cut short by a crash is ignored, temporary files of dead processes go, and
 * the state file is only ever replaced whole.
 */
import test from 'ava';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType as T } from '../../xenstore-wire/constants';
import { startServer, XenstoredServerError } from '../../xenstore-wire/server';
import { projectRoot } from '../harness/daemons';
import { RawConn } from '../server/wire';

const nul = (...s: string[]) => s.map((x) => x + '\0').join('');
const MAIN = join(projectRoot(), 'dist', 'lib', 'sandbox', 'xenstored-main.js');

/** Starts the sandbox's xenstored on `dir`; resolves once its socket answers. */
async function startSandboxXenstored(dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(' on ')) resolve();
    });
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => reject(new Error(`sandbox xenstored exited with ${code}: ${out}`)));
  });
  return child;
}

async function sigkill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

async function commit(c: RawConn, path: string, value: string): Promise<void> {
  const start = await c.request(T.TRANSACTION_START, nul(''));
  const tx = Number(start.payload.toString('latin1').replace(/\0$/, ''));
  const w = await c.request(T.WRITE, `${path}\0${value}`, tx);
  if (w.type !== T.WRITE) throw new Error(`write in transaction: ${w.payload.toString()}`);
  const end = await c.request(T.TRANSACTION_END, nul('T'), tx);
  if (end.type !== T.TRANSACTION_END) throw new Error(`commit: ${end.payload.toString()}`);
}

test('SIGKILL of the sandbox xenstored right after an acknowledged commit loses nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-durable-'));
  try {
    const rounds = 12;
    for (let i = 0; i < rounds; i++) {
      const child = await startSandboxXenstored(dir);
      const c = await RawConn.open(join(dir, 'socket'));
      // Everything acknowledged in earlier lives is there.
      for (let k = 0; k < i; k++) {
        t.is((await c.request(T.READ, nul(`/vm/commit${k}`))).payload.toString(), `v${k}`, `life ${i}: commit ${k}`);
        t.is((await c.request(T.READ, nul(`/vm/write${k}`))).payload.toString(), `w${k}`, `life ${i}: write ${k}`);
        t.is((await c.request(T.GET_PERMS, nul(`/vm/write${k}`))).payload.toString(), 'n0\0r3\0');
      }
      await c.request(T.WRITE, `/vm/write${i}\0w${i}`);
      await c.request(T.SET_PERMS, nul(`/vm/write${i}`, 'n0', 'r3'));
      await commit(c, `/vm/commit${i}`, `v${i}`);
      // The commit's reply has arrived: kill at once, no chance to save later.
      await sigkill(child);
      c.close();
    }
    const child = await startSandboxXenstored(dir);
    const c = await RawConn.open(join(dir, 'socket'));
    const dirList = (await c.request(T.DIRECTORY, nul('/vm'))).payload.toString('latin1').split('\0').filter(Boolean);
    t.is(dirList.length, 2 * rounds);
    c.close();
    await sigkill(child);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log record cut short by a crash is ignored; whole records before it are kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-durable-'));
  const file = join(dir, 'tree.json');
  try {
    const s1 = await startServer({ persist: file });
    t.teardown(() => s1.close()); // a failed assertion must not leave a server holding the worker open
    const c = await RawConn.open(s1.socketPath);
    await c.request(T.WRITE, '/a\0one');
    await c.request(T.WRITE, '/b\0two');
    c.close();
    // Simulate the crash: copy the files as they are now, before close() folds the log.
    const snapshot = readFileSync(file);
    const log = readFileSync(`${file}.log`, 'latin1');
    t.is(log.trim().split('\n').length, 2, 'one record per acknowledged change');
    await s1.close();
    writeFileSync(file, snapshot);
    writeFileSync(`${file}.log`, log);
    appendFileSync(`${file}.log`, log.split('\n')[0].slice(0, 20));
    const s2 = await startServer({ persist: file });
    t.teardown(() => s2.close()); // a failed assertion must not leave a server holding the worker open
    const d = await RawConn.open(s2.socketPath);
    t.is((await d.request(T.READ, nul('/a'))).payload.toString(), 'one');
    t.is((await d.request(T.READ, nul('/b'))).payload.toString(), 'two');
    // Loading folded everything into a new snapshot and started an empty log.
    t.is(readFileSync(`${file}.log`, 'latin1'), '');
    t.true((JSON.parse(readFileSync(file, 'utf8')) as { nodes: Record<string, unknown> }).nodes['/b'] !== undefined);
    d.close();
    await s2.close();
    // A damaged record that is not the last line is a typed error naming the log.
    writeFileSync(`${file}.log`, 'not json\n{"g":1,"n":{}}\n');
    const err = await t.throwsAsync(startServer({ persist: file }));
    t.is((err as unknown as { code: string }).code, 'EINVAL');
    t.is((err as unknown as { path: string }).path, `${file}.log`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('temporary files of dead processes are removed at start; a live process keeps its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-durable-'));
  const file = join(dir, 'tree.json');
  try {
    const dead = spawnSync('true').pid!;
    writeFileSync(`${file}.tmp-${dead}`, '{"half":');
    const alive = spawn('sleep', ['30']);
    writeFileSync(`${file}.tmp-${alive.pid}`, '{"in progress":');
    writeFileSync(join(dir, 'other.tmp-1'), 'not ours');
    const s = await startServer({ persist: file });
    t.teardown(() => s.close()); // a failed assertion must not leave a server holding the worker open
    t.false(existsSync(`${file}.tmp-${dead}`), 'the dead process left it: removed');
    t.true(existsSync(`${file}.tmp-${alive.pid}`), 'a live process may still rename it: kept');
    t.true(existsSync(join(dir, 'other.tmp-1')), 'other files are not touched');
    await s.close();
    alive.kill('SIGKILL');
    // Nothing of ours is left behind after a clean stop.
    t.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('tree.json.tmp-') && n !== `tree.json.tmp-${alive.pid}`),
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log that cannot be written: the change is never acknowledged, every client is dropped, onFatal is told', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-durable-'));
  const file = join(dir, 'tree.json');
  try {
    const fatal: XenstoredServerError[] = [];
    const s = await startServer({ persist: file, onFatal: (e) => fatal.push(e) });
    t.teardown(() => s.close()); // a failed assertion must not leave a server holding the worker open
    const c = await RawConn.open(s.socketPath);
    const other = await RawConn.open(s.socketPath);
    t.is((await c.request(T.WRITE, '/ok\0logged')).type, T.WRITE);
    // The disk fills up: the next append fails (as fdatasync or write would with ENOSPC).
    s.core.journal = () => {
      throw new XenstoredServerError('persist', 'ENOSPC', `cannot append to the xenstore log ${file}.log: no space left on device`, `${file}.log`);
    };
    await t.throwsAsync(c.request(T.WRITE, '/lost\0never acknowledged'), { message: /closed/ });
    await other.waitClosed();
    t.is(fatal.length, 1);
    t.is(fatal[0].code, 'ENOSPC');
    t.is(s.failure?.code, 'ENOSPC');
    await s.close();
    // What was acknowledged is there; what was not, is not.
    const s2 = await startServer({ persist: file });
    t.teardown(() => s2.close()); // a failed assertion must not leave a server holding the worker open
    const d = await RawConn.open(s2.socketPath);
    t.is((await d.request(T.READ, nul('/ok'))).payload.toString(), 'logged');
    t.is((await d.request(T.READ, nul('/lost'))).payload.toString(), 'ENOENT\0');
    d.close();
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
