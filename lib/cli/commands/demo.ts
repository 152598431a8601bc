/**
 * `xen-sshm demo`: the proposal's three-VM example on a sandbox, with nothing to install:
 * create vm1, vm2, vm3 (as `xl create -p`), apply their configs, print the records as
 * `xenstore-ls -f` would, show vm2 reading what vm1 wrote and vm1 ringing vm2's doorbell (an
 * event channel per borrower, `apply --doorbell`), then destroy vm2 and show the daemon
 * cleaning up. Uses a fresh temporary sandbox (removed at the end) unless
 * --sandbox-dir is given.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, XenstoreError } from '../../../xenstore-wire';
import { readXlConfig } from '../../config';
import { hexdump, listDomains, ManagerError, openRegion, runDaemon, SharedMemoryManager, type DaemonEvent, type ReconcileAction } from '../../manager';
import { createDomain, destroyDomain, domainSpecFromConfig, Sandbox, SimGuest } from '../../sandbox';
import { gfnsOf, sharedMemoryTree } from '../../store';
import { renderApply } from './apply';
import { renderReconcile } from './reconcile';

/** The proposal's example: vm1 lists ID1 and ID2 and, applied first, owns both. */
export const DEMO_CONFIGS: Record<string, string> = {
  vm1: `# vm1 lists ID1 and ID2 and, applied first, owns both (1 MiB each).
name = "vm1"
type = "pvh"
memory = 128
static_shared_mem = ["0x50000000-0x50100000 = ID1", "0x50100000-0x50200000 = ID2"]
`,
  vm2: `# vm2 borrows ID1 from vm1, at its own guest address 0x50000000.
name = "vm2"
type = "pvh"
memory = 128
static_shared_mem = ["0x50000000-0x50100000 = ID1"]
`,
  vm3: `# vm3 borrows ID2 from vm1, written BEGIN+SIZE.
name = "vm3"
type = "pvh"
memory = 128
static_shared_mem = ["0x50000000+1M = ID2"]
`,
};

const MESSAGE = 'Hello vm2, this is vm1 writing at its guest address 0x50000000.';

/** vm1 rings vm2 over ID1's doorbell, and vm2 answers; what each guest saw. */
async function ringDoorbell(sandbox: Sandbox, sim: ReturnType<Sandbox['openHypervisor']>, vm1: number, vm2: number, say: (s?: string) => void): Promise<Record<string, unknown>> {
  const [g1, g2] = [await SimGuest.open(sandbox, sim, vm1), await SimGuest.open(sandbox, sim, vm2)];
  try {
    const b2 = await g2.doorbell('ID1');
    // Xen sets a freshly bound port pending once (events sent before the bind): drained first.
    await b2.drain();
    const b1 = await g1.doorbell('ID1', vm2);
    say(`\nvm2 binds the doorbell its mirror names (owner ${b2.peer}, port ${b1.port}): its end is its port ${b2.port}.`);
    await b1.ring();
    const heard = await b2.wait(5000);
    say(`vm1 rings vm2 (EVTCHNOP_send on its port ${b1.port}): vm2 ${heard ? 'is notified' : 'heard nothing'} on its port ${b2.port}.`);
    await b2.ring();
    const answered = await b1.wait(5000);
    say(`vm2 rings back: vm1 ${answered ? 'is notified' : 'heard nothing'} on port ${b1.port}.`);
    if (!heard || !answered) throw new ManagerError({ code: 'ETIMEDOUT', reason: 'busy', id: 'ID1', message: 'the demo\'s doorbell was not heard within 5 s' });
    return { ownerPort: b1.port, borrowerPort: b2.port, vm2Notified: heard, vm1Notified: answered };
  } finally {
    await Promise.all([g1.close(), g2.close()]);
  }
}

export interface DemoOptions {
  sandboxDir?: string;
  keep?: boolean;
  json?: boolean;
}

