/**
 * One place that turns any thrown value into a message and an exit code, for every command.
 *
 * Exit status: 0 success, 1 failure (a refusal, a failed step, an invalid config), 2 usage (an
 * unknown option or command, a missing or malformed argument). An error may carry `exitCode`.
 *
 * Typed errors (`kind`, `code`, ...) are printed with what they carry: a `format()` method if
 * they have one (ConfigError prints location, entry, rule and hint), else the message plus the
 * hint; `--json` prints `{ ok: false, error }` using the error's own `toJSON()` when present.
 * Anything else (a bug, a Node error) becomes an `internal` error with its message: never a
 * JavaScript stack.
 *
 * Whatever the input, the output is bounded (OUTPUT_BOUNDS): each message is elided past
 * MAX_TEXT characters, at most MAX_LISTED inner errors are listed ("and N more"), control
 * characters are escaped, and the handler itself cannot throw.
 */
import { boundMessage, elide as elideInput } from '../elide';

/** The documented bounds of what the handler prints (docs/manager.md, "Exit status and errors"). */
export const OUTPUT_BOUNDS = {
  /** Characters of one message (or one formatted error) before it is elided. */
  MAX_TEXT: 2000,
  /** Inner errors (a config's errors[]) listed before "and N more". */
  MAX_LISTED: 20,
  /** Depth of nested values in --json before they are replaced by a string. */
  MAX_DEPTH: 6,
} as const;

/** A usage error: exit status 2. `option` names what was wrong, as typed. */
export class UsageError extends Error {
  readonly kind = 'usage' as const;
  readonly code = 'EINVAL';
  readonly exitCode = 2;
  readonly option?: string;
  readonly hint?: string;

