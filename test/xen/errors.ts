/**
 * Errors of the real-Xen tier. Like the rest of the project, they are values with a `kind`, a
 * `code` (errno name where one exists) and the file or step involved, so the runner can print
 * one line that says what broke and where.
 */
export type XenTierStep = 'fetch' | 'shim' | 'image' | 'boot' | 'results';

export class XenTierError extends Error {
  readonly kind = 'xen-tier';
  constructor(
    readonly step: XenTierStep,
    readonly code: string,
    message: string,
    readonly path?: string,
  ) {
    super(message);
    this.name = 'XenTierError';
  }

  toJSON(): Record<string, unknown> {
    return { kind: this.kind, step: this.step, code: this.code, path: this.path, message: this.message };
  }
}
