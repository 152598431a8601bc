/**
 * ManagerError: why an apply, release, reconcile or peek refused or failed, as a value:
 * `kind` 'manager', `code` (an errno name: EEXIST, EBUSY, ENOMEM, EPERM, ESRCH, ENOENT, EINVAL),
 * `reason` (a stable word for programs), the region ID, domain and xenstore path involved, a
 * hint for the administrator, and the underlying error (HypercallError, XenstoreError,
 * ConfigError) as `cause`. Config problems come as `errors`, one ConfigError each, and `rule`
 * names the first one's rule. The texts are in refusals.ts.
 */
import type { RuleId } from '../config/errors';

export type ManagerReason =
  | 'config' // the config breaks a rule (errors[] holds each ConfigError)
  | 'domain' // the domain does not exist, is dying, is dom0, or its name does not match
  | 'owner-exists' // another domain owns the ID
  | 'no-owner' // a borrower applied before any owner
  | 'mismatch' // the borrower's entry does not fit the owner's region
  | 'overlap' // the range overlaps another region of the same domain
  | 'conflict' // the domain already uses the ID differently
  | 'state' // the region is orphaned or being released
  | 'busy' // another live process holds an intent
  | 'set-target' // consent missing, or a second owner
  | 'x86-borrower' // x86 domU borrower
  | 'memory' // the owner's max memory is too low
  | 'hypercall' // Xen refused something else
  | 'lost-claim' // the claim was taken away while the hypercalls ran
  | 'not-found' // no such region
  | 'store'; // a record does not follow the schema

export interface ManagerErrorInit {
  code: string;
  reason: ManagerReason;
  /** The config rule broken, when the refusal is one (the rule `xen-sshm check` names too). */
  rule?: RuleId;
  message: string;
  id?: string;
  domid?: number;
  domain?: string;
  path?: string;
  hint?: string;
  cause?: unknown;
  errors?: unknown[];
}

export class ManagerError extends Error {
  readonly kind = 'manager' as const;
  readonly code: string;
  readonly reason: ManagerReason;
  readonly rule?: RuleId;
  readonly id?: string;
  readonly domid?: number;
  readonly domain?: string;
  /** The xenstore node involved. */
  readonly path?: string;
  readonly hint?: string;
  readonly errors?: unknown[];

  constructor(init: ManagerErrorInit) {
    super(init.message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'ManagerError';
    this.code = init.code;
    this.reason = init.reason;
    if (init.rule !== undefined) this.rule = init.rule;
    if (init.id !== undefined) this.id = init.id;
    if (init.domid !== undefined) this.domid = init.domid;
    if (init.domain !== undefined) this.domain = init.domain;
    if (init.path !== undefined) this.path = init.path;
    if (init.hint !== undefined) this.hint = init.hint;
    if (init.errors !== undefined) this.errors = init.errors;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, kind: this.kind, code: this.code, reason: this.reason, message: this.message };
    for (const k of ['rule', 'id', 'domid', 'domain', 'path', 'hint'] as const) if (this[k] !== undefined) out[k] = this[k];
    if (this.errors) out.errors = this.errors.map((e) => (typeof (e as { toJSON?: unknown }).toJSON === 'function' ? (e as { toJSON(): unknown }).toJSON() : String(e)));
    const c = this.cause as { toJSON?: () => unknown; message?: string; code?: string } | undefined;
    if (c !== undefined) out.cause = typeof c.toJSON === 'function' ? c.toJSON() : { message: c.message, code: c.code };
    return out;
  }
}
