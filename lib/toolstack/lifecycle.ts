/**
 * `xen-sshm create` and `destroy` over any toolstack: a domain and its static shared memory
 * made, or ended, as one operation.
 *
 * create: check the config -> `xl create -p CFG` -> apply -> `xl unpause`. When a step fails,
 *   what the earlier steps did is undone (release, then `xl destroy` of the half-made domain)
 *   and the ToolstackError names the failed step and what was undone.
 * destroy: release -> `xl destroy`. A failed release stops before the domain is destroyed.
 */
import { planConfigs } from '../config/plan';
import type { XlConfig } from '../config/xl-reader';
import { domainName } from '../config/shm-entries';
import type { ApplyResult, ReleaseResult, SharedMemoryManager } from '../manager';
import { DomainRef, LifecycleStep, Toolstack, ToolstackError } from './types';

export interface CreateRequest {
  toolstack: Toolstack;
  manager: SharedMemoryManager;
  /** The config file, as given to xl. */
  configPath: string;
  config: XlConfig;
  /** Apply options, or false to create the domain only (as `xl create -p`). */
  apply?: false | { allowSetTarget?: boolean; raiseMaxMem?: boolean; dom0less?: boolean; doorbell?: boolean };
  /** Leave the domain paused. */
  paused?: boolean;
}

