/**
 * `netstat -rn` (also `-f inet`, `-f inet6`, `| grep default`, and the name-resolving
 * `netstat -r`) on macOS 10.13 … 26.
 *
 * Columns are found by the header, never by position: Catalina dropped Refs/Use, so the
 * Netif column moved (wg-quick's `del_routes` still reads field 6 and misses it). With -n the
 * Destination and Gateway columns are not truncated and push the rest of the row right, so
 * rows are split on whitespace and fields are assigned in header order; Expire is often blank.
 * Without a header (output piped through grep) the same shape is inferred from the row.
 *
 * IPv4 destinations are printed classful-abbreviated (`127`, `192.168.1`, `10.211.55/24`,
 * `0/1`, `128.0/1`); they are normalised to CIDR here.
 */
import { ParseError } from '../errors';
import {
  DARWIN_INTERFACE_NAME,
  DARWIN_VIRTUAL_INTERFACE,
  type DarwinFamily,
  canonicalIpv6,
  isIpv4,
  isIpv6,
  ipv4MaskToPrefix,
  splitScope,
} from './addresses';

const KIND = 'netstat -rn';

export type NetstatGateway =
  /** An IPv4/IPv6 next hop; IPv6 link-local ones carry their scope (`fe80::1%en0`). */
  | { kind: 'ip'; text: string; address: string; scope?: string }
  /** `link#N`: an on-link (interface) route, or another tunnel's default. */
  | { kind: 'link'; text: string; index: number }
  /** A neighbour's MAC, printed without leading zeros; `mac` restores them. */
  | { kind: 'mac'; text: string; mac: string }
  /** An interface name: routes added with `-interface utun4`. */
  | { kind: 'interface'; text: string; name: string }
  /** A host name (netstat without -n); nothing can be inferred from it. */
  | { kind: 'name'; text: string };

export interface NetstatRoute {
  family: DarwinFamily;
  /** Normalised CIDR (`0.0.0.0/0`, `10.211.55.0/24`, `fe80::/64`); null for a host/net name (no -n). */
  destination: string | null;
  /** As printed (`default`, `128.0/1`, `fe80::%en0/64`). */
  destinationText: string;
  /** The zone of a scoped IPv6 destination (`fe80::%en0/64` → `en0`). */
  destinationScope?: string;
  /** 0.0.0.0/0 or ::/0 (not our /1 halves). */
  isDefault: boolean;
  gateway: NetstatGateway;
  /** Flag letters in printed order (`UGScIg` → U,G,S,c,I,g); their meaning: network_cmds netstat.tproj/route.c `bits[]`. */
  flags: string[];
  /** RTF_IFSCOPE (`I`): a per-interface duplicate, not used for unbound sockets. */
  scoped: boolean;
  refs?: number;
  use?: number;
  mtu?: number;
  netif: string;
  /** Seconds left, or 'expired' for `!`; absent when blank. */
  expire?: number | 'expired';
  /** 1-based line number in the input, and the line itself (evidence for status). */
  line: number;
  text: string;
}

const NUMERIC_COLUMNS = ['Refs', 'Use', 'Mtu'] as const;
type NumericColumn = (typeof NUMERIC_COLUMNS)[number];
const KNOWN_COLUMNS = new Set(['Destination', 'Gateway', 'RT_IFA', 'Flags', 'Refs', 'Use', 'Mtu', 'Netif', 'Expire']);

interface Layout {
  numeric: NumericColumn[];
  hasRtIfa: boolean;
  hasExpire: boolean;
  /** Columns after Expire (`netstat -rnll`: rtt(ms)…); their values are not interpreted. */
  trailing: number;
}

/** Without a header we accept the widest plausible layout (10.14's Refs/Use, or none). */
const HEADERLESS: Layout = { numeric: ['Refs', 'Use'], hasRtIfa: false, hasExpire: true, trailing: 0 };

