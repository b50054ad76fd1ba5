/**
 * `ip monitor route link address` events (text).
 *
 * Plain output prints one event per line, except that link and address events carry an
 * indented continuation line (`    link/ether …`, `       valid_lft …`). With `-o` the
 * continuation is folded onto the same line after a `\`, and `label` prefixes `[ROUTE]`,
 * `[LINK]`, `[ADDR]`. A `Deleted ` prefix marks removals. Both styles are understood.
 */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';
import type { IpFamily } from './ip-route';

export interface IpMonitorRoute {
  family: IpFamily;
  destination: string; // CIDR
  type: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  metric?: number;
  flags: string[];
}

export interface IpMonitorLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  state?: string;
}

export interface IpMonitorAddress {
  ifindex: number;
  ifname: string;
  family: IpFamily;
  local: string;
  prefixlen: number;
  scope?: string;
}

export type IpMonitorEvent =
  | { object: 'route'; deleted: boolean; route: IpMonitorRoute; line: string }
  | { object: 'link'; deleted: boolean; link: IpMonitorLink; line: string }
  | { object: 'address'; deleted: boolean; address: IpMonitorAddress; line: string }
  | { object: 'other'; deleted: boolean; line: string };

const KIND = 'ip monitor';
const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'throw', 'unreachable', 'prohibit', 'blackhole', 'nat', 'anycast']);
const LABELS: Record<string, IpMonitorEvent['object'] | undefined> = { ROUTE: 'route', LINK: 'link', ADDR: 'address' };
// Route attribute keywords followed by one value.
const VALUED = new Set(['via', 'dev', 'table', 'proto', 'scope', 'src', 'metric', 'pref', 'mtu', 'expires', 'tos', 'realm', 'weight', 'advmss', 'hoplimit', 'nhid', 'error', 'rtt', 'rttvar', 'cwnd', 'initcwnd', 'initrwnd', 'features', 'quickack', 'congctl', 'fastopen_no_cookie', 'ttl-propagate']);

function isAddressLike(token: string): boolean {
  const bare = token.split('/')[0];
  return ipaddr.IPv4.isValidFourPartDecimal(bare) || ipaddr.IPv6.isValid(bare);
}

/** ipaddr's canonical form; a token that only looks like an address is a ParseError. */
function canonicalAddress(address: string): string {
  if (!ipaddr.isValid(address)) throw new ParseError(KIND, `not an address: "${address.slice(0, 60)}"`);
  return ipaddr.parse(address).toString();
}

function toCidr(dst: string, family: IpFamily): string {
  if (dst === 'default') return family === 'inet' ? '0.0.0.0/0' : '::/0';
  const [address, length] = dst.split('/');
  const max = address.includes(':') ? 128 : 32;
  return `${canonicalAddress(address)}/${length ?? max}`;
}

function parseRoute(body: string, line: string): IpMonitorRoute {
  const tokens = body.trim().split(/\s+/);
  let index = 0;
  let type = 'unicast';
  if (ROUTE_TYPES.has(tokens[0])) type = tokens[index++];
  const dst = tokens[index++];
  if (!dst || (dst !== 'default' && !isAddressLike(dst))) throw new ParseError(KIND, `route without a destination: "${line}"`);
  const attrs: Record<string, string> = {};
  const flags: string[] = [];
  while (index < tokens.length) {
    const key = tokens[index++];
    if (key === 'via') {
      // `via inet6 fe80::1` for a gateway of another family
      const next = tokens[index++];
      attrs.via = next === 'inet' || next === 'inet6' ? tokens[index++] : next;
    } else if (VALUED.has(key)) {
      attrs[key] = tokens[index++];
    } else if (key !== '') {
      flags.push(key);
    }
  }
  let family: IpFamily;
  if (dst !== 'default') family = dst.includes(':') ? 'inet6' : 'inet';
  else if (attrs.via) family = attrs.via.includes(':') ? 'inet6' : 'inet';
  // iproute2 prints `pref` only for IPv6 routes.
  else family = attrs.pref ? 'inet6' : 'inet';
  return {
    family,
    destination: toCidr(dst, family),
    type,
    gateway: attrs.via,
    dev: attrs.dev,
    table: attrs.table,
    protocol: attrs.proto,
    metric: attrs.metric === undefined ? undefined : Number(attrs.metric),
    flags,
  };
}

const LINK_RE = /^(\d+):\s+([^\s:@]+)(?:@[^\s:]+)?:\s+<([^>]*)>(.*)$/;
const ADDR_RE = /^(\d+):\s+(\S+)\s+(inet6?)\s+([0-9a-fA-F.:]+)\/(\d+)(.*)$/;

/**
 * Parses one event: a single `-o` line, or a plain event block (its first line plus any
 * indented continuation lines).
 */
export function parseIpMonitorLine(text: string): IpMonitorEvent {
  // Fold continuation lines and `-o` backslash separators into one line.
  const line = text
    .replace(/\\(?=\s|$)/gm, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (line === '') throw new ParseError(KIND, 'empty event');
  let rest = line;
  let labelled: IpMonitorEvent['object'] | undefined;
  const label = /^\[([A-Z0-9]+)\]\s*/.exec(rest);
  if (label) {
    labelled = LABELS[label[1]] ?? 'other';
    rest = rest.slice(label[0].length);
  }
  rest = rest.replace(/^\[nsid \S+\]\s*/, '');
  const deleted = rest.startsWith('Deleted ');
  if (deleted) rest = rest.slice('Deleted '.length);

  const link = LINK_RE.exec(rest);
  if (link && (labelled === undefined || labelled === 'link')) {
    const state = /\bstate (\S+)/.exec(link[4])?.[1];
    return {
      object: 'link',
      deleted,
      link: { ifindex: Number(link[1]), ifname: link[2], flags: link[3] ? link[3].split(',') : [], state },
      line,
    };
  }
  const addr = ADDR_RE.exec(rest);
  if (addr && (labelled === undefined || labelled === 'address')) {
    const scope = /\bscope (\S+)/.exec(addr[6])?.[1];
    return {
      object: 'address',
      deleted,
      address: {
        ifindex: Number(addr[1]),
        ifname: addr[2],
        family: addr[3] as IpFamily,
        local: canonicalAddress(addr[4]),
        prefixlen: Number(addr[5]),
        scope,
      },
      line,
    };
  }
  if (labelled === undefined || labelled === 'route') {
    const first = rest.split(' ')[0];
    if (first === 'default' || ROUTE_TYPES.has(first) || isAddressLike(first)) {
      // Neighbour events (`192.0.2.1 dev eth0 lladdr … REACHABLE`) look like routes; they are not.
      if (labelled === undefined && / lladdr | (REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|NOARP|PERMANENT)$/.test(` ${rest}`)) {
        return { object: 'other', deleted, line };
      }
      return { object: 'route', deleted, route: parseRoute(rest, line), line };
    }
  }
  if (labelled !== undefined && labelled !== 'other') throw new ParseError(KIND, `cannot read ${labelled} event: "${line}"`);
  return { object: 'other', deleted, line };
}

/** Splits plain `ip monitor` output into event blocks (continuation lines are indented). */
export function splitIpMonitorOutput(text: string): string[] {
  const blocks: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    if (/^\s/.test(raw) && blocks.length > 0) blocks[blocks.length - 1] += `\n${raw}`;
    else blocks.push(raw);
  }
  return blocks;
}

/** Parses a whole capture of `ip monitor` output. */
export function parseIpMonitorLines(text: string): IpMonitorEvent[] {
  return splitIpMonitorOutput(text).map(parseIpMonitorLine);
}
