/**
 * The uplink's DHCP lease, for the kill switch's DHCP exception (KillSwitchPolicy.dhcpServer)
 * and a sign-in window's resolvers (PortalWindow.resolvers):
 * `ipconfig getpacket IF` prints the reply IPConfiguration accepted (server identifier, our
 * address, subnet mask) in one read; `getoption IF server_identifier` would give the server
 * alone, without what it takes to tell whether it is on-link.
 */
import { onLinkLeaseServer, parseIpconfigPacket, type DhcpLeasePacket } from '@wgctl/parsers';
import type { Runner } from '@wgctl/runner';

export function darwinLeaseArgv(uplink: string): string[] {
  return ['ipconfig', 'getpacket', uplink];
}

/**
 * The lease's server if it is on the uplink's subnet, else undefined. No lease (ipconfig prints
 * nothing and exits 1), an unreadable answer or a missing ipconfig all give undefined: the kill
 * switch then allows the broadcast only, which is narrower, and the lease is still renewed by
 * REBINDING (RFC 2131 §4.4.5).
 */
export async function readDarwinDhcpServer(run: Runner, uplink: string): Promise<string | undefined> {
  return onLinkLeaseServer(await readLease(run, uplink));
}

/**
 * The resolvers the uplink's lease gives (option 6), for a sign-in window: `networksetup
 * -getdnsservers` lists only resolvers set by hand, never DHCP's. [] when there is no lease,
 * no option 6, or an answer that cannot be read (the window then lets no DNS through).
 */
export async function readDarwinDhcpResolvers(run: Runner, uplink: string): Promise<string[]> {
  return (await readLease(run, uplink))?.domainNameServers ?? [];
}

/** The uplink's lease packet; null when there is none, when ipconfig fails or prints what cannot be read. */
async function readLease(run: Runner, uplink: string): Promise<DhcpLeasePacket | null> {
  try {
    const result = await run.run(darwinLeaseArgv(uplink), { readOnly: true, allowFailure: true });
    if (result.exitCode !== 0) return null;
    return parseIpconfigPacket(result.stdout);
  } catch {
    return null;
  }
}
