/**
 * Deciding an apply: the config planner (lib/config/plan.ts) run against the records, then the
 * manager's own policy on the plan (whether this Xen lets the domain borrow, set_target consent). `readConfig` is the
 * planner's first stage (the config alone); `decide` its second, run before any change on a
 * snapshot of every region and again inside each claim transaction on the region that
 * transaction read: one function, so the snapshot and the claim cannot disagree.
 */
import { planDomains, readDomains, type CurrentRecords, type EntryDecision, type ReadResult } from '../config/plan';
import type { XlConfig } from '../config/xl-reader';
import type { BorrowerSupport } from '../hypervisor/types';
import type { RegionRecord, StorePaths } from '../store';
import type { ManagerContext } from './context';
import { borrowerRefused, configRefusal, consentMissing, planRefusal } from './refusals';

export type Decision = EntryDecision<RegionRecord>;

/** The config alone, validated; refused with every error it has. */
export function readConfig(config: XlConfig, opts: { dom0less?: boolean; doorbell?: boolean }): ReadResult {
  const read = readDomains([config], opts);
  if (read.errors.length > 0) throw configRefusal(config.file, read.errors);
  return read;
}

export interface DecideRequest {
  /** readConfig()'s result. */
  read: ReadResult;
  domid: number;
  /** The domain's name, for messages. */
  name: string | null;
  /**
   * What the hypervisor layer says of this domain as a borrower (its release's rule:
   * Hypervisor.borrowerSupport), asked once per apply; required when the config borrows.
   */
  support?: BorrowerSupport;
  allowSetTarget?: boolean;
  /** Decide this ID only (a claim). */
  only?: string;
}

/** The planner's decisions of every entry of the config, or the refusal of its first problem. */
export function plan(paths: StorePaths, req: DecideRequest, current: CurrentRecords<RegionRecord>): Decision[] {
  const read = { ...req.read, domains: req.read.domains.map((d) => ({ ...d, domid: req.domid })) };
  const r = planDomains<RegionRecord>(read, current, { only: req.only });
  if (r.errors.length > 0) throw planRefusal(paths, { domid: req.domid, name: req.name }, read.files[0], r.errors, r.againstRecords);
  return r.decisions;
}

/** Whether the decisions borrow a recorded region (so that borrowerSupport must be asked). */
export const borrows = (decisions: readonly Decision[]): boolean => decisions.some((d) => d.role === 'borrower' && d.region !== null);

/**
 * The manager's policy on the decisions: the hypervisor layer's rule for this borrower on this
 * Xen (x86 HVM/PVH domUs from 4.19, never PV; Arm always), then consent to set_target.
 */
export function policy(paths: StorePaths, req: DecideRequest, decisions: readonly Decision[]): void {
  for (const d of decisions) {
    if (d.role !== 'borrower' || !d.region) continue;
    if (!req.support) throw new Error('decide: a borrower decided without the hypervisor\'s borrowerSupport');
    if (!req.support.supported) throw borrowerRefused(d.entry.id, req.domid, d.region.owner, req.support);
    if (d.setTarget === 'needed' && !req.allowSetTarget) throw consentMissing(paths, d.entry.id, req.domid, d.region.owner);
  }
}

/** The decisions of every entry of the config, or the refusal of the first problem. */
export function decide(paths: StorePaths, req: DecideRequest, current: CurrentRecords<RegionRecord>): Decision[] {
  const decisions = plan(paths, req, current);
  policy(paths, req, decisions);
  return decisions;
}

/** borrowerSupport answers, one per apply call (keyed by its request object). */
const supportOf = new WeakMap<object, BorrowerSupport>();

/**
 * decide() for an apply: asks the hypervisor layer's borrowerSupport once per apply call (`call`,
 * the request object), and only when an entry borrows a recorded region.
 */
export async function decideApply(ctx: ManagerContext, call: object, req: Omit<DecideRequest, 'support'>, current: CurrentRecords<RegionRecord>): Promise<Decision[]> {
  const decisions = plan(ctx.paths, req, current);
  let support = supportOf.get(call);
  if (!support && borrows(decisions)) {
    support = await ctx.hv.borrowerSupport(req.domid);
    supportOf.set(call, support);
  }
  policy(ctx.paths, { ...req, support }, decisions);
  return decisions;
}
