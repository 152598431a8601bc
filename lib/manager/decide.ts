/**
 * Deciding an apply: the config planner (lib/config/plan.ts) run against the records, then the
 * manager's own policy on the plan (x86 borrowers, set_target consent). `readConfig` is the
 * planner's first stage (the config alone); `decide` its second, run before any change on a
 * snapshot of every region and again inside each claim transaction on the region that
 * transaction read: one function, so the snapshot and the claim cannot disagree.
 */
import { planDomains, readDomains, type CurrentRecords, type EntryDecision, type ReadResult } from '../config/plan';
import type { XlConfig } from '../config/xl-reader';
import type { XenArch } from '../hypervisor/types';
import type { RegionRecord, StorePaths } from '../store';
import { configRefusal, consentMissing, planRefusal, x86Borrower } from './refusals';

export type Decision = EntryDecision<RegionRecord>;

/** The config alone, validated; refused with every error it has. */
export function readConfig(config: XlConfig, opts: { dom0less?: boolean }): ReadResult {
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
  arch: XenArch;
  allowSetTarget?: boolean;
  /** Decide this ID only (a claim). */
  only?: string;
}

/** The decisions of every entry of the config, or the refusal of the first problem. */
export function decide(paths: StorePaths, req: DecideRequest, current: CurrentRecords<RegionRecord>): Decision[] {
  const read = { ...req.read, domains: req.read.domains.map((d) => ({ ...d, domid: req.domid })) };
  const r = planDomains<RegionRecord>(read, current, { only: req.only });
  if (r.errors.length > 0) throw planRefusal(paths, { domid: req.domid, name: req.name }, read.files[0], r.errors, r.againstRecords);
  for (const d of r.decisions) {
    if (d.role !== 'borrower' || !d.region) continue;
    // On x86 only the hardware domain may map another domain's frames (before Xen 4.19).
    if (req.arch === 'x86') throw x86Borrower(d.entry.id, req.domid, d.region.owner);
    if (d.setTarget === 'needed' && !req.allowSetTarget) throw consentMissing(paths, d.entry.id, req.domid, d.region.owner);
  }
  return r.decisions;
}
