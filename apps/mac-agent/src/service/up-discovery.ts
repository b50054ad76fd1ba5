/**
 * The discover step of an Up: the uplink (default route), the vnic facing the VM and the IPv6
 * decision — found anew, or taken from a kill-switch-only Up or a Describe of the same run
 * while the routing table is unchanged since — and the checks only they allow (excluded ranges
 * against the host). Apart from up.ts, which runs it first and plans from what it found.
 */
import { readTogether, SharedReadRunner, type Runner } from '@wgctl/runner';
import { excludedProblems } from '@wgctl/config';
import type { Uplink, Vnic } from '../host/driver';
import { type HostDescription, hostRoute, IPV4_SPLIT, IPV6_SPLIT } from './core';
import type { MacJournal, UpIntent } from './journal';
import type { StepResult } from './operation';
import type { UpContext } from './up-context';
import { readDnsAhead, takeDnsReadAhead } from './up-dns-ahead';

export async function discover(up: UpContext, r: Runner): Promise<StepResult> {
  const { intent, driver } = up;
  // The table read serves discoverUplink (the same commands, read once) and the route steps.
  const shared = new SharedReadRunner(r);
  const described = takeDescription(up);
  if (takeTableAhead(up)) {
    // DNS as that Up read it, if it could (files unchanged since); else the dns step reads it,
    // beside the route steps rather than before them (darwin: networksetup, once per service).
    up.dnsNow = takeDnsReadAhead(up);
    return `${describeDiscovery(up)} (as the kill-switch-only Up found them, with its read-back of the routing table: verify checks the table again)`;
  }
  const table = driver.readRoutingTable?.(shared);
  if (table && justAfterFailClosedUp(up)) {
    const [read, dns] = await readTogether([table, readDnsAhead(up, shared)]);
    up.table = read;
    if (reuseDiscovery(up)) {
      up.dnsNow = dns;
      return `${describeDiscovery(up)} (as the kill-switch-only Up found them: the routing table is unchanged since)`;
    }
  }
  if (table && described) {
    up.table = await table;
    if (up.table.fingerprint(ownDestinations(intent)) === described.table.fingerprint(ownDestinations(intent))) {
      judgeDiscovery(up, { status: 'fulfilled', value: described.uplink }, { status: 'fulfilled', value: described.vnic });
      return `${describeDiscovery(up)} (as the Describe of this run found them: the routing table is unchanged since)`;
    }
  }
  // The uplink and the vnic are found independently: read both at once, judge after.
  const [found, vnicFound, tableRead] = await Promise.allSettled([driver.discoverUplink(shared), driver.discoverVnic(shared, intent.vmAddress), table]);
  if (tableRead.status === 'rejected') throw tableRead.reason;
  up.table = tableRead.value;
  judgeDiscovery(up, found, vnicFound);
  return describeDiscovery(up);
}

/** How recent a kill-switch-only Up's read-back of the table must be for the full Up to take it unread (`wgctl up`: ~0.1 s). */
export const TABLE_AHEAD_FRESH_MS = 2_000;

/**
 * The full Up right after a kill-switch-only Up, when that Up's verify read the whole table back
 * moments ago and found it as its discover had (only its own pins added): that Up's discovery
 * and table serve unread, and the route steps start at once (the handshake's critical path).
 * Its verify reads the table anyway and checks the fingerprint again (verifyRoutesAndKillSwitch):
 * a change in between (a roam) is named there and left to the roam check, which starts after
 * the Up — meanwhile the kill switch holds every interface but the vnic (fail-closed).
 */
function takeTableAhead(up: UpContext): boolean {
  const ahead = up.tableAhead;
  const prev = up.previous;
  if (!ahead || up.dryRun || !justAfterFailClosedUp(up) || up.core.now() - ahead.atMs > TABLE_AHEAD_FRESH_MS) return false;
  if (ahead.fingerprint !== prev.routingFingerprint || !sameAsked(prev, up.intent)) return false;
  if (!prev.uplink || !prev.vnic || !prev.ipv6 || prev.uplinkLost) return false;
  // Routes of an earlier Up that this one removes (remove-stale) would move the fingerprint verify checks: read instead.
  const own = new Set(ownDestinations(up.intent));
  if (prev.routes.some((x) => !own.has(x.destination))) return false;
  up.uplink = prev.uplink;
  up.vnic = prev.vnic;
  up.ipv6 = prev.ipv6;
  up.table = ahead.table;
  up.unreadFingerprint = ahead.fingerprint;
  return true;
}

/** How recent a Describe must be for the Up that follows to take its findings (`wgctl up` sends them moments apart). */
export const DESCRIPTION_FRESH_MS = 10_000;

/**
 * The last Describe's findings for this Up's VM, when recent and the Up was requested; taken
 * once whatever comes of it. The Up compares the routing table with the one the Describe read
 * (every route but ours, as reuseDiscovery does) before it takes them.
 */
function takeDescription(up: UpContext): HostDescription | undefined {
  const described = up.core.lastDescription;
  up.core.lastDescription = undefined;
  if (!described || up.mode !== 'request' || described.vmAddress !== up.intent.vmAddress) return undefined;
  return up.core.now() - described.atMs <= DESCRIPTION_FRESH_MS ? described : undefined;
}

