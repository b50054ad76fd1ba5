/**
 * Routes on macOS: discovery from `netstat -rn` and `ifconfig`, `route -q -n add|delete`, and
 * the read-back of routes from `netstat -rn`, confirmed with `route -n get` where netstat's
 * cut Netif column leaves it unsure. `route` exits 0 on kernel errors: its text decides.
 */
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import {
  ParseError,
  classifyNetstatGateway,
  classifyRouteChange,
  findDefaultGateway,
  findIfconfigInterfaceForAddress,
  netifMatches,
  parseIfconfig,
  parseNetstatRoutes,
  parseRouteGet,
  type NetstatGateway,
  type NetstatRoute,
  type RouteGetResult,
} from '@wgctl/parsers';
import { type Runner, mapTogether, readTogether } from '@wgctl/runner';
import type { RouteReadback, RouteSpec, RoutingTable, Uplink, Vnic } from '../driver';
import { READ, checkExit, familyOf } from './common';

function canonicalCidr(cidr: string): string {
  const [address, length] = cidr.split('/');
  const family = familyOf(address);
  return `${ipaddr.parse(address).toString()}/${length ?? (family === 'inet' ? 32 : 128)}`;
}

function isDefault(cidr: string): boolean {
  return cidr === 'default' || /^(0\.0\.0\.0|::)\/0$/.test(cidr);
}

/** `fe80::1%en0` and `FE80::1%en0` are the same next hop; the scope counts only when given. */
function gatewayMatches(gateway: NetstatGateway, wanted: string): boolean {
  if (gateway.kind !== 'ip') return false;
  const [address, scope] = wanted.split('%');
  try {
    if (ipaddr.parse(address).toString() !== gateway.address) return false;
  } catch {
    return false;
  }
  return scope === undefined || scope === gateway.scope;
}

/**
 * `route -q -n add|delete -inet[6] [-host] DEST GATEWAY`. Host routes get `-host`: without it
 * route(8) decides host-or-net from the classful host part (192.0.2.0 would become a net).
 */
export function darwinRouteArgv(verb: 'add' | 'delete', route: RouteSpec): string[] {
  const [address, length] = route.destination.split('/');
  const family = familyOf(address);
  const host = length === undefined || Number(length) === (family === 'inet' ? 32 : 128);
  const destination = host ? ['-host', address] : [route.destination];
  const via = route.gateway ? [route.gateway] : route.interface ? ['-interface', route.interface] : [];
  return ['route', '-q', '-n', verb, `-${family}`, ...destination, ...via];
}

function describeRoute(route: RouteSpec): string {
  return `${route.destination} via ${route.gateway}${route.interface ? ` dev ${route.interface}` : ''}`;
}

async function readNetstatRoutes(run: Runner): Promise<NetstatRoute[]> {
  return parseNetstatRoutes((await run.run(['netstat', '-rn'], READ)).stdout);
}

// ----- discovery -----

export async function discoverDarwinUplink(run: Runner, withAddress = true): Promise<Uplink | null> {
  // The addresses beside the table (one round, not two), by the very command discoverVnic runs:
  // through a SharedReadRunner (the Describe, discover) `ifconfig` runs once for both. The
  // address is a nicety: an ifconfig that fails or an interface gone meanwhile costs only it.
  const [routes, ifconfig] = await readTogether([readNetstatRoutes(run), withAddress ? run.run(['ifconfig'], READ).catch(() => undefined) : undefined]);
  const v4 = findDefaultGateway(routes, 'inet');
  if (!v4) return null;
  const v6 = findDefaultGateway(routes, 'inet6');
  const uplink: Uplink = { interface: v4.interface, gateway: v4.gateway };
  if (v6 && v6.interface === v4.interface) uplink.gateway6 = v6.gateway;
  const address = ifconfig && parseIfconfig(ifconfig.stdout).find((i) => i.name === v4.interface)?.inet[0]?.address;
  if (address) uplink.address = address;
  return uplink;
}

