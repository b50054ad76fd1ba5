/**
 * Down without a usable journal — corrupt (and its previous copy too), or removed by hand
 * while things of ours remain: what is ours is recognised by its marks instead, and what only
 * the journal knew is named rather than claimed restored.
 *
 * Recognised: the split routes (0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1) via the VM's address,
 * which the Down request carries (the controller's config); the kill switch by its name (darwin
 * anchor, linux nft table: the driver's unload finds it without a handle); the server pins,
 * host routes to the WireGuard servers the Down request names (the VM's status, which the
 * controller reads first) via the uplink's gateway, and the excluded CIDRs' routes (the
 * controller's config) via that gateway too. Not recognisable: the previous DNS
 * settings, and on darwin the pfctl -E token that keeps PF enabled.
 */
import type { Runner } from '@wgctl/runner';
import type { DriverName, HostNetworkDriver, RouteSpec, ServerEndpoint } from '../host/driver';
import { excludeRoutesFor, IPV4_SPLIT, IPV6_SPLIT, pinsFor } from './core';

/** The VM's addresses as the Down request gives them ('' or absent: not given). */
export interface VmAddresses {
  v4?: string;
  v6?: string;
}

/** The split routes wgctl adds via these VM addresses. */
export function splitRoutesVia(vm: VmAddresses): RouteSpec[] {
  return [
    ...(vm.v4 ? IPV4_SPLIT.map((destination) => ({ destination, gateway: vm.v4! })) : []),
    ...(vm.v6 ? IPV6_SPLIT.map((destination) => ({ destination, gateway: vm.v6! })) : []),
  ];
}

/** Those split routes via the VM that the routing table holds now (with the interface it shows). */
export async function splitRoutesInTable(driver: HostNetworkDriver, run: Runner, vm: VmAddresses): Promise<RouteSpec[]> {
  const specs = splitRoutesVia(vm);
  if (specs.length === 0) return [];
  const readback = await driver.readRoutes(run, specs);
  return readback.filter((route) => route.present).map(({ destination, gateway, interface: dev }) => ({ destination, gateway, ...(dev ? { interface: dev } : {}) }));
}

/** The pins wgctl adds for these servers, and the routes of these excluded CIDRs, on the uplink of now, that the routing table holds. */
export async function pinRoutesInTable(driver: HostNetworkDriver, run: Runner, servers: readonly ServerEndpoint[], excluded: readonly string[] = []): Promise<RouteSpec[]> {
  if (servers.length === 0 && excluded.length === 0) return [];
  const uplink = await driver.discoverUplink(run, { address: false });
  if (!uplink) return [];
  const specs = [...pinsFor(servers, uplink), ...excludeRoutesFor(excluded, uplink)].filter((pin) => pin.gateway !== '');
  const readback = await driver.readRoutes(run, specs);
  return readback.filter((route) => route.present).map(({ destination, gateway, interface: dev }) => ({ destination, gateway, ...(dev ? { interface: dev } : {}) }));
}

/** What a Down that had no usable journal cannot put back, in the words the user reads. */
export function notRestoredWithoutJournal(driver: DriverName, vm: VmAddresses, servers: readonly ServerEndpoint[] = []): string[] {
  const items = [
    ...(splitRoutesVia(vm).length === 0 ? ['split routes: no VM address came with the Down, so 0.0.0.0/1 and 128.0.0.0/1 via the VM were not looked for'] : []),
    'DNS: the settings from before `wgctl up` were only in the journal; if DNS still points at the tunnel\'s resolvers, set it back by hand',
    ...(servers.length === 0
      ? ['server pins: no WireGuard servers came with the Down (the VM did not answer), so host routes to them via the uplink\'s gateway were left (they route as the default route does)']
      : []),
  ];
  if (driver === 'darwin') items.push('PF: the reference wgctl took with `pfctl -E` was in the journal; PF may stay enabled (see `sudo pfctl -s References`)');
  return items;
}