/** What discover found, checked: the uplink (the last known one while re-asserting offline), the vnic, the IPv6 decision. */
function judgeDiscovery(up: UpContext, found: PromiseSettledResult<Uplink | null>, vnicFound: PromiseSettledResult<Vnic>): void {
  const { intent, journal: j } = up;
  if (found.status === 'rejected') throw found.reason;
  if (found.value) up.uplink = found.value;
  else if (up.mode === 'reconcile' && up.previous.uplink) {
    // Offline while re-asserting: keep the kill switch on the last known uplink.
    up.uplink = up.previous.uplink;
    j.uplinkLost = true;
  } else {
    throw new Error('no default route: connect to a network first (the WireGuard server is pinned through the current gateway)');
  }
  if (vnicFound.status === 'rejected') throw vnicFound.reason;
  const { uplink } = up;
  const vnic = (up.vnic = vnicFound.value);
  if (vnic.interface === uplink.interface) {
    throw new Error(`the VM (${intent.vmAddress}) is reached through the uplink ${uplink.interface}: use a shared or host-only VM network, not a bridged one`);
  }
  if (intent.ipv6 === 'route' && !vnic.address6) throw new Error(`ipv6 route mode: ${vnic.interface} has no global IPv6 address facing the VM`);
  up.ipv6 = intent.ipv6 === 'route' || (intent.ipv6 === 'auto' && vnic.address6 && intent.vmAddress6) ? 'route' : 'block';
  for (const e of intent.endpoints) {
    if (e.ip.includes(':') && !uplink.gateway6) throw new Error(`endpoint ${e.ip} is IPv6 but the uplink ${uplink.interface} has no IPv6 default route`);
  }
  checkExcludedAgainstHost(intent.exclude ?? [], uplink, vnic);
}

function describeDiscovery(up: UpContext): string {
  const { intent, uplink, vnic, ipv6, journal: j } = up;
  return `uplink ${uplink.interface} via ${uplink.gateway}${j.uplinkLost ? ' (last known; no default route now)' : ''}; VM ${intent.vmAddress} on ${vnic.interface} (host ${vnic.address}); IPv6 ${ipv6 === 'route' ? `routed via ${intent.vmAddress6}` : 'blocked on the uplink'}`;
}

/** The destinations of the routes an Up of `intent` adds: left out of the routing table's fingerprint. */
export function ownDestinations(intent: UpIntent): string[] {
  return [...intent.endpoints.map((e) => hostRoute(e.ip)), ...(intent.exclude ?? []), ...IPV4_SPLIT, ...IPV6_SPLIT];
}

/**
 * The full Up right after a kill-switch-only Up takes that Up's discovery (uplink, vnic, IPv6
 * decision) when what discover reads cannot have changed since: the same VM, servers, IPv6 mode
 * and excluded ranges asked for, and the routing table — every route but ours — as that Up read
 * it. The uplink is the table's best default route; the vnic and its addresses show as their
 * interface routes (a change of address adds or removes a prefix route); so an equal table means
 * the same answers, and anything else (a roam, a new address) discovers again.
 */
function reuseDiscovery(up: UpContext): boolean {
  const prev = up.previous;
  if (!up.table || !prev.routingFingerprint || !prev.uplink || !prev.vnic || !prev.ipv6 || prev.uplinkLost) return false;
  if (!sameAsked(prev, up.intent)) return false;
  if (up.table.fingerprint(ownDestinations(up.intent)) !== prev.routingFingerprint) return false;
  up.uplink = prev.uplink;
  up.vnic = prev.vnic;
  up.ipv6 = prev.ipv6;
  return true;
}

/** The previous Up asked for what discover depends on as `intent` does: the same VM, servers, IPv6 mode and excluded ranges. */
function sameAsked(prev: MacJournal, intent: UpIntent): boolean {
  const asked = (i: UpIntent) => JSON.stringify([i.vmAddress, i.vmAddress6 ?? '', i.ipv6, i.endpoints.map((e) => e.ip), i.exclude ?? []]);
  return Boolean(prev.intent) && asked(prev.intent!) === asked(intent);
}

/**
 * What only discover can tell about the excluded CIDRs: none may cover the Mac's own address
 * facing the VM (the VM's is refused with the request), and an IPv6 one needs an IPv6 gateway.
 */
function checkExcludedAgainstHost(exclude: readonly string[], uplink: Uplink, vnic: Vnic): void {
  const problems = [
    ...excludedProblems('exclude', exclude, [{ address: vnic.address, what: `this host's address facing the VM on ${vnic.interface}` }, { address: vnic.address6, what: `this host's IPv6 address facing the VM on ${vnic.interface}` }]),
    ...exclude.filter((c) => c.includes(':') && !uplink.gateway6).map((c) => `exclude: ${c} is IPv6 but the uplink ${uplink.interface} has no IPv6 default route`),
  ];
  if (problems.length) throw new Error(problems.join('; '));
}

/** How recent a kill-switch-only Up must be for the full Up that follows to take its kill switch as loaded (the same `wgctl up`). */
export const FAIL_CLOSED_UP_FRESH_MS = 60_000;

/** A requested full Up, and the journal is that of a kill-switch-only Up that succeeded moments ago. */
export function justAfterFailClosedUp(up: UpContext): boolean {
  const prev = up.previous;
  if (up.mode !== 'request' || up.intent.killSwitchOnly) return false;
  if (prev.phase !== 'up-in-progress' || !prev.intent?.killSwitchOnly || prev.lastError) return false;
  return Boolean(prev.killSwitch?.handle) && up.core.now() - prev.updatedAtMs <= FAIL_CLOSED_UP_FRESH_MS;
}
