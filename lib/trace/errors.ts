/**
 * Errors of xs-trace: values with `kind`, `code` (errno name where one exists) and the path
 * or option involved, serialisable for `--json`.
 */
export interface TraceErrorInit {
  /** Socket or file path involved. */
  path?: string;
  /** Command-line option involved. */
  option?: string;
  /** Trace-file line involved. */
  line?: number;
  cause?: unknown;
}

export class TraceError extends Error {
  readonly kind = 'trace' as const;
  readonly code: string;
  readonly path?: string;
  readonly option?: string;
  readonly line?: number;

  constructor(code: string, message: string, init: TraceErrorInit = {}) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    Object.defineProperty(this, 'name', { value: 'TraceError', configurable: true, writable: true });
    this.code = code;
    if (init.path !== undefined) this.path = init.path;
    if (init.option !== undefined) this.option = init.option;
    if (init.line !== undefined) this.line = init.line;
  }

  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = { name: this.name, kind: this.kind, code: this.code, message: this.message };
    if (this.path !== undefined) o.path = this.path;
    if (this.option !== undefined) o.option = this.option;
    if (this.line !== undefined) o.line = this.line;
    return o;
  }
}

/** Wraps a Node system error (ENOENT, ECONNREFUSED...) keeping its errno name. */
export function fromSystemError(err: unknown, what: string, path: string): TraceError {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  return new TraceError(code, `${what} ${path}: ${e?.message ?? String(err)}`, { path, cause: err });
}
