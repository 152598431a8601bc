/**
 * Errors of xs-trace: values with `kind`, `code` (errno name where one exists) and the path
 * or option involved, serialisable for `--json`.
 */
import { elide } from '../elide';

export interface TraceErrorInit {
  /** Socket or file path involved. */
  path?: string;
  /** Command-line option involved. */
  option?: string;
  /** Trace-file line involved. */
  line?: number;
  /** Exit status of the command (default 1; 2 for usage errors, 127 when a command cannot run). */
  exitCode?: number;
  cause?: unknown;
}

export class TraceError extends Error {
  readonly kind = 'trace' as const;
  readonly code: string;
  readonly path?: string;
  readonly option?: string;
  readonly line?: number;
  /** Read by the shared error handler (lib/cli/handle-error.ts). */
  readonly exitCode: number;

  constructor(code: string, message: string, init: TraceErrorInit = {}) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    Object.defineProperty(this, 'name', { value: 'TraceError', configurable: true, writable: true });
    this.code = code;
    if (init.path !== undefined) this.path = init.path;
    if (init.option !== undefined) this.option = init.option;
    if (init.line !== undefined) this.line = init.line;
    this.exitCode = init.exitCode ?? 1;
  }

  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = { name: this.name, kind: this.kind, code: this.code, message: this.message };
    if (this.path !== undefined) o.path = this.path;
    if (this.option !== undefined) o.option = this.option;
    if (this.line !== undefined) o.line = this.line;
    return o;
  }
}

/** A bad option or argument: exit status 2, like commander's own usage errors. */
export function usageError(message: string, option: string, code = 'EINVAL'): TraceError {
  return new TraceError(code, message, { option, exitCode: 2 });
}

/** Wraps a Node system error (ENOENT, ECONNREFUSED...) keeping its errno name. */
export function fromSystemError(err: unknown, what: string, path: string): TraceError {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  // Node's message repeats the path: keep only the errno part of it, and the path elided.
  const detail = typeof e?.code === 'string' ? e.code : elide(String(e?.message ?? err));
  return new TraceError(code, `${what} ${elide(path)}: ${detail}`, { path, cause: err });
}
