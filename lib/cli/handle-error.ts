/**
 * One place that turns any thrown value into a message and an exit code, for every command.
 * Typed errors (`kind`, `code`, ...) are printed with what they carry: a `format()` method if
 * they have one (ConfigError prints location, entry, rule and hint), else the message plus the
 * hint; `--json` prints `{ ok: false, error }` using the error's own `toJSON()` when present.
 * An error may carry `exitCode`; the default is 1.
 */
import { boundJson, boundMessage } from '../elide';

interface ErrorLike {
  message?: string;
  kind?: string;
  code?: string;
  hint?: string;
  exitCode?: number;
  errors?: unknown[];
  toJSON?: () => unknown;
  format?: () => string;
}

function describe(err: unknown): string {
  const e = (err ?? {}) as ErrorLike;
  if (typeof e.format === 'function') return e.format();
  let text = typeof e.message === 'string' ? e.message : String(err);
  if (typeof e.hint === 'string' && e.hint) text += `\n  hint: ${e.hint}`;
  if (Array.isArray(e.errors)) for (const inner of e.errors) text += '\n' + describe(inner);
  return text;
}

export function errorToJSON(err: unknown): unknown {
  const e = (err ?? {}) as ErrorLike;
  if (typeof e.toJSON === 'function') return e.toJSON();
  // Typed errors without toJSON (HypercallError...) keep their own fields: call, path, domid ...
  const own = typeof err === 'object' && err !== null ? Object.fromEntries(Object.entries(err).filter(([k, v]) => v !== undefined && k !== 'cause')) : {};
  return { ...own, kind: e.kind ?? 'error', code: e.code, message: typeof e.message === 'string' ? e.message : String(err), hint: e.hint };
}

export interface ReportOptions {
  json?: boolean;
  /** The command named in front of text errors; default xen-sshm (xs-trace passes its own). */
  program?: string;
}

/** Prints the error like handleError and returns the exit code, without exiting. */
export function reportError(err: unknown, opts: ReportOptions = {}): number {
  const e = (err ?? {}) as ErrorLike;
  // Echoed input is bounded whatever error carries it (lib/elide.ts; issue 13).
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ok: false, error: boundJson(errorToJSON(err)) }, null, 2) + '\n');
  } else {
    process.stderr.write(`${opts.program ?? 'xen-sshm'}: ${boundMessage(describe(err))}\n`);
  }
  return typeof e.exitCode === 'number' ? e.exitCode : 1;
}

export function handleError(err: unknown, opts: ReportOptions = {}): never {
  process.exit(reportError(err, opts));
}
