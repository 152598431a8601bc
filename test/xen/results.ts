/**
 * Reads the serial console of a real-Xen run and judges it against the list of checks.
 * Pure functions over text, unit-tested in results.test.ts.
 *
 * Console lines come from Xen, dom0's kernel and dom0's /init on one serial port, so a line
 * may carry another writer's text before ours: markers are matched anywhere in the line, not
 * only at its start.
 */
import type { CheckSpec } from './checks';

export interface ConsoleLine {
  /** Seconds since QEMU was started. */
  t: number;
  text: string;
}

export interface CheckReport {
  name: string;
  status: 'PASS' | 'FAIL';
  detail: string;
  /** Host time the line was seen. */
  t: number;
}

export interface ParsedConsole {
  checks: Map<string, CheckReport>;
  /** Output of failed (or expected-to-fail) checks, by name. */
  logs: Map<string, string[]>;
  /** dom0 uptime figures (XENTIME label seconds), by label. */
  guestTimes: Map<string, number>;
  /** Host times at which milestones were seen. */
  milestones: {
    xenBanner?: number;
    dom0Kernel?: number;
    dom0Init?: number;
    dom0Ready?: number;
    done?: number;
  };
  /** Boot problems reported by /init (XENBOOT lines) and fatal messages seen. */
  problems: string[];
  done: boolean;
}

const CHECK_RE = /XENCHECK ([a-z0-9][a-z0-9-]*) (PASS|FAIL)(?: (.*))?$/;
const LOG_RE = /XENLOG ([a-z0-9][a-z0-9-]*) \| ?(.*)$/;
const TIME_RE = /XENTIME (\S+) ([0-9]+(?:\.[0-9]+)?)\s*$/;
/** Messages after which the run cannot finish: stop waiting for the timeout. */
export const FATAL_RE = /(Panic on CPU \d+|Kernel panic - not syncing|\*\*\*\* PANIC|Unable to handle kernel)/;

/** A fatal message from Xen or dom0 itself; a domU's panic quoted in a check's log is not one. */
export function isFatal(line: string): boolean {
  return !line.includes('XENLOG ') && FATAL_RE.test(line);
}

export function parseConsole(lines: ConsoleLine[]): ParsedConsole {
  const out: ParsedConsole = {
    checks: new Map(), logs: new Map(), guestTimes: new Map(), milestones: {}, problems: [], done: false,
  };
  const ms = out.milestones;
  for (const { t, text } of lines) {
    const line = text.replace(/\r/g, '');
    let m: RegExpExecArray | null;
    if ((m = CHECK_RE.exec(line))) {
      out.checks.set(m[1], { name: m[1], status: m[2] as 'PASS' | 'FAIL', detail: (m[3] ?? '').trim(), t });
    } else if ((m = LOG_RE.exec(line))) {
      const l = out.logs.get(m[1]) ?? [];
      l.push(m[2]);
      out.logs.set(m[1], l);
    } else if ((m = TIME_RE.exec(line))) {
      out.guestTimes.set(m[1], Number(m[2]));
      if (m[1] === 'dom0-init') ms.dom0Init ??= t;
    } else if (/XENREADY\s*$/.test(line)) {
      ms.dom0Ready ??= t;
    } else if (/XENDONE\s*$/.test(line)) {
      out.done = true;
      ms.done ??= t;
    } else if (/XENBOOT (.*)$/.test(line)) {
      out.problems.push(/XENBOOT (.*)$/.exec(line)![1]);
    } else if (ms.xenBanner === undefined && /Xen version 4\.\d+/.test(line)) {
      ms.xenBanner = t;
    } else if (ms.dom0Kernel === undefined && /Booting Linux on physical CPU/.test(line)) {
      ms.dom0Kernel = t;
    }
    if (isFatal(line)) out.problems.push(line.trim());
  }
  return out;
}

export interface Verdict {
  name: string;
  expect: 'PASS' | 'FAIL';
  /** What dom0 reported, or MISSING. */
  got: 'PASS' | 'FAIL' | 'MISSING';
  ok: boolean;
  detail: string;
}

export interface Judgement {
  verdicts: Verdict[];
  passed: number;
  failed: number;
  /** Checks reported that are not in the list (a stale image or a typo). */
  unexpected: string[];
  ok: boolean;
  /** Why the run as a whole failed, beyond individual checks. */
  runProblems: string[];
}

/**
 * A check is ok when it reported what it was expected to report. The run is ok when every
 * check is ok, nothing unexpected was reported, the guest reached XENDONE and QEMU exited 0.
 */
export function judge(checks: CheckSpec[], parsed: ParsedConsole, exit: { code: number | null; timedOut: boolean }): Judgement {
  const verdicts: Verdict[] = checks.map((c) => {
    const r = parsed.checks.get(c.name);
    if (!r) return { name: c.name, expect: c.expect, got: 'MISSING', ok: false, detail: 'no result on the console' };
    let ok = r.status === c.expect;
    let detail = r.detail;
    if (c.expect === 'FAIL') {
      if (!ok) detail = `PASSED but must fail (the check cannot see the fault): ${r.detail}`;
      else if (c.failsWith && !new RegExp(c.failsWith).test(r.detail)) {
        ok = false;
        detail = `failed, but not for the planted fault (want /${c.failsWith}/): ${r.detail}`;
      } else detail = `failed as it must: ${r.detail}`;
    }
    return { name: c.name, expect: c.expect, got: r.status, ok, detail };
  });
  const known = new Set(checks.map((c) => c.name));
  const unexpected = [...parsed.checks.keys()].filter((n) => !known.has(n));
  const runProblems: string[] = [];
  if (exit.timedOut) runProblems.push('timed out: QEMU was killed');
  else if (exit.code !== 0) runProblems.push(`QEMU exited with ${exit.code}`);
  if (!parsed.done) runProblems.push('dom0 never printed XENDONE (run truncated)');
  for (const p of parsed.problems) runProblems.push(p);
  for (const u of unexpected) runProblems.push(`unexpected check ${u} reported`);
  const passed = verdicts.filter((v) => v.ok).length;
  const failed = verdicts.length - passed;
  return { verdicts, passed, failed, unexpected, ok: failed === 0 && runProblems.length === 0, runProblems };
}

/** The console lines worth showing for a failed run: the checks' own logs, else the tail. */
export function excerpt(lines: ConsoleLine[], parsed: ParsedConsole, j: Judgement, tail = 40): string[] {
  const out: string[] = [];
  for (const v of j.verdicts) {
    if (v.ok) continue;
    const log = parsed.logs.get(v.name);
    if (log && log.length > 0) {
      out.push(`--- output of ${v.name} (last ${Math.min(log.length, 30)} lines) ---`);
      out.push(...log.slice(-30));
    }
  }
  const needTail = j.verdicts.some((v) => v.got === 'MISSING') || j.runProblems.length > 0;
  if (needTail) {
    out.push(`--- last ${tail} console lines ---`);
    out.push(...lines.slice(-tail).map((l) => `[${l.t.toFixed(1).padStart(6)}] ${l.text}`));
  }
  return out;
}