export async function discoverDarwinVnic(run: Runner, vmAddress: string): Promise<Vnic> {
  const interfaces = parseIfconfig((await run.run(['ifconfig'], READ)).stdout);
  const own = interfaces.find((i) => i.inet.some((a) => a.address === vmAddress));
  if (own) throw new Error(`${vmAddress} is an address of this Mac (on ${own.name}), not the VM's`);
  const found = findIfconfigInterfaceForAddress(interfaces, vmAddress);
  if (!found) {
    throw new Error(
      `no interface of this Mac is on the same network as the VM address ${vmAddress}: is the VM running, on a shared or host-only network (bridge100/bridge101, vnic0)?`,
    );
  }
  const vnic: Vnic = { interface: found.interface.name, address: found.inet.address };
  const global6 = found.interface.inet6.find(
    (a) => !a.scope && !a.address.startsWith('fe80:') && !a.flags.includes('deprecated') && !a.flags.includes('temporary'),
  );
  if (global6) vnic.address6 = global6.address;
  return vnic;
}

// ----- read-back -----

export async function readDarwinRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
  if (wanted.length === 0) return [];
  const fromTable = readbackFromNetstat(await readNetstatRoutes(run), wanted);
  const toConfirm = fromTable.filter((entry) => entry.needsRouteGet);
  const confirmations = await mapTogether(toConfirm, ({ spec, destination }) => confirmRouteWithRouteGet(run, spec, destination));
  return fromTable.map((entry) => {
    const index = toConfirm.indexOf(entry);
    if (index < 0) return entry.readback;
    const { present, evidence } = confirmations[index];
    return { ...entry.readback, present, evidence: `${entry.readback.evidence} (${evidence})` };
  });
}

/**
 * The routing table of one `netstat -rn` (both families; the very command discoverUplink runs,
 * so a SharedReadRunner reads it once for both). Its read-back is readDarwinRoutes' without the
 * `route -n get` confirmations: a row netstat alone cannot settle (a cut Netif name) comes
 * back `unsure`, for the caller to read with readRoutes.
 */
export async function readDarwinRoutingTable(run: Runner): Promise<RoutingTable> {
  const table = await readNetstatRoutes(run);
  return {
    readback: (wanted) => readbackFromNetstat(table, wanted).map((entry) => (entry.needsRouteGet ? { ...entry.readback, unsure: true } : entry.readback)),
    fingerprint: (ignore) => netstatFingerprint(table, ignore),
  };
}

/**
 * Every route but ours (`ignore`), as netstat printed its destination, gateway, flags, Netif
 * and Mtu: equal while the default routes and the interface routes (an address's prefix and
 * /32) are, so discover would find the same uplink and vnic. Left out, as they move without
 * anything discover depends on moving: the neighbour entries (flag L, RTF_LLINFO: ARP and NDP,
 * the own addresses' lo0 entries) and the clones (W, RTF_WASCLONED: a host route per
 * destination in use, with an expiry) — network_cmds netstat.tproj/route.c `bits[]`; route
 * monitors skip the same two as neighbour churn — and the Refs, Use and Expire columns.
 */
function netstatFingerprint(table: NetstatRoute[], ignore: readonly string[]): string {
  const ours = new Set(ignore.map(canonicalCidr));
  const rows = table
    .filter((r) => !r.flags.includes('L') && !r.flags.includes('W') && !(r.destination !== null && ours.has(r.destination)))
    .map((r) => [r.family, r.destinationText, r.gateway.text, r.flags.join(''), r.netif, r.mtu ?? ''].join(' '));
  // A digest: the journal keeps it.
  return createHash('sha256').update(JSON.stringify(rows.sort())).digest('hex');
}

interface NetstatReadback {
  spec: RouteSpec;
  destination: string;
  /** netstat cut the Netif name: only `route -n get` can tell. */
  needsRouteGet: boolean;
  readback: RouteReadback;
}

