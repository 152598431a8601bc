/**
 * Errors of the real-daemon harness. Values with `kind`, `code` (errno name where one exists)
 * and the file involved, so a failing test says which component is missing and how to get it.
 */
export type HarnessStep = 'preload' | 'prepare' | 'binary' | 'rundir' | 'spawn' | 'startup' | 'client';

export class HarnessError extends Error {
  readonly kind = 'harness' as const;
  constructor(
    readonly step: HarnessStep,
    readonly code: string,
    message: string,
    readonly path?: string,
    /** Last lines the daemon or tool printed, when there are any. */
    readonly output?: string,
  ) {
    super(output ? `${message}\n--- output ---\n${output}` : message);
    Object.defineProperty(this, 'name', { value: 'HarnessError', configurable: true, writable: true });
  }

  toJSON(): Record<string, unknown> {
    return { kind: this.kind, step: this.step, code: this.code, path: this.path, message: this.message };
  }
}
