/**
 * `resolvectl dns` and `resolvectl domain` (systemd-resolved): one line per scope,
 * `Global: 192.0.2.53` and `Link 2 (eth0): 192.0.2.53 2001:db8::53`.
 */
import { ParseError } from '../errors';

export interface ResolvectlScope {
  /** `global` or the link's interface name. */
  scope: string;
  ifindex?: number;
  values: string[];
}

const KIND = 'resolvectl';

export function parseResolvectlScopes(text: string): ResolvectlScope[] {
  const scopes: ResolvectlScope[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    const global = /^Global:\s*(.*)$/.exec(line);
    if (global) {
      scopes.push({ scope: 'global', values: global[1].split(/\s+/).filter(Boolean) });
      return;
    }
    const link = /^Link (\d+) \(([^)]+)\):\s*(.*)$/.exec(line);
    if (link) {
      scopes.push({ scope: link[2], ifindex: Number(link[1]), values: link[3].split(/\s+/).filter(Boolean) });
      return;
    }
    throw new ParseError(KIND, `unexpected line: "${line}"`, index + 1);
  });
  return scopes;
}
