/**
 * The capture interface's own link-layer address and on-link prefixes, so `wgctl verify` can
 * tell what this host sent (source MAC = its own) from what neighbours sent, and DHCP to an
 * on-link server from DHCP to anywhere. Argv builders and parsers are pure; one run per capture.
 */
import { parseIfconfig, parseIpAddrJson } from '@wgctl/parsers';
import type { Runner } from '@wgctl/runner';

export interface InterfaceLink {
  /** Lower-case MAC; undefined on links without one (tunnels). */
  linkAddress?: string;
  /** Addresses as CIDR (`192.0.2.100/25`, `fe80::1/64`). */
  addresses: string[];
}

/** `ifconfig IF` on darwin, `ip -j addr show dev IF` elsewhere. */
export function interfaceLinkArgv(system: string, iface: string): string[] {
  return system === 'darwin' ? ['ifconfig', iface] : ['ip', '-j', 'addr', 'show', 'dev', iface];
}

/** Reads the output of interfaceLinkArgv; undefined when it names no such interface. */
export function parseInterfaceLink(system: string, iface: string, stdout: string): InterfaceLink | undefined {
  if (system === 'darwin') {
    const found = parseIfconfig(stdout).find((i) => i.name === iface);
    if (!found) return undefined;
    return {
      linkAddress: found.ether?.toLowerCase(),
      addresses: [...found.inet.map((a) => `${a.address}/${a.prefixLength}`), ...found.inet6.map((a) => `${a.address}/${a.prefixLength}`)],
    };
  }
  const found = parseIpAddrJson(stdout).find((l) => l.ifname === iface);
  if (!found) return undefined;
  // A tunnel (link/none) has no MAC; iproute2 may print none or an all-zero one.
  const mac = found.mac && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(found.mac) && !/^(00:){5}00$/.test(found.mac) ? found.mac.toLowerCase() : undefined;
  return { linkAddress: mac, addresses: found.addresses.map((a) => `${a.local}/${a.prefixlen}`) };
}

/** Runs and reads interfaceLinkArgv; undefined if that fails (verify then says it cannot tell directions). */
export async function readInterfaceLink(runner: Runner, system: string, iface: string): Promise<InterfaceLink | undefined> {
  try {
    const r = await runner.run(interfaceLinkArgv(system, iface), { readOnly: true, allowFailure: true });
    return r.exitCode === 0 ? parseInterfaceLink(system, iface, r.stdout) : undefined;
  } catch {
    return undefined;
  }
}