function readbackFromNetstat(table: NetstatRoute[], wanted: RouteSpec[]): NetstatReadback[] {
  return wanted.map((spec) => {
    const destination = canonicalCidr(spec.destination);
    const same = table.filter((r) => r.destination === destination);
    // Scoped duplicates (flag I) are not what unbound sockets use: they do not count.
    const candidates = same.filter((r) => !r.scoped && gatewayMatches(r.gateway, spec.gateway));
    const netif = (r: NetstatRoute) => (spec.interface ? netifMatches(r.netif, spec.interface, r.family) : 'exact');
    const match = candidates.find((r) => netif(r) === 'exact');
    // netstat cuts long Netif names (bridge100 prints as `bridge1` up to macOS 11), so such a
    // row may be another interface's: route get, which prints the full name, decides.
    const unsure = match ? undefined : candidates.find((r) => netif(r) === 'ambiguous');
    const shown = match ?? unsure ?? same[0];
    const readback: RouteReadback = { ...spec, present: match !== undefined, evidence: shown ? shown.text.trim().replace(/\s+/g, ' ') : '' };
    return { spec, destination, needsRouteGet: unsure !== undefined, readback };
  });
}

/**
 * Asks `route -n get` whether `spec` is in the table: same destination and mask, gateway,
 * full interface name, not scoped. With a mask (nets) the kernel answers only that exact
 * route; a host lookup is longest-match, hence the destination check (0.0.0.0 prints as
 * `default`; the parsed destination includes the mask). A failed get exits 0, prints nothing.
 */
async function confirmRouteWithRouteGet(run: Runner, spec: RouteSpec, destination: string): Promise<{ present: boolean; evidence: string }> {
  const [address, length] = destination.split('/');
  const family = familyOf(address);
  const host = Number(length) === (family === 'inet' ? 32 : 128);
  const argv = ['route', '-n', 'get', `-${family}`, ...(host ? ['-host', address] : [destination])];
  const result = await run.run(argv, { readOnly: true, allowFailure: true });
  const asked = argv.join(' ');
  let got: RouteGetResult | null;
  try {
    got = parseRouteGet(result.stdout);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    return { present: false, evidence: `not confirmed: ${asked} answered unreadably: ${e.message}` };
  }
  if (!got) {
    const why = result.stderr.trim().split('\n')[0].replace(/^route: (?:writing to routing socket: )?/, '');
    return { present: false, evidence: `not confirmed: ${asked} found no such route${why ? ` (${why})` : ''}` };
  }
  const scoped = got.flags.includes('IFSCOPE');
  const present =
    got.destination === destination &&
    got.interface === spec.interface &&
    got.gateway !== undefined &&
    gatewayMatches(classifyNetstatGateway(got.gateway), spec.gateway) &&
    !scoped;
  const answer = `${got.destination ?? got.destinationText} via ${got.gateway ?? 'no gateway'} dev ${got.interface ?? '?'}${scoped ? ' (scoped)' : ''}`;
  return { present, evidence: `${present ? 'confirmed' : 'not confirmed'}: ${asked} shows ${answer}` };
}

// ----- changes -----

export async function addDarwinRoute(run: Runner, route: RouteSpec): Promise<void> {
  const result = await run.run(darwinRouteArgv('add', route), { allowFailure: true });
  checkExit(result);
  const outcome = classifyRouteChange(result.stdout, result.stderr);
  if (outcome.outcome === 'ok') return;
  if (outcome.outcome === 'exists') {
    // Ours from an earlier run is fine; someone else's route in the way is not.
    const [readback] = await readDarwinRoutes(run, [route]);
    if (readback.present) return;
    throw new Error(`cannot add ${describeRoute(route)}: a different route is in the way (${readback.evidence || 'not shown by netstat'})`);
  }
  const hint = outcome.outcome === 'unreachable' ? ` (${route.gateway} is not on a directly connected network)` : '';
  throw new Error(`route add ${describeRoute(route)} failed: ${outcome.message}${hint}`);
}

export async function deleteDarwinRoute(run: Runner, route: RouteSpec): Promise<void> {
  // Never the user's default route, whatever the caller asks.
  if (isDefault(route.destination)) throw new Error(`refusing to delete a default route (${route.destination})`);
  const result = await run.run(darwinRouteArgv('delete', route), { allowFailure: true });
  checkExit(result);
  const outcome = classifyRouteChange(result.stdout, result.stderr);
  // "not in table": already gone (a vanished vnic takes its routes with it).
  if (outcome.outcome === 'ok' || outcome.outcome === 'not-in-table') return;
  throw new Error(`route delete ${describeRoute(route)} failed: ${outcome.message}`);
}
