/**
 * `ip -j route show [table main]`, `ip -j -6 route show`, `ip -j route get X` (iproute2 JSON).
 *
 * iproute2 prints `"dst":"default"` for the default route and host routes without their /32
 * (/128); destinations are normalised to CIDR here so callers compare like with like.
 * Multipath routes carry `nexthops` instead of gateway/dev.
 */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';
import { parseIpJsonArray } from './json';

export type IpFamily = 'inet' | 'inet6';

export interface IpRouteNexthop {
  gateway?: string;
  dev?: string;
  weight?: number;
  flags: string[];
}

export interface IpRoute {
  family: IpFamily;
  /** Always CIDR: `0.0.0.0/0`, `203.0.113.10/32`, `::/1`. */
  destination: string;
  /** `unicast` unless iproute2 says otherwise (unreachable, blackhole, local, broadcast…). */
  type: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  /** IPv6 router preference (`medium`…). */
  pref?: string;
  /** `linkdown`, `onlink`, `dead`… */
  flags: string[];
  nexthops: IpRouteNexthop[];
}

const KIND = 'ip -j route';

function familyOf(address: string): IpFamily | undefined {
  const bare = address.split('/')[0];
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return 'inet';
  if (ipaddr.IPv6.isValid(bare.split('%')[0])) return 'inet6';
  return undefined;
}

/** `default` → `0.0.0.0/0`; `203.0.113.10` → `203.0.113.10/32`; CIDRs unchanged (canonical address). */
export function normalizeIpRouteDestination(dst: string, family: IpFamily): string {
  if (dst === 'default') return family === 'inet' ? '0.0.0.0/0' : '::/0';
  const [address, length] = dst.split('/');
  const actual = familyOf(address);
  if (!actual) throw new ParseError(KIND, `not an address: "${dst}"`);
  const max = actual === 'inet' ? 32 : 128;
  const bits = length === undefined ? max : Number(length);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new ParseError(KIND, `bad prefix length in "${dst}"`);
  let canonical: string;
  try {
    canonical = ipaddr.parse(address).toString();
  } catch {
    // e.g. `fe80::%` (a zone separator with no zone): the family check looks at the address part only.
    throw new ParseError(KIND, `not an address: "${dst}"`);
  }
  return `${canonical}/${bits}`;
}

function asString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ParseError(KIND, `field "${field}" is not a string`);
  return value;
}

function asNumber(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new ParseError(KIND, `field "${field}" is not a number`);
  return value;
}

function asFlags(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((f) => typeof f !== 'string')) throw new ParseError(KIND, 'field "flags" is not a list of strings');
  return value as string[];
}

/** A gateway is `gateway: "x"` or, for a route via another family, `via: {family, host}`. */
function gatewayOf(entry: Record<string, unknown>): string | undefined {
  const gateway = asString(entry.gateway, 'gateway');
  if (gateway) return gateway;
  const via = entry.via as { host?: unknown } | undefined;
  if (via && typeof via === 'object') return asString(via.host, 'via.host');
  return undefined;
}

/**
 * Parses iproute2 route JSON. `family` says which table was listed (`ip -j route` → inet,
 * `ip -j -6 route` → inet6) so that `default` can be normalised; a destination that is
 * itself an address decides its own family.
 */
export function parseIpRouteJson(text: string, family: IpFamily = 'inet'): IpRoute[] {
  const data = parseIpJsonArray(KIND, text, 'routes');
  return data.map((raw, index) => {
    if (!raw || typeof raw !== 'object') throw new ParseError(KIND, `route #${index + 1} is not an object`);
    const entry = raw as Record<string, unknown>;
    const dst = asString(entry.dst, 'dst');
    if (!dst) throw new ParseError(KIND, `route #${index + 1} has no "dst"`);
    const ownFamily = dst === 'default' ? family : (familyOf(dst) ?? family);
    const nexthops = Array.isArray(entry.nexthops)
      ? (entry.nexthops as unknown[]).map((raw) => (raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {})).map((hop) => ({
          gateway: gatewayOf(hop),
          dev: asString(hop.dev, 'nexthops.dev'),
          weight: asNumber(hop.weight, 'nexthops.weight'),
          flags: asFlags(hop.flags),
        }))
      : [];
    const route: IpRoute = {
      family: ownFamily,
      destination: normalizeIpRouteDestination(dst, ownFamily),
      type: asString(entry.type, 'type') ?? 'unicast',
      gateway: gatewayOf(entry),
      dev: asString(entry.dev, 'dev'),
      protocol: asString(entry.protocol, 'protocol'),
      scope: asString(entry.scope, 'scope'),
      prefsrc: asString(entry.prefsrc, 'prefsrc'),
      metric: asNumber(entry.metric, 'metric'),
      table: entry.table === undefined ? undefined : typeof entry.table === 'string' ? entry.table : JSON.stringify(entry.table),
      pref: asString(entry.pref, 'pref'),
      flags: asFlags(entry.flags),
      nexthops,
    };
    return route;
  });
}

/**
 * One route in `ip route show` text order, for evidence in status output
 * (`0.0.0.0/1 via 192.0.2.130 dev wtmv0`, `default via 192.0.2.1 dev eth0 metric 100`).
 */
export function formatIpRouteLine(route: IpRoute): string {
  const parts: string[] = [];
  if (route.type !== 'unicast') parts.push(route.type);
  const host = route.family === 'inet' ? '/32' : '/128';
  const dst =
    route.destination === '0.0.0.0/0' || route.destination === '::/0'
      ? 'default'
      : route.destination.endsWith(host)
        ? route.destination.slice(0, -host.length)
        : route.destination;
  parts.push(dst);
  if (route.gateway) parts.push('via', route.gateway);
  if (route.dev) parts.push('dev', route.dev);
  if (route.table) parts.push('table', route.table);
  if (route.protocol) parts.push('proto', route.protocol);
  if (route.scope) parts.push('scope', route.scope);
  if (route.prefsrc) parts.push('src', route.prefsrc);
  if (route.metric !== undefined) parts.push('metric', String(route.metric));
  parts.push(...route.flags);
  if (route.pref) parts.push('pref', route.pref);
  for (const hop of route.nexthops) {
    parts.push('nexthop');
    if (hop.gateway) parts.push('via', hop.gateway);
    if (hop.dev) parts.push('dev', hop.dev);
    if (hop.weight !== undefined) parts.push('weight', String(hop.weight));
  }
  return parts.join(' ');
}

/**
 * The default routes that can carry traffic (a gateway, not linkdown/dead), best first:
 * lowest metric, then table order. What "the uplink" is on Linux.
 */
export function usableDefaultRoutes(routes: IpRoute[]): IpRoute[] {
  return routes
    .map((route, order) => ({ route, order }))
    .filter(
      ({ route }) =>
        (route.destination === '0.0.0.0/0' || route.destination === '::/0') &&
        route.type === 'unicast' &&
        route.gateway !== undefined &&
        route.dev !== undefined &&
        !route.flags.includes('linkdown') &&
        !route.flags.includes('dead'),
    )
    .sort((a, b) => (a.route.metric ?? 0) - (b.route.metric ?? 0) || a.order - b.order)
    .map(({ route }) => route);
}
