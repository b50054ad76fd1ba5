import {
  NetworksetupUnknownServiceError,
  ParseError,
  findIfconfigInterfaceForAddress,
  networksetupError,
  parseAdditionalRoutes,
  parseDnsServers,
  parseIfconfig,
  parseNetworkServices,
  parseScutilNwi,
  parseSearchDomains,
} from '@wgctl/parsers';

describe('networksetup', () => {
  it('lists services with odd names and the disabled marker', () => {
    const text = [
      'An asterisk (*) denotes that a network service is disabled.',
      'USB 10/100/1000 LAN',
      '*Thunderbolt Bridge',
      'Parallels Shared #0',
      'Wi-Fi (Office)',
      '*iPhone USB 2',
      '',
    ].join('\n');
    expect(parseNetworkServices(text)).toEqual([
      { name: 'USB 10/100/1000 LAN', enabled: true },
      { name: 'Thunderbolt Bridge', enabled: false },
      { name: 'Parallels Shared #0', enabled: true },
      { name: 'Wi-Fi (Office)', enabled: true },
      { name: 'iPhone USB 2', enabled: false },
    ]);
    expect(() => parseNetworkServices('Wi-Fi\n')).toThrow(/legend/);
    expect(parseNetworkServices('An asterisk (*) denotes that a network service is disabled.\n')).toEqual([]);
  });

  it('reads DNS servers and search domains, "none" as []', () => {
    expect(parseDnsServers('192.0.2.53\n2001:db8::53\nfe80::1%en0\n')).toEqual(['192.0.2.53', '2001:db8::53', 'fe80::1%en0']);
    expect(parseDnsServers("There aren't any DNS Servers set on USB 10/100/1000 LAN.\n")).toEqual([]);
    expect(() => parseDnsServers('not-an-ip\n')).toThrow(/not an IP address/);
    expect(() => parseDnsServers('')).toThrow(ParseError);
    expect(parseSearchDomains('corp.example\nlab.example.\n')).toEqual(['corp.example', 'lab.example.']);
    expect(parseSearchDomains("There aren't any Search Domains set on Wi-Fi.\n")).toEqual([]);
    expect(() => parseSearchDomains('bad domain!\n')).toThrow(/not a domain/);
  });

  it('turns errors into typed errors, whatever the exit code said', () => {
    const unknown = 'Wi-Fi (Office) is not a recognized network service.\n** Error: The parameters were not valid.\n';
    expect(() => parseDnsServers(unknown)).toThrow(NetworksetupUnknownServiceError);
    expect(() => parseDnsServers('** Error: Unable to commit changes to network database.\n')).toThrow(/Unable to commit/);
    expect(networksetupError('', '')).toBeUndefined();
    expect(networksetupError('** Error: Unable to commit changes to network database.\n', '')).toBe('** Error: Unable to commit changes to network database.');
  });

  it('reads additional routes', () => {
    expect(parseAdditionalRoutes('192.0.2.0 255.255.255.0 192.168.1.1\n')).toEqual([{ destination: '192.0.2.0', mask: '255.255.255.0', gateway: '192.168.1.1' }]);
    expect(() => parseAdditionalRoutes('192.0.2.0 255.255.255.0\n')).toThrow(ParseError);
  });
});

describe('ifconfig', () => {
  it('reads utun point-to-point, vmnet bridges with members, and finds the VM-facing interface', () => {
    const text = [
      'utun4: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1420',
      '\tinet 10.6.0.2 --> 10.6.0.2 netmask 0xffffffff',
      'bridge100: flags=8a63<UP,BROADCAST,SMART,RUNNING,ALLMULTI,SIMPLEX,MULTICAST> mtu 1500',
      '\toptions=3<RXCSUM,TXCSUM>',
      '\tether 6e:7e:67:eb:5b:64',
      '\tinet 10.211.55.2 netmask 0xffffff00 broadcast 10.211.55.255',
      '\tConfiguration:',
      '\t\tid 0:0:0:0:0:0 priority 0 hellotime 0 fwddelay 0',
      '\tmember: vmenet0 flags=3<LEARNING,DISCOVER>',
      '\t        ifmaxaddr 0 port 21 priority 0 path cost 0',
      '\tstatus: active',
    ].join('\n');
    const all = parseIfconfig(text);
    expect(all[0]).toMatchObject({ name: 'utun4', mtu: 1420, inet: [{ address: '10.6.0.2', peer: '10.6.0.2', prefixLength: 32 }] });
    expect(all[1].members).toEqual([{ name: 'vmenet0', flags: ['LEARNING', 'DISCOVER'] }]);
    expect(findIfconfigInterfaceForAddress(all, '10.211.55.5')).toMatchObject({ interface: { name: 'bridge100' }, inet: { address: '10.211.55.2' } });
    expect(findIfconfigInterfaceForAddress(all, '10.6.0.3')).toBeNull(); // point-to-point links are not vnics
    expect(findIfconfigInterfaceForAddress(all, '198.51.100.1')).toBeNull();
  });

  it('refuses broken input', () => {
    expect(() => parseIfconfig('\tinet 1.2.3.4\n')).toThrow(/before any interface/);
    expect(() => parseIfconfig('en0 is up\n')).toThrow(/not an interface header/);
    expect(() => parseIfconfig('en0: flags=8863<UP> mtu 1500\n\tinet 1.2.3.4 netmask 0xff00ff00\n')).toThrow(/non-contiguous/);
    expect(() => parseIfconfig('en0: flags=8863<UP> mtu 1500\n\tinet6 zz::1 prefixlen 64\n')).toThrow(/bad inet6/);
    expect(parseIfconfig('')).toEqual([]);
  });
});

describe('scutil --nwi', () => {
  it('reads a VPN entry and the no-IPv6 case', () => {
    const text = [
      'Network information',
      '',
      'IPv4 network interface information',
      '   utun3 : flags      : 0x5 (IPv4,DNS)',
      '           address    : 10.6.0.2',
      '           VPN server : 203.0.113.10',
      '           reach      : 0x00000003 (Reachable,Transient Connection)',
      '     en0 : flags      : 0x5 (IPv4,DNS)',
      '           address    : 192.168.1.20',
      '           reach      : 0x00000002 (Reachable)',
      '',
      '   REACH : flags 0x00000002 (Reachable)',
      '',
      'IPv6 network interface information',
      '   No IPv6 states found',
      '',
      '   REACH : flags 0x00000000 (Not Reachable)',
      '',
      'Network interfaces: utun3 en0',
    ].join('\n');
    const nwi = parseScutilNwi(text);
    expect(nwi.ipv4.map((i) => [i.interface, i.vpnServer ?? null])).toEqual([
      ['utun3', '203.0.113.10'],
      ['en0', null],
    ]);
    expect(nwi.ipv6).toEqual([]);
    expect(nwi.interfaces).toEqual(['utun3', 'en0']);
    expect(() => parseScutilNwi('IPv4 network interface information\n')).toThrow(ParseError);
  });
});
