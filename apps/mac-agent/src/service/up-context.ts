/**
 * The one context an Up's steps share (UpContext): the request, the journal as it was and as
 * the Up writes it, and what its steps find out. On its own so that up.ts and the modules whose
 * steps it runs (up-discovery.ts, up-dns-ahead.ts) share it without importing up.ts back (no
 * import cycle).
 */
import type { StepListener } from '@wgctl/runner';
import type { KillSwitchPolicy, DnsSnapshot, RouteReadback, RouteSpec, RoutingTable, Uplink, Vnic } from '../host/driver';
import type { Ipv6InEffect, MacJournal, UpIntent } from './journal';
import { Operation, type RequestOptions, type UpDownDeps } from './operation';

/** An Up the caller asked for, or the engine re-asserting the journal at start (reconcile). */
export type UpMode = 'request' | 'reconcile';

/** One Up: the request, the journal as it was and as this Up writes it, and what its steps find out, each in its turn. */
export class UpContext extends Operation {
  /** The journal as this Up found it. */
  readonly previous: MacJournal;
  /** The journal this Up writes (a copy of `previous` until the first write). */
  readonly journal: MacJournal;
  /** Once the journal says up-in-progress: a failure rolls back (or, re-asserting, holds the kill switch). */
  changedAnything = false;
  // discover
  uplink!: Uplink;
  vnic!: Vnic;
  ipv6!: Ipv6InEffect;
  // planUp: what this Up wants on the host
  policy!: KillSwitchPolicy;
  pins!: RouteSpec[];
  excluded!: RouteSpec[];
  split!: RouteSpec[];
  split6!: RouteSpec[];
  wanted!: RouteSpec[];
  /** The routing table as discover read it (drivers with readRoutingTable): the route steps read it back from there. */
  table?: RoutingTable;
  /**
   * DNS as discover found it when it took the kill-switch-only Up's discovery (read beside the
   * table, or that Up's read ahead): the dns step's read. Undefined: the dns step reads it.
   */
  dnsNow?: DnsSnapshot;
  /**
   * Set when discover took the kill-switch-only Up's discovery and its read-back of the table
   * without reading (up-discovery.ts): the fingerprint verify's read must still show.
   */
  unreadFingerprint?: string;
  /** The routing table, read once per Up (by discover, else by the first route step) for every route it wants. */
  routesBefore?: RouteReadback[] | Promise<RouteReadback[]>;

  constructor(
    deps: UpDownDeps,
    readonly intent: UpIntent,
    options: RequestOptions,
    listener: StepListener,
    readonly mode: UpMode,
  ) {
    super(deps, options, listener, deps.stallAfterStep);
    this.previous = this.core.loadJournal();
    this.journal = JSON.parse(JSON.stringify(this.previous)) as MacJournal;
  }
}