  constructor(message: string, opts: { option?: string; hint?: string } = {}) {
    super(message);
    this.name = 'UsageError';
    if (opts.option !== undefined) this.option = opts.option;
    if (opts.hint !== undefined) this.hint = opts.hint;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, kind: this.kind, code: this.code, message: this.message, ...(this.option ? { option: this.option } : {}), ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** A failure of the command line itself (a file it cannot write...): exit status 1. */
export class CliError extends Error {
  readonly kind = 'cli' as const;
  readonly code: string;
  readonly path?: string;
  readonly hint?: string;

  constructor(init: { code: string; message: string; path?: string; hint?: string }) {
    super(init.message);
    this.name = 'CliError';
    this.code = init.code;
    if (init.path !== undefined) this.path = init.path;
    if (init.hint !== undefined) this.hint = init.hint;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, kind: this.kind, code: this.code, message: this.message, ...(this.path ? { path: this.path } : {}), ...(this.hint ? { hint: this.hint } : {}) };
  }
}

interface ErrorLike {
  message?: unknown;
  kind?: unknown;
  code?: unknown;
  hint?: unknown;
  exitCode?: unknown;
  errors?: unknown;
  toJSON?: () => unknown;
  format?: () => string;
}

/** `text` bounded to about `max` characters (lib/elide.ts: start and end kept, the middle counted). */
export function elide(text: string, max: number = OUTPUT_BOUNDS.MAX_TEXT): string {
  return elideInput(text, max);
}

/** Control characters (but newline and tab) as \xNN, so that no input can drive the terminal. */
export function printable(text: string): string {

  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** String(x) that cannot throw. */
function safeString(x: unknown): string {
  try {
    return typeof x === 'string' ? x : String(x);
  } catch {
    return Object.prototype.toString.call(x);
  }
}

/** A typed error is one of ours: an object with a string `kind` and `message`. */
function isTyped(err: unknown): err is ErrorLike & { kind: string; message: string } {
  return typeof err === 'object' && err !== null && typeof (err as ErrorLike).kind === 'string' && typeof (err as ErrorLike).message === 'string';
}

function describe(err: unknown, depth = 0): string {
  if (!isTyped(err)) {
    const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorLike;
    const msg = typeof e.message === 'string' ? e.message : safeString(err);
    return elide(`internal error${typeof e.code === 'string' ? ` (${e.code})` : ''}: ${msg}`);
  }
  if (typeof err.format === 'function') return elide(safeString(err.format()));
  let text = elide(err.message);
  if (typeof err.hint === 'string' && err.hint) text += `\n  hint: ${elide(err.hint)}`;
  if (Array.isArray(err.errors) && depth < 2) {
    const listed = err.errors.slice(0, OUTPUT_BOUNDS.MAX_LISTED);
    for (const inner of listed) text += '\n' + describe(inner, depth + 1);
    const more = err.errors.length - listed.length;
    if (more > 0) text += `\nand ${more} more error${more === 1 ? '' : 's'}`;
  }
  return text;
}

/** A JSON-safe copy of `value` with every string elided, arrays cut and depth bounded. */
function bounded(value: unknown, depth = 0): unknown {
  // Long blank-free runs (a path of 10,000 characters) are cut too, not only long strings.
  if (typeof value === 'string') return elide(boundMessage(value));
  if (typeof value === 'bigint') return '0x' + value.toString(16);
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
  if (depth >= OUTPUT_BOUNDS.MAX_DEPTH) return '(nested too deep)';
  if (Array.isArray(value)) {
    const out = value.slice(0, OUTPUT_BOUNDS.MAX_LISTED).map((v) => bounded(v, depth + 1));
    if (value.length > OUTPUT_BOUNDS.MAX_LISTED) out.push(`and ${value.length - OUTPUT_BOUNDS.MAX_LISTED} more`);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, 50)) {
    const b = bounded(v, depth + 1);
    if (b !== undefined) out[k] = b;
  }
  return out;
}

/** The `error` of `{ ok: false, error }`, bounded. Errors that are not ours are `internal`. */
export function errorToJSON(err: unknown): unknown {
  if (!isTyped(err)) {
    const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorLike;
    return bounded({ kind: 'internal', code: typeof e.code === 'string' ? e.code : 'EINTERNAL', message: typeof e.message === 'string' ? e.message : safeString(err) });
  }
  if (typeof err.toJSON === 'function') return bounded(err.toJSON());
  // Typed errors without toJSON (HypercallError...) keep their own fields: call, path, domid ...
  const own = Object.fromEntries(Object.entries(err).filter(([k, v]) => v !== undefined && k !== 'cause' && k !== 'stack'));
  return bounded({ ...own, kind: err.kind, code: err.code, message: err.message, hint: err.hint });
}

/**
 * The exit status an error asks for: its own `exitCode`, else 1. xen-sshm's errors use 0-2;
 * xs-trace's run mode passes on its command's status (127: the command could not be run).
 */
export function exitCodeOf(err: unknown): number {
  const c = typeof err === 'object' && err !== null ? (err as ErrorLike).exitCode : undefined;
  return typeof c === 'number' && Number.isInteger(c) && c >= 0 && c <= 255 ? c : 1;
}

export interface ReportOptions {
  json?: boolean;
  /** The command named in front of text errors; default xen-sshm (xs-trace passes its own). */
  program?: string;
}

/** Prints the error (stderr, or JSON on stdout) and returns the exit status. Never throws. */
export function reportError(err: unknown, opts: ReportOptions = {}): number {
  const program = opts.program ?? 'xen-sshm';
  try {
    if (opts.json) {
      process.stdout.write(JSON.stringify({ ok: false, error: errorToJSON(err) }, null, 2) + '\n');
    } else {
      process.stderr.write(`${program}: ${printable(describe(err))}\n`);
    }
  } catch {
    // Reporting failed (a hostile toJSON, a closed stream): one fixed line, still no stack.
    try {
      process.stderr.write(`${program}: an error occurred that could not be printed\n`);
    } catch {
      // nothing left to write to
    }
  }
  return exitCodeOf(err);
}

/** reportError, then exit with its status. */
export function handleError(err: unknown, opts: ReportOptions = {}): never {
  process.exit(reportError(err, opts));
}