function layoutFromHeader(tokens: string[], line: number): Layout {
  const order = tokens.filter((t) => KNOWN_COLUMNS.has(t));
  if (tokens[0] !== 'Destination' || tokens[1] !== 'Gateway' || !tokens.includes('Flags') || !tokens.includes('Netif')) {
    throw new ParseError(KIND, `header must name Destination, Gateway, Flags and Netif: "${tokens.join(' ')}"`, line);
  }
  const expireAt = tokens.indexOf('Expire');
  return {
    numeric: NUMERIC_COLUMNS.filter((c) => order.includes(c)),
    hasRtIfa: tokens.includes('RT_IFA'),
    hasExpire: expireAt >= 0,
    trailing: expireAt >= 0 ? tokens.length - expireAt - 1 : 0,
  };
}

const IPV4_ABBREVIATED = /^(\d{1,3}(?:\.\d{1,3}){0,3})(?:\/(\d{1,2})|&0x([0-9a-fA-F]{1,8}))?$/;

/**
 * Classful-abbreviated IPv4 destination → CIDR: `default` → 0.0.0.0/0, `127` → 127.0.0.0/8,
 * `169.254` → /16, `192.168.1` → /24, `10.211.55/24`, `0/1`, `128.0/1`, full quad → /32.
 * Returns null for names (netstat without -n) and non-contiguous `&0x…` masks.
 */
export function normalizeNetstatIpv4Destination(text: string): string | null {
  if (text === 'default') return '0.0.0.0/0';
  const m = IPV4_ABBREVIATED.exec(text);
  if (!m) return null;
  const octets = m[1].split('.').map(Number);
  if (octets.some((o) => o > 255)) return null;
  const address = [...octets, 0, 0, 0].slice(0, 4).join('.');
  let prefix: number;
  if (m[2] !== undefined) {
    prefix = Number(m[2]);
    if (prefix > 32) return null;
  } else if (m[3] !== undefined) {
    const fromMask = ipv4MaskToPrefix(parseInt(m[3], 16));
    if (fromMask === undefined) return null;
    prefix = fromMask;
  } else if (octets.length === 4) {
    prefix = 32;
  } else {
    // netstat drops the mask when it equals the class mask (A /8, B /16, C and above /24).
    const classPrefix = octets[0] < 128 ? 8 : octets[0] < 192 ? 16 : 24;
    prefix = Math.max(classPrefix, octets.length * 8);
  }
  return `${address}/${prefix}`;
}

/** `default` → ::/0; `fe80::%en0/64` → fe80::/64 (scope en0); host `::1` → ::1/128. */
export function normalizeNetstatIpv6Destination(text: string): { cidr: string; scope?: string } | null {
  if (text === 'default') return { cidr: '::/0' };
  const slash = text.lastIndexOf('/');
  const addressPart = slash >= 0 ? text.slice(0, slash) : text;
  const prefixPart = slash >= 0 ? text.slice(slash + 1) : undefined;
  const { address, scope } = splitScope(addressPart);
  if (!isIpv6(address)) return null;
  let prefix = 128;
  if (prefixPart !== undefined) {
    if (!/^\d{1,3}$/.test(prefixPart) || Number(prefixPart) > 128) return null;
    prefix = Number(prefixPart);
  }
  return { cidr: `${canonicalIpv6(address)}/${prefix}`, ...(scope ? { scope } : {}) };
}

const MAC = /^[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}$/;

export function classifyNetstatGateway(text: string): NetstatGateway {
  const link = /^link#(\d+)$/.exec(text);
  if (link) return { kind: 'link', text, index: Number(link[1]) };
  if (MAC.test(text)) {
    const mac = text
      .split(':')
      .map((b) => b.padStart(2, '0').toLowerCase())
      .join(':');
    return { kind: 'mac', text, mac };
  }
  const { address, scope } = splitScope(text);
  if (isIpv4(address) && scope === undefined) return { kind: 'ip', text, address };
  if (isIpv6(address)) return { kind: 'ip', text, address: canonicalIpv6(address), ...(scope ? { scope } : {}) };
  if (DARWIN_INTERFACE_NAME.test(text)) return { kind: 'interface', text, name: text };
  return { kind: 'name', text };
}

function inferFamily(destination: string, gateway: string, gatewayColumn: number): DarwinFamily {
  if (destination !== 'default' && destination.includes(':')) return 'inet6';
  if (destination !== 'default' && IPV4_ABBREVIATED.test(destination)) return 'inet';
  const gw = splitScope(gateway).address;
  if (isIpv6(gw)) return 'inet6';
  if (isIpv4(gw)) return 'inet';
  // IPv6 rows have a 39-wide Destination column, IPv4 rows an 18-wide one.
  return gatewayColumn >= 30 ? 'inet6' : 'inet';
}

