/** The documentation prefixes every lab and test address must come from (RFC 5737, RFC 3849). */
import ipaddr from 'ipaddr.js';

export const DOCUMENTATION_PREFIXES = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32'];
const parsed = DOCUMENTATION_PREFIXES.map((p) => ipaddr.parseCIDR(p));

export function isDocumentationAddress(ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const addr = ipaddr.parse(ip);
  return parsed.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}
