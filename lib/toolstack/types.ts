/**
 * A toolstack: what makes, starts and ends domains. On a real host that is xl (xl.ts); in the
 * sandbox, lib/sandbox/toolstack.ts plays it on the simulated host. `xen-sshm create` and
 * `destroy` (lifecycle.ts) run the same steps over either, so the dom0 and sandbox walkthroughs
 * read the same.
 */
import type { XlConfig } from '../config/xl-reader';

export interface DomainRef {
  domid: number;
  name: string;
}

/** The steps of create and destroy, as errors name them. */
export type LifecycleStep = 'check' | 'create' | 'apply' | 'unpause' | 'resolve' | 'release' | 'destroy';

export interface Toolstack {
  /** 'xl', or 'sandbox'. */
  readonly name: string;
  /** `xl create -p CFG`: the domain exists, paused. `detail` is what the toolstack can say of it. */
  createPaused(configPath: string, config: XlConfig, name: string): Promise<DomainRef & { detail?: string }>;
  /** `xl unpause`. */
  unpause(d: DomainRef): Promise<void>;
  /** `xl destroy`. */
  destroy(d: DomainRef): Promise<void>;
  /** NAME or DOMID -> the domain (ToolstackError ESRCH if there is none). */
  resolve(arg: string): Promise<DomainRef>;
  /** How the step reads for this toolstack, for messages: "xl create -p vm1.cfg". */
  describe(step: 'create' | 'unpause' | 'destroy', what: string): string;
}

export interface ToolstackErrorInit {
  code: string;
  step: LifecycleStep;
  message: string;
  domain?: string;
  domid?: number;
  /** The command that failed, as run. */
  command?: string;
  /** Its exit status, when it ran and failed. */
  status?: number;
  /** What was undone after the failure, in order. */
  undone?: string[];
  /** What could not be undone, with why: left for the administrator. */
  left?: string[];
  hint?: string;
  cause?: unknown;
  errors?: unknown[];
}

/**
 * A create or destroy that failed: `step` names the step, `undone` what was undone after it,
 * `left` what could not be. `code` is the errno name where there is one (the cause's, ENOENT
 * for a missing xl, ETIMEDOUT), or EXLFAIL when xl exited with a failure status.
 */
export class ToolstackError extends Error {
  readonly kind = 'toolstack' as const;
  readonly code: string;
  readonly step: LifecycleStep;
  readonly domain?: string;
  readonly domid?: number;
  readonly command?: string;
  readonly status?: number;
  readonly undone: string[];
  readonly left: string[];
  readonly hint?: string;
  readonly errors?: unknown[];

  constructor(init: ToolstackErrorInit) {
    super(init.message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'ToolstackError';
    this.code = init.code;
    this.step = init.step;
    if (init.domain !== undefined) this.domain = init.domain;
    if (init.domid !== undefined) this.domid = init.domid;
    if (init.command !== undefined) this.command = init.command;
    if (init.status !== undefined) this.status = init.status;
    this.undone = init.undone ?? [];
    this.left = init.left ?? [];
    if (init.hint !== undefined) this.hint = init.hint;
    if (init.errors !== undefined) this.errors = init.errors;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, kind: this.kind, code: this.code, step: this.step, message: this.message };
    for (const k of ['domain', 'domid', 'command', 'status', 'hint'] as const) if (this[k] !== undefined) out[k] = this[k];
    out.undone = this.undone;
    out.left = this.left;
    if (this.errors) out.errors = this.errors.map((e) => (typeof (e as { toJSON?: unknown }).toJSON === 'function' ? (e as { toJSON(): unknown }).toJSON() : String(e)));
    const c = this.cause as { toJSON?: () => unknown; message?: string; code?: string } | undefined;
    if (c !== undefined && c !== null) out.cause = typeof c.toJSON === 'function' ? c.toJSON() : { message: c.message, code: c.code };
    return out;
  }
}