const FLAGS = /^[A-Za-z0-9]+$/;

function parseRow(raw: string, lineNo: number, layout: Layout, sectionFamily: DarwinFamily | undefined): NetstatRoute {
  const text = raw.trimEnd();
  const tokens = text.trim().split(/\s+/);
  if (tokens.length < 4) {
    throw new ParseError(KIND, `a route needs Destination, Gateway, Flags and Netif: "${text.trim()}"`, lineNo);
  }
  const [destinationText, gatewayText] = tokens;
  let i = 2;
  if (layout.hasRtIfa && (isIpv4(tokens[i]) || isIpv6(splitScope(tokens[i]).address))) i++;
  const flagsText = tokens[i++];
  if (!FLAGS.test(flagsText) || /^\d+$/.test(flagsText)) {
    throw new ParseError(KIND, `bad Flags "${flagsText}"`, lineNo);
  }
  const numbers: number[] = [];
  while (i < tokens.length && /^\d+$/.test(tokens[i]) && numbers.length < layout.numeric.length) {
    numbers.push(Number(tokens[i++]));
  }
  const netif = tokens[i++];
  if (netif === undefined || !DARWIN_INTERFACE_NAME.test(netif)) {
    throw new ParseError(KIND, `missing or bad Netif${netif ? ` "${netif}"` : ''}`, lineNo);
  }
  let expire: number | 'expired' | undefined;
  if (layout.hasExpire && i < tokens.length && /^(\d+|!)$/.test(tokens[i])) {
    const value = tokens[i++];
    expire = value === '!' ? 'expired' : Number(value);
  }
  if (tokens.length - i > layout.trailing) {
    throw new ParseError(KIND, `unexpected fields after Netif: "${tokens.slice(i).join(' ')}"`, lineNo);
  }

  const family = sectionFamily ?? inferFamily(destinationText, gatewayText, text.indexOf(gatewayText, destinationText.length));
  let destination: string | null;
  let destinationScope: string | undefined;
  if (family === 'inet') {
    destination = normalizeNetstatIpv4Destination(destinationText);
  } else {
    const v6 = normalizeNetstatIpv6Destination(destinationText);
    destination = v6?.cidr ?? null;
    destinationScope = v6?.scope;
  }
  const flags = [...flagsText];
  const route: NetstatRoute = {
    family,
    destination,
    destinationText,
    ...(destinationScope ? { destinationScope } : {}),
    isDefault: destination === '0.0.0.0/0' || destination === '::/0',
    gateway: classifyNetstatGateway(gatewayText),
    flags,
    scoped: flags.includes('I'),
    netif,
    line: lineNo,
    text,
  };
  layout.numeric.forEach((column, index) => {
    if (index >= numbers.length) return;
    if (column === 'Refs') route.refs = numbers[index];
    else if (column === 'Use') route.use = numbers[index];
    else route.mtu = numbers[index];
  });
  if (expire !== undefined) route.expire = expire;
  return route;
}

const SECTION = /^(Internet6?|IPX|Protocol Family \d+):$/;

/** Parses every route row of `netstat -r[n]` output, header or not, either family. */
export function parseNetstatRoutes(text: string): NetstatRoute[] {
  const routes: NetstatRoute[] = [];
  let family: DarwinFamily | undefined;
  let skipSection = false;
  let layout: Layout = HEADERLESS;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === '' || line === 'Routing tables') return;
    const section = SECTION.exec(line);
    if (section) {
      family = section[1] === 'Internet' ? 'inet' : section[1] === 'Internet6' ? 'inet6' : undefined;
      skipSection = family === undefined;
      layout = HEADERLESS;
      return;
    }
    if (skipSection) return;
    const tokens = line.split(/\s+/);
    if (tokens[0] === 'Destination') {
      layout = layoutFromHeader(tokens, lineNo);
      return;
    }
    routes.push(parseRow(raw, lineNo, layout, family));
  });
  return routes;
}

