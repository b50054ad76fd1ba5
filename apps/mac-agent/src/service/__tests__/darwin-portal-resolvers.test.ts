/**
 * A sign-in window's resolvers on darwin (issue #14): `networksetup -getdnsservers` never lists
 * DHCP-given resolvers (it prints "There aren't any DNS Servers set on Wi-Fi.", a real capture),
 * so on a typical Mac they come from the uplink's lease (`ipconfig getpacket`, option 6), and
 * the PF window rules name them. The real DarwinDriver over a ScriptedRunner: the exact reads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScriptedRunner, type ScriptedCall } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import type { KillSwitchPolicy } from '../../host/driver';
import { portalResolvers } from '../up';

const FIXTURES = join(__dirname, '../../../../../libs/parsers/src/darwin/__fixtures__');
const NO_DNS_WIFI = readFileSync(join(FIXTURES, 'networksetup-getdnsservers-empty.txt'), 'utf8');
const NO_SEARCH_WIFI = "There aren't any Search Domains set on Wi-Fi.\n";

/** support.moonpoint.com's `ipconfig getpacket en0` capture (as in libs/parsers ipconfig.test.ts), addresses moved to documentation prefixes and a second resolver given. */
const LEASE = [
  'op = BOOTREPLY', 'htype = 1', 'flags = 0', 'hlen = 6', 'hops = 0', 'xid = 0xceb36b13', 'secs = 0',
  'ciaddr = 0.0.0.0', 'yiaddr = 192.0.2.51', 'siaddr = 0.0.0.0', 'giaddr = 0.0.0.0', 'chaddr = ac:bc:32:ce:d3:f5',
  'sname = ', 'file = ', 'options:', 'Options count is 7',
  'dhcp_message_type (uint8): ACK 0x5', 'server_identifier (ip): 192.0.2.1', 'lease_time (uint32): 0x15180',
  'subnet_mask (ip): 255.255.255.0', 'router (ip_mult): {192.0.2.1}', 'domain_name_server (ip_mult): {192.0.2.1, 198.51.100.53}', 'end (none): ', '',
].join('\n');

const readWifiDns = (servers: string): ScriptedCall[] => [
  { argv: ['networksetup', '-listallnetworkservices'], stdout: 'An asterisk (*) denotes that a network service is disabled.\nWi-Fi\n' },
  { argv: ['networksetup', '-getdnsservers', 'Wi-Fi'], stdout: servers },
  { argv: ['networksetup', '-getsearchdomains', 'Wi-Fi'], stdout: NO_SEARCH_WIFI },
];
const CONTEXT = { uplink: 'en0', vnic: 'bridge100' };
const POLICY: KillSwitchPolicy = { uplink: 'en0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'bridge100', vmAddress: '192.168.64.2', allowDhcp6: false, blockIpv6: true };

async function resolversRead(script: ScriptedCall[]): Promise<string[]> {
  const run = new ScriptedRunner(script);
  const resolvers = await portalResolvers(new DarwinDriver(), run, CONTEXT);
  run.assertDone();
  return resolvers;
}

describe('sign-in window resolvers on darwin', () => {
  it("are the lease's when networksetup has none, and the PF window rules name them", async () => {
    const resolvers = await resolversRead([...readWifiDns(NO_DNS_WIFI), { argv: ['ipconfig', 'getpacket', 'en0'], stdout: LEASE }]);
    expect(resolvers).toEqual(['192.0.2.1', '198.51.100.53']);

    const rules = new DarwinDriver().renderKillSwitch({ ...POLICY, portalWindow: { untilMs: Date.UTC(2026, 11, 3, 12), resolvers } });
    for (const resolver of resolvers) {
      expect(rules).toContain(`pass out quick inet proto udp from any to ${resolver} port 53 keep state`);
      expect(rules).toContain(`pass out quick inet proto tcp from any to ${resolver} port 53 flags S/SA keep state`);
    }
  });

  it('are the hand-set ones when networksetup lists some (the lease is not read: the Mac does not use it)', async () => {
    expect(await resolversRead(readWifiDns('203.0.113.53\n'))).toEqual(['203.0.113.53']);
  });

  it('are the journaled snapshot\'s when there is one, else the lease\'s (no networksetup read)', async () => {
    const snapshot = { services: [{ name: 'Wi-Fi', servers: [], searchDomains: [] }] };
    const run = new ScriptedRunner([{ argv: ['ipconfig', 'getpacket', 'en0'], stdout: LEASE }]);
    expect(await portalResolvers(new DarwinDriver(), run, CONTEXT, snapshot)).toEqual(['192.0.2.1', '198.51.100.53']);
    run.assertDone();
  });

  it.each([
    ['no lease (ipconfig prints nothing, exit 1)', { exitCode: 1 }],
    ['a lease without option 6', { stdout: LEASE.split('\n').filter((l) => !l.startsWith('domain_name_server')).join('\n') }],
    ['an answer that cannot be read', { stdout: 'ipconfig: something else\n' }],
  ])('are none for %s (the window then lets no DNS through)', async (_what, reply) => {
    expect(await resolversRead([...readWifiDns(NO_DNS_WIFI), { argv: ['ipconfig', 'getpacket', 'en0'], ...reply }])).toEqual([]);
  });
});
