/**
 * `--allow-lan` on macOS: the uplink's LAN subnets (../lan.ts) from `ifconfig IF`. Detached or
 * duplicated IPv6 addresses (DAD failed) are left out: they are not in use on the link.
 */
import { parseIfconfig } from '@wgctl/parsers';
import type { Runner } from '@wgctl/runner';
import { lanSubnetsOf } from '../lan';

/** [] when ifconfig fails or the interface has no private/link-local address: no LAN passes. */
export async function readDarwinLanSubnets(run: Runner, uplink: string): Promise<string[]> {
  try {
    const result = await run.run(['ifconfig', uplink], { readOnly: true, allowFailure: true });
    if (result.exitCode !== 0) return [];
    const iface = parseIfconfig(result.stdout).find((i) => i.name === uplink);
    if (!iface) return [];
    const inet6 = iface.inet6.filter((a) => !a.flags.includes('detached') && !a.flags.includes('duplicated'));
    return lanSubnetsOf([...iface.inet, ...inet6]);
  } catch {
    return [];
  }
}
