/**
 * What an Up request may hold, where validation.ts decides it: the addresses as @wgctl/config
 * reads them, host names as the wg-quick Endpoint parser takes them (underscores too).
 */
import { InvalidRequestError } from '@wgctl/agent-kit';
import type { UpIntent } from '../journal';
import { validateIntent } from '../validation';

const intent = (patch: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: '192.0.2.130',
  endpoints: [{ ip: '203.0.113.10', port: 51820 }],
  dnsServers: [],
  ipv6: 'auto',
  ...patch,
});

const problems = (patch: Partial<UpIntent>): string[] => {
  try {
    validateIntent(intent(patch));
    return [];
  } catch (e) {
    if (!(e instanceof InvalidRequestError)) throw e;
    return e.message.split('; ');
  }
};

describe('validateIntent', () => {
  it('takes host names with underscores, as a WireGuard config may hold them, and all-numeric ones', () => {
    for (const host of ['vpn.example.net', 'vpn_1.example.net', '_wg.example.', 'my-host', '1.2.3']) {
      expect(problems({ endpoints: [{ host, ip: '203.0.113.10', port: 51820 }] })).toEqual([]);
    }
    expect(problems({ endpoints: [{ host: 'bad host', ip: '203.0.113.10', port: 51820 }] })).toEqual([expect.stringMatching(/^endpoints\[0\]\.host: "bad host"/)]);
    expect(problems({ endpoints: [{ host: '-vpn.example.net', ip: '203.0.113.10', port: 51820 }] })).toHaveLength(1);
  });

  it('takes IPv6 with a zone id, as before', () => {
    expect(validateIntent(intent({ endpoints: [{ ip: 'fe80::1%en0', port: 51820 }], dnsServers: ['fe80::53%en0'] }))).toMatchObject({
      endpoints: [{ ip: 'fe80::1%en0' }],
      dnsServers: ['fe80::53%en0'],
    });
    expect(problems({ vmAddress6: 'fe80::130%bridge100' })).toEqual([]);
  });

  it('refuses what is no address though ipaddr.js took it: a 5-digit group, a :: for no group, a leading zero in an embedded IPv4', () => {
    for (const ip of ['2001:db8::0000a', '1:2:3:4::5:6:7:8', '::ffff:192.0.02.1']) {
      expect(problems({ endpoints: [{ ip, port: 51820 }] })).toEqual([expect.stringMatching(/^endpoints\[0\]\.ip: .* is not an IP address/)]);
    }
    expect(problems({ vmAddress: '192.0.2.013' })).toEqual([expect.stringMatching(/^vm_address: .* is not an IPv4 address/)]);
    expect(problems({ vmAddress6: '192.0.2.1' })).toEqual([expect.stringMatching(/^vm_address6: .* is not an IPv6 address/)]);
  });
});
