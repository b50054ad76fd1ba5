/** `ip -j addr [show dev X]` (iproute2 JSON): links with their addresses. */
import { ParseError } from '../errors';
import { parseIpJsonArray } from './json';
import type { IpFamily } from './ip-route';

export interface IpAddrEntry {
  family: IpFamily;
  local: string;
  prefixlen: number;
  /** `global`, `link`, `host`… */
  scope: string;
  /** tentative, dadfailed, deprecated… as iproute2 lists them (true-valued keys). */
  flags: string[];
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  /** `BROADCAST`, `UP`, `LOWER_UP`… */
  flags: string[];
  mtu?: number;
  operstate?: string;
  linkType?: string;
  mac?: string;
  addresses: IpAddrEntry[];
}

const KIND = 'ip -j addr';
const ADDRESS_FLAGS = ['tentative', 'dadfailed', 'deprecated', 'optimistic', 'secondary', 'temporary', 'noprefixroute', 'dynamic', 'permanent'];

export function parseIpAddrJson(text: string): IpLink[] {
  const data = parseIpJsonArray(KIND, text, 'links');
  // `ip -j addr show dev X` on a link without addresses may print `[{}]`-like stubs: skip them.
  return data
    .filter((raw) => raw && typeof raw === 'object' && 'ifname' in raw)
    .map((raw, index) => {
      const link = raw as Record<string, unknown>;
      if (typeof link.ifname !== 'string' || typeof link.ifindex !== 'number') {
        throw new ParseError(KIND, `link #${index + 1} lacks ifname/ifindex`);
      }
      const addrInfo = Array.isArray(link.addr_info) ? (link.addr_info as Record<string, unknown>[]) : [];
      const addresses: IpAddrEntry[] = addrInfo
        .filter((a) => a !== null && typeof a === 'object' && (a.family === 'inet' || a.family === 'inet6'))
        .map((a) => {
          if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') {
            throw new ParseError(KIND, `${link.ifname}: address entry lacks local/prefixlen`);
          }
          return {
            family: a.family as IpFamily,
            local: a.local,
            prefixlen: a.prefixlen,
            scope: typeof a.scope === 'string' ? a.scope : 'global',
            flags: ADDRESS_FLAGS.filter((f) => a[f] === true),
          };
        });
      return {
        ifindex: link.ifindex,
        ifname: link.ifname,
        flags: Array.isArray(link.flags) ? (link.flags as string[]) : [],
        mtu: typeof link.mtu === 'number' ? link.mtu : undefined,
        operstate: typeof link.operstate === 'string' ? link.operstate : undefined,
        linkType: typeof link.link_type === 'string' ? link.link_type : undefined,
        mac: typeof link.address === 'string' ? link.address : undefined,
        addresses,
      };
    });
}

/** The first usable global address of a family on a link (not tentative/dadfailed/deprecated). */
export function primaryIpAddress(link: IpLink, family: IpFamily): IpAddrEntry | undefined {
  return link.addresses.find(
    (a) =>
      a.family === family &&
      a.scope === 'global' &&
      !a.flags.includes('dadfailed') &&
      !a.flags.includes('tentative') &&
      !a.flags.includes('deprecated'),
  );
}