export async function runDemo(opts: DemoOptions, out: (s: string) => void): Promise<Record<string, unknown>> {
  const fresh = opts.sandboxDir === undefined;
  const dir = opts.sandboxDir ?? mkdtempSync(join(tmpdir(), 'xen-sshm-demo-'));
  const keep = !fresh || !!opts.keep;
  const sandbox = new Sandbox(dir);
  const say = (s = ''): void => out(s + '\n');
  const cmd = (s: string): void => say(`\n$ ${s}`);
  // Every command shown names the sandbox, so that it can be typed as is (SB is printed first).
  const sb = ' --sandbox-dir $SB';

  const cfgDir = join(dir, 'configs');
  mkdirSync(cfgDir, { recursive: true });
  for (const [name, text] of Object.entries(DEMO_CONFIGS)) writeFileSync(join(cfgDir, `${name}.cfg`), text);
  const cfgPath = (name: string): string => join(cfgDir, `${name}.cfg`);
  const shown = (name: string): string => `$SB/configs/${name}.cfg`;

  const xs = await sandbox.connect();
  const sim = sandbox.openHypervisor();
  const manager = new SharedMemoryManager({ xenstore: xs, hypervisor: sim });
  const ac = new AbortController();
  let daemonDone: Promise<void> | null = null;
  const json: Record<string, unknown> = { sandbox: dir, kept: keep };
  try {
    const existing = (await listDomains(xs)).filter((d) => d.name && d.name in DEMO_CONFIGS);
    if (existing.length > 0) {
      throw new ManagerError({
        code: 'EEXIST', reason: 'domain', path: dir,
        message: `the sandbox ${dir} already has ${existing.map((d) => d.name).join(', ')}`,
        hint: 'run the demo without --sandbox-dir (a fresh sandbox), or give an empty folder',
      });
    }
    say("xen-sshm demo: the proposal's three-VM example, on a sandbox: an in-memory xenstored and a");
    say('simulated Xen 4.17 Arm host (nothing here touches a real Xen).');
    say(`\n$ SB=${dir}${keep ? '' : '          # removed at the end; --keep keeps it'}`);

    const created: Record<string, number> = {};
    for (const name of Object.keys(DEMO_CONFIGS)) {
      cmd(`xen-sshm create ${shown(name)} --no-apply --paused${sb}    # plays: xl create -p ${name}.cfg`);
      const d = await createDomain(xs, sim, domainSpecFromConfig(await readXlConfig(cfgPath(name))));
      created[name] = d.domid;
      say(`created ${d.name} as d${d.domid} (${d.memoryMiB} MiB, max ${d.maxPages / 256} MiB), paused`);
    }
    json.domains = created;

    say('\nvm1 owns 2 MiB of frames, counted against its max memory, which has 1 MiB of slack:');
    say('--raise-maxmem lets apply raise it (XEN_DOMCTL_max_mem).');
    say('vm2 and vm3 borrow from vm1. On Arm, Xen lets a domU map another domU\'s pages only once');
    say('dom0 made the owner its target (set_target: once per domain, never undone, and it gives the');
    say('borrower device-model rights over the owner). The demo consents with --allow-set-target.');
    say('--doorbell gives vm1\'s regions a doorbell: each borrower gets an event channel port in vm1');
    say('that only it may bind (the owner decides; docs/doorbells.md).');
    const applied = [];
    for (const name of Object.keys(DEMO_CONFIGS)) {
      cmd(`xen-sshm apply ${shown(name)}${sb}${name === 'vm1' ? ' --raise-maxmem --doorbell' : ' --allow-set-target'}`);
      const r = await manager.apply({ config: await readXlConfig(cfgPath(name)), allowSetTarget: name !== 'vm1', raiseMaxMem: name === 'vm1', doorbell: name === 'vm1' });
      applied.push(r);
      out(renderApply(r));
    }
    json.applied = applied;

    const domids = Object.values(created);
    cmd(`xenstore-ls -f /local/shared_mem; ... /local/domain/N/shared_mem   (xen-sshm ls --tree${sb})`);
    const tree = await sharedMemoryTree(xs, manager.paths.root, domids);
    say(tree.join('\n'));
    json.tree = tree;

    // vm1 writes through its own view of its memory; vm2 reads through its own.
    const page = gfnsOf(0x50000000n, 4096n);
    say(`\nvm1 writes into ID1 at its guest address 0x50000000:  "${MESSAGE}"`);
    const v1 = await sim.guestMap(created.vm1, page);
    v1.buffer.write(MESSAGE);
    v1.unmap();
    const v2 = await sim.guestMap(created.vm2, page);
    const read = v2.buffer.toString('utf8', 0, MESSAGE.length);
    v2.unmap();
    say(`vm2 reads ID1 at its guest address 0x50000000:     "${read}"`);
    json.message = { written: MESSAGE, readByVm2: read };

    // The doorbell: each guest finds its end in its own mirror (over its own xenstore connection)
    // and uses the simulated host's event channels as itself, as xen-sshm-guest does in a domU.
    json.doorbell = await ringDoorbell(sandbox, sim, created.vm1, created.vm2, say);

    // What the guest itself may see in xenstore: its mirror, and nothing of dom0's records.
    const guest = await connect({ path: sandbox.domainSocketPath(created.vm2) });
    try {
      const begin = await guest.readString(`/local/domain/${created.vm2}/shared_mem/ID1/begin`);
      let denied = '';
      try {
        await guest.read('/local/shared_mem/ID1/owner');
      } catch (e) {
        denied = e instanceof XenstoreError ? e.code : String(e);
      }
      say(`vm2, through its own xenstore connection, reads /local/domain/${created.vm2}/shared_mem/ID1/begin = "${begin}";`);
      say(`reading dom0's /local/shared_mem/ID1/owner gives it ${denied}.`);
      json.guestView = { begin, denied };
    } finally {
      await guest.close();
    }

    cmd(`xen-sshm peek ID1 --length 64${sb}          # dom0 maps the owner's frames`);
    const h = await openRegion(manager, 'ID1', { length: 64n });
    say(hexdump(h.buffer).join('\n'));
    h.close();

    // The daemon, watching @releaseDomain, cleans up after vm2.
    const events: DaemonEvent[] = [];
    let notify: (() => void) | null = null;
    const wait = (pred: (e: DaemonEvent) => boolean): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new ManagerError({ code: 'ETIMEDOUT', reason: 'busy', message: 'the demo daemon did not react within 10 s' })), 10_000);
        const check = (): void => {
          if (events.some(pred)) {
            clearTimeout(timer);
            notify = null;
            resolve();
          }
        };
        notify = check;
        check();
      });
    cmd(`xen-sshm daemon${sb} &`);
    daemonDone = runDaemon({
      connect: () => sandbox.connect(),
      hypervisor: sim,
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        notify?.();
      },
    });
    await wait((e) => e.type === 'reconciled' && e.trigger === 'connect');
    say('daemon: watching @releaseDomain');

    cmd(`xen-sshm destroy vm2 --no-cleanup${sb}       # plays: xl destroy vm2`);
    await destroyDomain(xs, sim, created.vm2);
    say(`destroyed d${created.vm2}: xenstored fired @releaseDomain`);
    await wait((e) => e.type === 'reconciled' && e.trigger === '@releaseDomain' && e.actions.length > 0);
    const cleanup: ReconcileAction[] = events.flatMap((e) => (e.type === 'reconciled' && e.trigger === '@releaseDomain' ? e.actions : []));
    say(renderReconcile({ actions: cleanup }).trimEnd().replace(/^/gm, 'daemon: '));
    json.cleanup = cleanup;

    cmd(`xenstore-ls -f /local/shared_mem   (xen-sshm ls --tree${sb})`);
    const after = await sharedMemoryTree(xs, manager.paths.root, domids);
    say(after.join('\n'));
    json.treeAfter = after;
    const vm2Left = (await sim.domains()).some((d) => d.domid === created.vm2);
    say(`\nvm2 is gone from the host${vm2Left ? ' (still dying)' : ''} and from ID1's mappings; vm1 still owns ID1 and ID2, vm3 still maps ID2.`);
    say(`ID1/ports/${created.vm2} stays: dom0 cannot close a port of vm1's; it goes when vm1 dies (xen-sshm ls shows it kept).`);
    if (keep) say(`The sandbox stays in ${dir}: try  xen-sshm ls --sandbox-dir ${dir}`);
    else say('Your own sandbox (kept in ~/.xen-sshm/sandbox), one command per domain as on a real host: xen-sshm create CFG --sandbox [--raise-maxmem | --allow-set-target], xen-sshm ls --sandbox, xen-sshm destroy NAME --sandbox');
    return json;
  } finally {
    ac.abort();
    await daemonDone?.catch(() => undefined);
    manager.dispose();
    await xs.close().catch(() => undefined);
    await sim.close().catch(() => undefined);
    if (keep) await sandbox.stop().catch(() => undefined);
    else await sandbox.remove().catch(() => undefined);
  }
}
