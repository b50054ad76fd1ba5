/**
 * Excluded destinations (`exclude`, `--exclude CIDR`): prefixes the Mac reaches through its
 * original gateway, in clear, beside the tunnel. One verdict for the controller (config, flags)
 * and the mac-agent (Up request), so both refuse the same CIDRs with the same words.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { shownValue } from '@wgctl/logging';

/** More than this is a mistake, not a configuration (each one is a route and a kill-switch rule). */
export const MAX_EXCLUDED = 64;

/**
 * The widest prefix that may be excluded. IPv4: a /8, the largest block IANA ever allocated
 * (RFC 1466 §3); anything wider is a sizeable part of the Internet leaving in clear, and a /1
 * (or /0) would equal (or lose to) the split routes 0.0.0.0/1 and 128.0.0.0/1. IPv6: a /16,
 * wider than any RIR allocation (RIRs hold /12s from IANA, end sites get /48s).
 */
export const MIN_EXCLUDED_PREFIX = { ipv4: 8, ipv6: 16 } as const;

/**
 * Ranges an excluded route must not touch: they never leave the host or the link through a
 * gateway (RFC 6890 / RFC 4291 §2.4), and a route of ours over them would break the host.
 */
const NEVER_EXCLUDED: { cidr: string; what: string }[] = [
  { cidr: '0.0.0.0/8', what: '"this network" (RFC 6890)' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved and broadcast (RFC 6890)' },
  { cidr: '::/128', what: 'the unspecified address' },
  { cidr: '::1/128', what: 'loopback' },
  { cidr: '::ffff:0:0/96', what: 'IPv4-mapped addresses' },
  { cidr: 'fe80::/10', what: 'link-local' },
  { cidr: 'ff00::/8', what: 'multicast' },
];

type Prefix = [ipaddr.IPv4 | ipaddr.IPv6, number];

function overlaps([a, aLen]: Prefix, [b, bLen]: Prefix): boolean {
  if (a.kind() !== b.kind()) return false;
  // Two prefixes overlap iff the shorter one contains the other's network address.
  return aLen <= bLen ? b.match(a, aLen) : a.match(b, bLen);
}

/** A checked excluded CIDR in its canonical form (`203.0.113.0/24`, `2001:db8::/32`), or why not. */
export function checkExcludedCidr(value: string): { cidr: string } | { problem: string } {
  let parsed: Prefix;
  try {
    parsed = ipaddr.parseCIDR(value);
  } catch {
    return { problem: `${shownValue(value)} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32` };
  }
  const [address, length] = parsed;
  if (address.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(value.slice(0, value.indexOf('/')))) {
    return { problem: `${shownValue(value)}: write IPv4 in four-part decimal (203.0.113.0/24)` };
  }
  const network = address.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(value) : ipaddr.IPv6.networkAddressFromCIDR(value);
  const cidr = `${network.toString()}/${length}`;
  if (network.toString() !== address.toString()) return { problem: `${shownValue(value)} has host bits set: write ${cidr}` };
  const min = MIN_EXCLUDED_PREFIX[address.kind()];
  if (length < min) {
    return { problem: `${cidr} is too wide to exclude (shorter than /${min}): that much would leave the tunnel in clear` };
  }
  const reserved = NEVER_EXCLUDED.find((r) => overlaps([network, length], ipaddr.parseCIDR(r.cidr)));
  if (reserved) return { problem: `${cidr} overlaps ${reserved.cidr} (${reserved.what}), which is never routed through a gateway` };
  return { cidr };
}

/** Whether `cidr` (checked) contains `address`. */
export function cidrContains(cidr: string, address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const ip = ipaddr.parse(address);
  const range = ipaddr.parseCIDR(cidr);
  return ip.kind() === range[0].kind() && ip.match(range);
}

/**
 * Problems with a list of excluded CIDRs, each naming `field[i]`: bad CIDRs, too many, and
 * ranges covering an address that must stay reachable the way it is (the VM: the Mac would
 * lose it; a DNS server of the tunnel: lookups would leave in clear).
 */
export function excludedProblems(field: string, cidrs: readonly string[], keep: { address?: string; what: string }[] = []): string[] {
  const problems: string[] = [];
  if (cidrs.length > MAX_EXCLUDED) problems.push(`${field}: ${cidrs.length} given, at most ${MAX_EXCLUDED}`);
  cidrs.slice(0, MAX_EXCLUDED).forEach((value, i) => {
    const checked = checkExcludedCidr(value);
    if ('problem' in checked) return void problems.push(`${field}[${i}]: ${checked.problem}`);
    const covered = keep.find((k) => k.address && cidrContains(checked.cidr, k.address));
    if (covered) problems.push(`${field}[${i}]: ${checked.cidr} covers ${covered.what} ${covered.address as string}`);
  });
  return problems;
}

/** The canonical form of checked CIDRs (for requests and rules: one spelling per prefix). */
export function canonicalExcluded(cidrs: readonly string[]): string[] {
  return [...new Set(cidrs.map((c) => (checkExcludedCidr(c) as { cidr: string }).cidr))];
}

export const excludedCidrSchema = z.string().superRefine((value, ctx) => {
  const checked = checkExcludedCidr(value);
  if ('problem' in checked) ctx.addIssue({ code: 'custom', message: checked.problem });
});
