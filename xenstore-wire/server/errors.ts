/**
 * Errors of the in-memory xenstored's own API (starting, domains, persistence). Requests from
 * clients never throw: they get xenstore ERROR replies, as from the real daemon.
 */
export type ServerErrorStep = 'listen' | 'domain' | 'persist' | 'state' | 'options';

export class XenstoredServerError extends Error {
  readonly kind = 'server' as const;
  constructor(
    readonly step: ServerErrorStep,
    /** errno name: ENOENT unknown domain, EADDRINUSE socket taken, EINVAL bad file ... */
    readonly code: string,
    message: string,
    /** The socket, persist file or rundir involved. */
    readonly path?: string,
    readonly domid?: number,
  ) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'XenstoredServerError', configurable: true, writable: true });
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { kind: this.kind, step: this.step, code: this.code, message: this.message };
    if (this.path !== undefined) out.path = this.path;
    if (this.domid !== undefined) out.domid = this.domid;
    return out;
  }
}
