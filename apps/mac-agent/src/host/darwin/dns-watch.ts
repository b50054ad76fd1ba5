/**
 * DNS changes on macOS as configd publishes them: `scutil` in interactive mode, told on stdin
 * to watch the keys that hold DNS (scutil.tproj: `n.add KEY [pattern]` adds a key, or a regex
 * with a second word; `n.watch` starts a run loop thread that prints each notification).
 *
 * - `State:/Network/Global/DNS`: the resolver configuration in force (IPMonitor rewrites it
 *   whenever a service's DNS, DHCP's included, or the primary service changes).
 * - `Setup:/Network/Service/<id>/DNS`: a service's manual servers, what networksetup and System
 *   Settings write (also a new service's).
 *
 * stdin stays open: scutil's main loop exits at the end of its input (scutil.c process_line).
 */
import { parseScutilChangedKey } from '@wgctl/parsers';
import type { DnsWatch } from '../dns-watch';

export const DARWIN_DNS_WATCH_KEYS = ['n.add State:/Network/Global/DNS', 'n.add Setup:/Network/Service/[^/]+/DNS pattern'];

export function darwinDnsWatch(): DnsWatch {
  return {
    monitor: {
      argv: ['scutil'],
      input: [...DARWIN_DNS_WATCH_KEYS, 'n.watch', ''].join('\n'),
      classifyLine: (line) => {
        const changed = parseScutilChangedKey(line);
        return changed ? `scutil: changed ${changed.key}` : null;
      },
    },
  };
}