/**
 * The widths netstat cuts the Netif column to (network_cmds netstat.tproj/route.c `WID_IF`,
 * printed `%*.*s`), in every release we support: 7 (inet) / 8 (inet6) up to network_cmds-606
 * (macOS 10.13–11), 10 in 624–644 (macOS 12–13), 14 from 667 (macOS 14+). (`-l` on 12–13 uses
 * 14, also listed.) A table does not say which release printed it, so all of them count.
 */
export const NETSTAT_NETIF_WIDTHS: Readonly<Record<DarwinFamily, readonly number[]>> = {
  inet: [7, 10, 14],
  inet6: [8, 10, 14],
};

/**
 * `exact`: the Netif as printed is `wanted`, and no other name prints like it.
 * `ambiguous`: it may be `wanted` but may as well be another interface: either `wanted` cut to
 * a column width (bridge100 → `bridge1`), or `wanted` printed whole at exactly a column width
 * (`bridge1`, which bridge100 and bridge101 also print as). Only a full name (route -n get) can tell.
 * `no`: it is not `wanted` under any width.
 */
export type NetifMatch = 'exact' | 'ambiguous' | 'no';

/**
 * Can a `netstat -rn` Netif, as printed, be interface `wanted`? A name longer than the width W
 * is cut to its first W characters; one of W or fewer is printed whole (right-aligned).
 */
export function netifMatches(shown: string, wanted: string, family: DarwinFamily): NetifMatch {
  if (shown === '' || wanted === '') return 'no';
  const widths = NETSTAT_NETIF_WIDTHS[family];
  // Any longer name cut at W prints as these W characters, so a W-long name is never certain.
  if (shown === wanted) return widths.includes(shown.length) ? 'ambiguous' : 'exact';
  const cutFromWanted = widths.some((width) => wanted.length > width && shown === wanted.slice(0, width));
  return cutFromWanted ? 'ambiguous' : 'no';
}

export interface NetstatDefaultGateway {
  family: DarwinFamily;
  /** The next hop (IPv6 link-local ones keep their `%scope`). */
  gateway: string;
  interface: string;
  route: NetstatRoute;
  /**
   * `unscoped`: the ordinary default. `scoped-fallback`: no usable unscoped default (another
   * tunnel owns it, or an app made the physical default interface-scoped), so the scoped
   * default of a physical interface was taken instead.
   */
  source: 'unscoped' | 'scoped-fallback';
  /** The unscoped default we passed over (another VPN's `link#N`/utun default). */
  displacedBy?: { interface: string; gateway: string };
}

export interface FindDefaultGatewayOptions {
  /** Interfaces never to take as the uplink (the VM's vnic, for instance). */
  ignoreInterfaces?: readonly string[];
}

/**
 * The original default route for `family`: the unscoped default (no `I`) whose gateway is an
 * IP on a physical interface. Our own 0/1 + 128.0/1 halves are not defaults and never match.
 * When the unscoped default belongs to another tunnel (`link#17 … utun3`) or is missing, falls
 * back to the scoped default of a physical interface and says so. Null when there is none.
 */
export function findDefaultGateway(
  routes: readonly NetstatRoute[],
  family: DarwinFamily,
  options: FindDefaultGatewayOptions = {},
): NetstatDefaultGateway | null {
  const ignored = new Set(options.ignoreInterfaces ?? []);
  const defaults = routes.filter((r) => r.family === family && r.isDefault && !ignored.has(r.netif));
  const usable = (r: NetstatRoute): boolean => r.gateway.kind === 'ip' && !DARWIN_VIRTUAL_INTERFACE.test(r.netif);
  const nextHop = (r: NetstatRoute): string =>
    r.gateway.kind === 'ip' ? (r.gateway.scope ? `${r.gateway.address}%${r.gateway.scope}` : r.gateway.address) : r.gateway.text;

  const unscoped = defaults.filter((r) => !r.scoped);
  const primary = unscoped.find(usable);
  if (primary) return { family, gateway: nextHop(primary), interface: primary.netif, route: primary, source: 'unscoped' };

  const fallback = defaults.find((r) => r.scoped && usable(r));
  if (!fallback) return null;
  const other = unscoped[0];
  return {
    family,
    gateway: nextHop(fallback),
    interface: fallback.netif,
    route: fallback,
    source: 'scoped-fallback',
    ...(other ? { displacedBy: { interface: other.netif, gateway: other.gateway.text } } : {}),
  };
}
