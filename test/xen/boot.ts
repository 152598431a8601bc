/**
 * Boots Xen 4.17 arm64 with a Linux dom0 under qemu-system-aarch64 (software emulation), always
 * under `timeout`, and streams the serial console line by line with host timestamps.
 * The command line is FACTS.md section 6's verified recipe.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { XenTierError } from './errors';
import { ConsoleLine, isFatal } from './results';
import type { BootFiles } from './images';

export interface BootOptions {
  files: BootFiles;
  /** Whole-run limit in seconds (QEMU is killed after it). */
  timeoutSec: number;
  /** Every console line is appended here, with its host time. */
  consoleLog: string;
  /** Called for each line as it arrives (progress, --verbose). */
  onLine?: (l: ConsoleLine) => void;
  dom0MemMiB?: number;
  hostMemMiB?: number;
}

export interface BootResult {
  lines: ConsoleLine[];
  code: number | null;
  timedOut: boolean;
  /** Stopped early on a panic rather than waiting for the timeout. */
  fatal?: string;
  seconds: number;
}

export function qemuArgs(o: BootOptions): string[] {
  const f = o.files;
  return [
    '-machine', 'virt,virtualization=on,gic-version=3', '-cpu', 'cortex-a57',
    '-m', String(o.hostMemMiB ?? 2048), '-smp', '2',
    '-nographic', '-no-reboot', '-monitor', 'none', '-serial', 'stdio',
    // No NIC: the default one needs efi-virtio.rom from ipxe-qemu, a Recommends that a
    // --no-install-recommends install skips (and the tier needs no network).
    '-nic', 'none',
    '-kernel', f.xen,
    // xsm=dummy: Debian's arm64 Xen is built with XSM, and Xen's Kconfig then defaults to SILO on
    // Arm (xen/common/Kconfig XSM_SILO_DEFAULT), which refuses every event channel between two
    // domUs with EPERM (xen/xsm/silo.c silo_evtchn_unbound, silo_evtchn_interdomain): doorbells
    // need the non-XSM rules (docs/doorbells.md "XSM"). dom0's own calls are the same in both.
    '-append', `dom0_mem=${o.dom0MemMiB ?? 768}M dom0_max_vcpus=2 console=dtuart loglvl=all guest_loglvl=all xsm=dummy`,
    '-device', `guest-loader,addr=0x49000000,kernel=${f.kernel},bootargs=console=hvc0 earlycon=xenboot rdinit=/init loglevel=5`,
    '-device', `guest-loader,addr=0x50000000,initrd=${f.dom0Initrd}`,
  ];
}

export function boot(o: BootOptions): Promise<BootResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const since = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
    const log = fs.openSync(o.consoleLog, 'w');
    // timeout sends TERM, then KILL 10 s later should QEMU ignore it; 124 means it fired.
    const child = spawn('timeout', ['-k', '10', String(o.timeoutSec), 'qemu-system-aarch64', ...qemuArgs(o)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: ConsoleLine[] = [];
    let partial = '';
    let fatal: string | undefined;
    const push = (text: string): void => {
      const l = { t: since(), text: text.replace(/\r$/, '') };
      lines.push(l);
      fs.writeSync(log, `[${l.t.toFixed(2).padStart(7)}] ${l.text}\n`);
      o.onLine?.(l);
      if (!fatal && isFatal(l.text)) {
        fatal = l.text.trim();
        // Let the panic's backtrace reach the log, then stop: nothing more will happen.
        setTimeout(() => child.kill('SIGTERM'), 3000).unref();
      }
    };
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      partial += chunk;
      let i: number;
      while ((i = partial.indexOf('\n')) >= 0) {
        push(partial.slice(0, i));
        partial = partial.slice(i + 1);
      }
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => { stderr += c; });
    child.on('error', (err) => {
      fs.closeSync(log);
      reject(new XenTierError('boot', (err as NodeJS.ErrnoException).code ?? 'EIO', `cannot start QEMU: ${err.message}`, 'qemu-system-aarch64'));
    });
    child.on('close', (code, signal) => {
      if (partial) push(partial);
      if (stderr.trim()) {
        for (const s of stderr.trim().split('\n')) push(`[qemu stderr] ${s}`);
      }
      fs.closeSync(log);
      const timedOut = code === 124 || code === 137;
      resolve({ lines, code: signal ? null : code, timedOut: timedOut && !fatal, fatal, seconds: since() });
    });
  });
}
