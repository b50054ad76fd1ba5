/**
 * DNS on macOS, per network service, through `networksetup`: its exit status is not trusted,
 * its text is (networksetupError).
 */
import { isIpAddress } from '@wgctl/config';
import { NetworksetupUnknownServiceError, networksetupError, parseDnsServers, parseNetworkServices, parseSearchDomains } from '@wgctl/parsers';
import { CommandError, type Runner, mapTogether, readTogether } from '@wgctl/runner';
import type { DnsSnapshot } from '../driver';
import { checkExit } from './common';

/** networksetup reads in flight at once when snapshotting DNS (two per service). */
const NETWORKSETUP_READS_AT_ONCE = 8;

/** Runs a networksetup read; its exit status is not trusted, the text is. */
async function networksetupRead(run: Runner, argv: string[]): Promise<string> {
  const result = await run.run(argv, { readOnly: true, allowFailure: true });
  if (result.exitCode !== 0 && !networksetupError(result.stdout, result.stderr)) throw new CommandError(result);
  return result.stdout;
}

export async function readDarwinDns(run: Runner): Promise<DnsSnapshot> {
  // Every service, disabled ones included: one enabled later must not bypass our DNS.
  const services = parseNetworkServices(await networksetupRead(run, ['networksetup', '-listallnetworkservices']));
  // networksetup takes tens of ms a call and a Mac has several services: read them side by
  // side (a few at a time, to spare configd), started in the listed order.
  const read = await mapTogether(
    services,
    async ({ name }) => {
      try {
        const [servers, searchDomains] = await readTogether([
          networksetupRead(run, ['networksetup', '-getdnsservers', name]),
          networksetupRead(run, ['networksetup', '-getsearchdomains', name]),
        ]);
        return { name, servers: parseDnsServers(servers), searchDomains: parseSearchDomains(searchDomains) };
      } catch (e) {
        // Renamed or removed since it was listed: nothing of it to remember.
        if (e instanceof NetworksetupUnknownServiceError) return null;
        throw e;
      }
    },
    { limit: NETWORKSETUP_READS_AT_ONCE / 2 },
  );
  return { services: read.filter((s) => s !== null) };
}

async function networksetupSet(run: Runner, argv: string[]): Promise<'ok' | 'unknown-service'> {
  const result = await run.run(argv, { allowFailure: true });
  const error = networksetupError(result.stdout, result.stderr);
  if (error && / is not a recognized network service\.$/.test(error)) return 'unknown-service';
  if (error) throw new Error(`${argv.join(' ')}: ${error}`);
  checkExit(result);
  return 'ok';
}

export async function setDarwinDns(run: Runner, servers: string[], current: DnsSnapshot): Promise<void> {
  if (servers.length === 0) throw new Error('setDns: no DNS servers given');
  for (const address of servers) {
    if (!isIpAddress(address.split('%')[0])) throw new Error(`setDns: "${address}" is not an IP address`);
  }
  for (const service of current.services) {
    // A service gone since the snapshot has nothing to set.
    await networksetupSet(run, ['networksetup', '-setdnsservers', service.name, ...servers]);
  }
}

export async function restoreDarwinDns(run: Runner, snapshot: DnsSnapshot): Promise<void> {
  for (const service of snapshot.services) {
    // `Empty` = none set: back to whatever DHCP provides.
    const servers = service.servers.length > 0 ? service.servers : ['Empty'];
    if ((await networksetupSet(run, ['networksetup', '-setdnsservers', service.name, ...servers])) === 'unknown-service') continue;
    if (service.searchDomains) {
      const domains = service.searchDomains.length > 0 ? service.searchDomains : ['Empty'];
      await networksetupSet(run, ['networksetup', '-setsearchdomains', service.name, ...domains]);
    }
  }
}
