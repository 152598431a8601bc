/**
 * The real-Xen check xs-trace-attach (test/xen/guest/checks/xs-trace-attach.sh) rehearsed on the
 * real C xenstored 4.17 and 4.20 without a hypervisor: the harness's preload makes a socket
 * connection domain 7's (as a guest's ring connection is), dom0 introduces it the way `xl create`
 * does, the guest writes and reads data/xs-trace-probe while `xs-trace attach --domain 7 --json`
 * runs, and the check's own verifier (test/xen/guest/attach-verify.js) judges the output; the
 * check's CONTROL test of "logging off" (memreport refused without a log) holds before and after.
 * The verifier is also shown to refuse output that lacks the guest's traffic.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '../../xenstore-wire/client';
import { RunningDaemon, startDaemon, XEN_RELEASES } from '../harness/daemons';
import { startAttach } from './attach-helpers';
import { ROOT, ScriptClient, T, f, nul, tmpDir } from './helpers';

const VERIFY = path.join(ROOT, 'dist', 'test', 'xen', 'guest', 'attach-verify.js');

/** The check's test: CONTROL memreport without a file answers an error exactly while no log is open. */
async function daemonLogs(d: RunningDaemon): Promise<boolean> {
  const xs = await connect({ path: d.socketPath });
  try {
    await xs.control('memreport');
    return true;
  } catch {
    return false;
  } finally {
    await xs.close();
  }
}

function verify(file: string, domid: number, value: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [VERIFY, file, String(domid), value], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout.trim() };
}

for (const release of XEN_RELEASES) {
  test(`C xenstored ${release}: the xs-trace-attach check's flow and verifier pass on a guest connection, and refuse output without it`, async (t) => {
    const d = await startDaemon('cxenstored', { fakeDomains: [7], release });
    const dir = tmpDir(`xs-trace-attach-verify-${release}-`);
    try {
      t.false(await daemonLogs(d), 'logging off before');
      const out = path.join(dir, 'attach.jsonl');
      const att = await startAttach(['--domain', '7', '--json', '-o', out, '--upstream', d.socketPath, '--dir', dir]);
      t.true(await daemonLogs(d), 'the daemon logs while attached');
      // What xl create does for the guest's xenstore side: its home, then INTRODUCE.
      const dom0 = await ScriptClient.connect(d.socketPath);
      t.is((await dom0.call(f(T.MKDIR, 1, 0, nul('/local/domain/7/data')))).payload.toString(), 'OK\0');
      t.is((await dom0.call(f(T.SET_PERMS, 2, 0, nul('/local/domain/7/data', 'n7')))).payload.toString(), 'OK\0');
      t.is((await dom0.call(f(T.INTRODUCE, 3, 0, nul('7', '100', '1')))).payload.toString(), 'OK\0');
      await dom0.end();
      const value = `hello from 7 ${Date.now()}`;
      const guest = await ScriptClient.connect(await d.guestSocket(7));
      t.is((await guest.call(f(T.READ, 1, 0, nul('data/missing')))).payload.toString(), 'ENOENT\0');
      t.is((await guest.call(f(T.WRITE, 2, 0, Buffer.concat([nul('data/xs-trace-probe'), Buffer.from(value)])))).payload.toString(), 'OK\0');
      t.is((await guest.call(f(T.READ, 3, 0, nul('data/xs-trace-probe')))).payload.toString(), value);
      await guest.end();
      await new Promise((r) => setTimeout(r, 300));
      const r = await att.stop('SIGTERM');
      t.is(r.code, 0, r.stderr);
      t.regex(r.stderr, /logging is back to: logging off/);
      t.false(await daemonLogs(d), 'logging off after (CONTROL)');

      const ok = verify(out, 7, value);
      t.is(ok.code, 0, ok.out);
      t.regex(ok.out, new RegExp(`^xs-trace attach --domain 7: 3 requests \\(READ WRITE\\) and 3 replies of domain 7 on 1 connection\\(s\\), every reply paired; its WRITE data/xs-trace-probe = "${value}"`));
      // Refused: another value, another domain, output without the guest's READ.
      t.regex(verify(out, 7, 'not the value').out, /^FAILED: no WRITE data\/xs-trace-probe = "not the value"/);
      t.regex(verify(out, 8, value).out, /^FAILED: \d+ records not of domain 8/);
      const cut = path.join(dir, 'cut.jsonl');
      fs.writeFileSync(cut, fs.readFileSync(out, 'utf8').split('\n').filter((l) => !/"type":"READ"|"op":"READ"/.test(l) || /missing/.test(l)).join('\n'));
      const noRead = verify(cut, 7, value);
      t.is(noRead.code, 1);
      t.regex(noRead.out, /^FAILED: no READ of data\/xs-trace-probe after the WRITE/);
    } finally {
      await d.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
