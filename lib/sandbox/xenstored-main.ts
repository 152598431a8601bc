/**
 * The sandbox's background xenstored: `node xenstored-main.js DIR`. The in-memory xenstored on
 * DIR/socket, its tree kept in DIR/xenstore.json, per-guest sockets, and the simulated host of
 * DIR/sim as its hypervisor (which domains exist). Started by Sandbox.start(); exits on
 * SIGTERM/SIGINT, or after XEN_SSHM_SANDBOX_IDLE_MS (default 30 min) without clients.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../../xenstore-wire/server';
import { ownLock } from '../manager/lock';

/**
 * Domids of the simulated host, read from the JSON header of DIR/sim/host.bin (the format of
 * lib/hypervisor/sim/host.ts toBytes(): 'XSSMSIM1', u32 LE length, JSON), cached by mtime.
 */
export function simDomainReader(simDir: string): () => Set<number> {
  const file = join(simDir, 'host.bin');
  let stamp = '';
  let ids = new Set<number>();
  return () => {
    let st;
    try {
      st = statSync(file);
    } catch {
      return (ids = new Set());
    }
    const now = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (now === stamp) return ids;
    try {
      const buf = readFileSync(file);
      if (buf.toString('latin1', 0, 8) !== 'XSSMSIM1') return ids;
      const header = JSON.parse(buf.toString('utf8', 16, 16 + buf.readUInt32LE(8))) as { domains: Array<{ domid: number }> };
      ids = new Set(header.domains.map((d) => d.domid));
      stamp = now;
    } catch {
      // Being replaced right now (rename is atomic, but be lenient): keep the last answer.
    }
    return ids;
  };
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: xenstored-main.js DIR\n');
    process.exit(2);
  }
  const idleMs = Number(process.env.XEN_SSHM_SANDBOX_IDLE_MS ?? 30 * 60_000);
  const simIds = simDomainReader(join(dir, 'sim'));
  const server = await startServer({
    rundir: dir,
    socketPath: join(dir, 'socket'),
    persist: join(dir, 'xenstore.json'),
    domains: { exists: (domid) => simIds().has(domid) },
    domainSockets: true,
    // The log cannot be written: nothing more can be acknowledged durably. Exit, so that the
    // sandbox starts a new daemon on the next command (loading what was logged).
    onFatal: (err) => {
      process.stderr.write(`sandbox xenstored: ${err.message}\n`);
      process.exit(1);
    },
  });
  // Guests that were introduced before a restart are introduced again, as after a live update.
  for (const domid of simIds()) {
    if (domid === 0) continue;
    const d = server.core.introduceDomain(domid);
    if (d && d.port === 0) d.port = 1;
  }
  server.core.flush();
  const pidPath = join(dir, 'xenstored.pid');
  writeFileSync(pidPath, ownLock());
  process.stdout.write(`${new Date().toISOString()} sandbox xenstored ${process.pid} on ${server.socketPath}\n`);

  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${new Date().toISOString()} stopping (${why})\n`);
    await server.close();
    rmSync(pidPath, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  // Idle exit: no client on dom0's socket (the guests' own rings do not count) for idleMs.
  let idleSince = Date.now();
  const timer = setInterval(() => {
    const clients = server.core.connections.filter((c) => c.domain === null && !c.closed).length;
    if (clients > 0) idleSince = Date.now();
    else if (Date.now() - idleSince >= idleMs) void stop(`idle for ${Math.round(idleMs / 1000)} s`);
  }, Math.max(50, Math.min(10_000, idleMs / 4)));
  timer.unref();
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`sandbox xenstored: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