export interface CreateResult {
  domid: number;
  domain: string;
  toolstack: string;
  /** What the toolstack said of the domain (the sandbox: its memory). */
  detail?: string;
  applied: ApplyResult | null;
  paused: boolean;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function codeOf(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'EIO';
}

export async function createDomainWithShm(req: CreateRequest): Promise<CreateResult> {
  const { toolstack: ts, manager, config } = req;
  const applyOpts = req.apply === false ? null : req.apply ?? {};

  // Before anything exists: the config must name the domain and, alone, be valid.
  const named = domainName(config);
  if (!named.name) {
    throw new ToolstackError({ step: 'check', code: 'EINVAL', message: `create: step check failed: ${req.configPath}: the config names no domain, nothing created`, errors: [named.error], hint: 'add name = "vm1"' });
  }
  const name = named.name;
  if (applyOpts) {
    // A borrower's owner lives in another config: apply checks that rule against the records.
    const errors = planConfigs([config], undefined, { dom0less: !!applyOpts.dom0less }).errors.filter((e) => e.rule !== 'owner.missing');
    if (errors.length > 0) {
      throw new ToolstackError({
        step: 'check', code: 'EINVAL', domain: name, errors,
        message: `create ${name}: step check failed: ${req.configPath}: ${errors.length} config error${errors.length === 1 ? '' : 's'}, nothing created`,
        hint: `xen-sshm check ${req.configPath} explains each`,
      });
    }
  }

  let made: DomainRef & { detail?: string };
  try {
    made = await ts.createPaused(req.configPath, config, name);
  } catch (e) {
    throw wrap(e, 'create', 'create', { name }, [], []);
  }
  const d: DomainRef = { domid: made.domid, name: made.name };

  /** Undoes what create and apply did, then throws for the failed step. */
  const fail = async (step: LifecycleStep, e: unknown): Promise<never> => {
    const undone: string[] = [];
    const left: string[] = [];
    try {
      await manager.release({ domid: d.domid });
      undone.push(`release of d${d.domid}`);
    } catch (re) {
      left.push(`release of d${d.domid} failed: ${messageOf(re)}`);
    }
    try {
      await ts.destroy(d);
      undone.push(ts.describe('destroy', String(d.domid)));
    } catch (de) {
      left.push(`${ts.describe('destroy', String(d.domid))} failed: ${messageOf(de)}`);
    }
    throw wrap(e, step, 'create', d, undone, left);
  };

  let applied: ApplyResult | null = null;
  if (applyOpts) {
    try {
      applied = await manager.apply({ config, domid: d.domid, allowSetTarget: !!applyOpts.allowSetTarget, raiseMaxMem: !!applyOpts.raiseMaxMem, dom0less: !!applyOpts.dom0less, doorbell: !!applyOpts.doorbell });
    } catch (e) {
      await fail('apply', e);
    }
  }
  if (!req.paused) {
    try {
      await ts.unpause(d);
    } catch (e) {
      await fail('unpause', e);
    }
  }
  return { domid: d.domid, domain: d.name, toolstack: ts.name, ...(made.detail ? { detail: made.detail } : {}), applied, paused: !!req.paused };
}

export interface DestroyRequest {
  toolstack: Toolstack;
  manager: SharedMemoryManager;
  /** NAME or DOMID. */
  domain: string;
  /** Release first (default); false leaves the records to a running daemon, as plain `xl destroy`. */
  release?: boolean;
}

export interface DestroyResult {
  domid: number;
  domain: string;
  toolstack: string;
  released: ReleaseResult | null;
}

export async function destroyDomainWithShm(req: DestroyRequest): Promise<DestroyResult> {
  const { toolstack: ts, manager } = req;
  const dom0 = (): ToolstackError => new ToolstackError({ step: 'destroy', code: 'EPERM', domid: 0, message: 'dom0 cannot be destroyed; nothing released' });
  if (/^0+$/.test(req.domain)) throw dom0();
  let d: DomainRef;
  try {
    d = await ts.resolve(req.domain);
  } catch (e) {
    throw wrap(e, 'resolve', 'destroy', { name: req.domain }, [], []);
  }
  if (d.domid === 0) throw dom0();
  let released: ReleaseResult | null = null;
  if (req.release !== false) {
    try {
      released = await manager.release({ domid: d.domid });
    } catch (e) {
      throw wrap(e, 'release', 'destroy', d, [], ['the domain was not destroyed']);
    }
  }
  try {
    await ts.destroy(d);
  } catch (e) {
    throw wrap(e, 'destroy', 'destroy', d, released ? [`release of d${d.domid}`] : [], []);
  }
  return { domid: d.domid, domain: d.name, toolstack: ts.name, released };
}

/**
 * The ToolstackError of a failed step, keeping the cause's code, hint and command:
 * "create vm1: step apply failed: <why> (undone: release of d5, xl destroy 5)".
 */
function wrap(err: unknown, step: LifecycleStep, op: 'create' | 'destroy', d: Partial<DomainRef>, undone: string[], left: string[]): ToolstackError {
  // A toolstack's own error for this step already says what failed: keep one level.
  const same = err instanceof ToolstackError && err.step === step;
  const e = same && err.cause !== undefined ? err.cause : err;
  const cause = e as { hint?: unknown; command?: unknown; status?: unknown; errors?: unknown } | null;
  const notes = [
    undone.length ? `${op === 'create' ? 'undone' : 'done'}: ${undone.join(', ')}` : '',
    left.length ? `${op === 'create' ? 'NOT undone' : 'note'}: ${left.join('; ')}` : '',
  ].filter(Boolean).join('; ');
  const who = d.name ?? (d.domid !== undefined ? `d${d.domid}` : '');
  return new ToolstackError({
    step, code: codeOf(err), domain: d.name, domid: d.domid, cause: e, undone, left,
    message: `${op}${who ? ` ${who}` : ''}: step ${step} failed: ${messageOf(err)}${notes ? ` (${notes})` : ''}`,
    ...(same && err.command !== undefined ? { command: err.command } : {}),
    ...(same && err.status !== undefined ? { status: err.status } : {}),
    ...(same && err.hint !== undefined ? { hint: err.hint } : {}),
    ...(!same && typeof cause?.hint === 'string' ? { hint: cause.hint } : {}),
    ...(!same && typeof cause?.command === 'string' ? { command: cause.command } : {}),
    ...(!same && typeof cause?.status === 'number' ? { status: cause.status } : {}),
    ...(Array.isArray(cause?.errors) ? { errors: cause.errors } : {}),
  });
}
