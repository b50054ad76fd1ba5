/**
 * Describe's reads ahead for the Up that follows. `wgctl up` asks both agents' Describe, then
 * sends the VM its Up once the Mac has answered too; the reads that gate that Up's `wg-quick
 * up` (the link, the wg-quick leftovers, the route to the Mac) need nothing the Mac says, so a
 * Describe that announces an Up (DescribeRequest.up_follows) starts them once its answer is out
 * (describe.ts says why not before) while the controller waits for the Mac, and the Up takes them (EarlyReads: each step still asks with its usual
 * call and is handed the read already under way, or done).
 *
 * Taken only when nothing can have made them stale beyond what any read-then-act already
 * risks: the next operation through the gate is that Up (no Down, Heal or other Up between),
 * within READ_AHEAD_FRESH_MS. The route to the Mac is read for the address the Describe came
 * from — on the vnic, the Mac's own — and serves only an Up whose mac_source is that address
 * (another address is another argv, read anew). Reads are read-only commands: if no Up takes
 * them, they are waited for and dropped.
 */
import { isIPv4, isIPv6 } from '@wgctl/config';
import ipaddr from 'ipaddr.js';
import type { Runner } from '@wgctl/runner';
import type { TunnelConfig } from '../../host/config';
import { linkState, readWgQuickLeftovers, routeGet, wgQuickTable } from '../../host/wireguard';
import type { EngineScope } from './context';
import { EarlyReads, startedAhead } from './early-reads';

/** `wgctl up` sends the Up moments after the Describe (once the Mac's Describe is in). */
export const READ_AHEAD_FRESH_MS = 1_000;

export interface ReadsAhead {
  readonly reads: EarlyReads;
  readonly atMs: number;
  /** The gate's count of operations when the reads started: the Up taking them must be the next one. */
  readonly operationsStarted: number;
  readonly expiry: NodeJS.Timeout;
}

/**
 * The caller's address (`198.51.100.1`, `::ffff:198.51.100.1`, `2001:db8:0::1`) as the Up's
 * mac_source / mac_source6 address reads: an IPv4-mapped address as IPv4, IPv6 in RFC 5952
 * form; undefined when it is not an IP.
 */
export function callerAddress(host: string): { address: string; family: 4 | 6 } | undefined {
  if (isIPv4(host)) return { address: host, family: 4 };
  if (!isIPv6(host)) return undefined;
  const parsed = ipaddr.IPv6.parse(host);
  if (parsed.isIPv4MappedAddress()) return { address: parsed.toIPv4Address().toString(), family: 4 };
  return { address: parsed.toRFC5952String(), family: 6 };
}

/**
 * The reads that gate `wg-quick up`, with the very calls clean-stale and resolve-lan make (so
 * EarlyReads hands them over): the link first (the journal waits for it), wg-quick's leftovers,
 * and the way to the Mac — the given LAN interface's link, else the route to each address.
 */
export function startGatingReads(r: Runner, config: TunnelConfig, toMac: { lanInterface?: string; addresses: { address: string; family: 4 | 6 }[] }): void {
  startedAhead(linkState(r, config.interface));
  startedAhead(readWgQuickLeftovers(r, config.interface, wgQuickTable(config.parsed.interface.table)));
  if (toMac.lanInterface) startedAhead(linkState(r, toMac.lanInterface));
  else for (const { address, family } of toMac.addresses) startedAhead(routeGet(r, address, family === 6 ? { family: 6 } : {}));
}

/**
 * Starts the reads ahead for `config` and the caller at `caller` (its address), replacing any
 * earlier ones. Not while an operation runs: what it changes would make them stale at once.
 */
export function startReadsAhead(engine: EngineScope, config: TunnelConfig, caller: string): void {
  dropReadsAhead(engine);
  if (engine.gate.running || engine.gate.stopping) return;
  const reads = new EarlyReads(engine.options.runner);
  const mac = callerAddress(caller);
  startGatingReads(reads.starter, config, { addresses: mac ? [mac] : [] });
  const expiry = setTimeout(() => {
    if (engine.readsAhead?.reads === reads) dropReadsAhead(engine);
  }, READ_AHEAD_FRESH_MS);
  expiry.unref();
  engine.readsAhead = { reads, atMs: engine.now(), operationsStarted: engine.gate.operationsStarted, expiry };
}

/**
 * For the Up now running (inside the gate): the reads ahead, when it is the first operation
 * since they started and they are fresh; undefined otherwise. Taken once either way.
 */
export function takeReadsAhead(engine: EngineScope): EarlyReads | undefined {
  const ahead = engine.readsAhead;
  if (!ahead) return undefined;
  engine.readsAhead = undefined;
  clearTimeout(ahead.expiry);
  const fresh = engine.now() - ahead.atMs <= READ_AHEAD_FRESH_MS && engine.gate.operationsStarted === ahead.operationsStarted + 1;
  if (fresh) return ahead.reads;
  void ahead.reads.close();
  return undefined;
}

/** Drops the reads ahead (waited for in the background: none outlives its use). */
export function dropReadsAhead(engine: EngineScope): void {
  const ahead = engine.readsAhead;
  if (!ahead) return;
  engine.readsAhead = undefined;
  clearTimeout(ahead.expiry);
  void ahead.reads.close();
}
