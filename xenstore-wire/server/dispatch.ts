/**
 * wire_funcs[] of xenstored_core.c as a typed table: per message type, the room and method
 * that handles it and its flags. Types without an entry get ENOSYS, as from the daemon; which
 * of the newer types have an entry depends on the modelled release (release.ts).
 */
import type { Frame } from '../codec';
import { MessageType } from '../constants';
import type { ServerConnection } from './model';
import type { ReleaseRules } from './release';
import type { Rooms } from './rooms';

export type Handler = (r: Rooms, conn: ServerConnection, req: Frame) => void;

export interface WireSpec {
  readonly handler: Handler;
  /** XS_FLAG_PRIV: privileged connections only (others get EACCES). */
  readonly priv?: boolean;
  /** XS_FLAG_NOTID: the tx_id field is ignored. */
  readonly notid?: boolean;
}

export type WireTable = { readonly [T in MessageType]?: WireSpec };

/** The types every modelled release (4.17 on) handles. */
const WIRE_4_17: WireTable = {
  [MessageType.CONTROL]: { handler: (r, c, q) => r.control.doControl(c, q), priv: true },
  [MessageType.DIRECTORY]: { handler: (r, c, q) => r.nodes.doDirectory(c, q) },
  [MessageType.READ]: { handler: (r, c, q) => r.nodes.doRead(c, q) },
  [MessageType.GET_PERMS]: { handler: (r, c, q) => r.nodes.doGetPerms(c, q) },
  [MessageType.WATCH]: { handler: (r, c, q) => r.watches.doWatch(c, q), notid: true },
  [MessageType.UNWATCH]: { handler: (r, c, q) => r.watches.doUnwatch(c, q), notid: true },
  [MessageType.TRANSACTION_START]: { handler: (r, c, q) => r.transactions.doTransactionStart(c, q) },
  [MessageType.TRANSACTION_END]: { handler: (r, c, q) => r.transactions.doTransactionEnd(c, q) },
  [MessageType.INTRODUCE]: { handler: (r, c, q) => r.domains.doIntroduce(c, q), priv: true },
  [MessageType.RELEASE]: { handler: (r, c, q) => r.domains.doRelease(c, q), priv: true },
  [MessageType.GET_DOMAIN_PATH]: { handler: (r, c, q) => r.domains.doGetDomainPath(c, q) },
  [MessageType.WRITE]: { handler: (r, c, q) => r.nodes.doWrite(c, q) },
  [MessageType.MKDIR]: { handler: (r, c, q) => r.nodes.doMkdir(c, q) },
  [MessageType.RM]: { handler: (r, c, q) => r.nodes.doRm(c, q) },
  [MessageType.SET_PERMS]: { handler: (r, c, q) => r.nodes.doSetPerms(c, q) },
  [MessageType.IS_DOMAIN_INTRODUCED]: { handler: (r, c, q) => r.domains.doIsDomainIntroduced(c, q), priv: true },
  [MessageType.RESUME]: { handler: (r, c, q) => r.domains.doResume(c, q), priv: true },
  [MessageType.SET_TARGET]: { handler: (r, c, q) => r.domains.doSetTarget(c, q), priv: true },
  [MessageType.RESET_WATCHES]: { handler: (r, c, q) => r.watches.doResetWatches(c, q) },
  [MessageType.DIRECTORY_PART]: { handler: (r, c, q) => r.nodes.doDirectoryPart(c, q) },
};

/** Xen 4.21: GET_FEATURE / SET_FEATURE. GET_FEATURE checks privilege itself (own domain is fine). */
const WIRE_FEATURES: WireTable = {
  [MessageType.GET_FEATURE]: { handler: (r, c, q) => r.domains.doGetFeature(c, q) },
  [MessageType.SET_FEATURE]: { handler: (r, c, q) => r.domains.doSetFeature(c, q), priv: true },
};

/** Xen 4.22: GET_QUOTA / SET_QUOTA, dom0 only. */
const WIRE_QUOTAS: WireTable = {
  [MessageType.GET_QUOTA]: { handler: (r, c, q) => r.domains.doGetQuota(c, q), priv: true },
  [MessageType.SET_QUOTA]: { handler: (r, c, q) => r.domains.doSetQuota(c, q), priv: true },
};

/** The wire table of a modelled release: newer types than the release knows get ENOSYS. */
export function wireTable(rules: ReleaseRules): WireTable {
  return {
    ...WIRE_4_17,
    ...(rules.featureRequests ? WIRE_FEATURES : {}),
    ...(rules.quotaRequests ? WIRE_QUOTAS : {}),
  };
}
