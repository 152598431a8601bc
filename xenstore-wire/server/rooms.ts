/**
 * How the rooms of the in-memory xenstored find each other. Each room is one job of C
 * xenstored (database, domains, watches, transactions, output, control, node requests);
 * XenstoredCore (core.ts) builds them around one shared state and dispatches requests.
 *
 * xenstored's rules call across these jobs (deleting a node fires watches and changes a
 * domain's node count; releasing a domain deletes its nodes), so each room holds the set of
 * all rooms and calls the one whose job a step is.
 */
import type { Quotas, DomainOracle } from './model';
import type { Database } from './database';
import type { Domains } from './domains';
import type { Watches } from './watches';
import type { Transactions } from './transactions';
import type { Output } from './output';
import type { Control } from './control';
import type { NodeRequests } from './nodes';
import type { ReleaseRules } from './release';

/** State that is not any one room's: settings, hooks, and per-request bookkeeping. */
export interface CoreState {
  readonly quotas: Quotas;
  readonly oracle: DomainOracle;
  /** Which Xen release's xenstored is modelled (message types, features, quotas). */
  readonly release: ReleaseRules;
  trace?: (line: string) => void;
  injectCommitFailure?: () => boolean;
  onChange?: () => void;
  onDomain?: (domid: number, event: 'introduced' | 'released') => void;
  /** Set by anything that changes the tree or domains; reported through onChange. */
  changed: boolean;
  /** Work the daemon does after the reply is queued (a connection freed later in the loop). */
  readonly afterReply: (() => void)[];
}

export interface Rooms {
  readonly state: CoreState;
  readonly db: Database;
  readonly domains: Domains;
  readonly watches: Watches;
  readonly transactions: Transactions;
  readonly output: Output;
  readonly control: Control;
  readonly nodes: NodeRequests;
}
