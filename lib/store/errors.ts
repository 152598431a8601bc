/** A record in xenstore that does not follow the schema (written by hand or by another tool). */
export class StoreError extends Error {
  readonly kind = 'store' as const;
  readonly code: string;
  /** The xenstore node involved. */
  readonly path: string;

  constructor(code: string, path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'StoreError';
    this.code = code;
    this.path = path;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, kind: this.kind, code: this.code, path: this.path, message: this.message };
  }
}
