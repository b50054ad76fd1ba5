import fc from 'fast-check';
import { ParseError, onLinkLeaseServer, parseIpconfigPacket } from '@wgctl/parsers';
import { ADVERSARIAL_INPUTS, mutated, parseOrParseError, randomText } from '../../testing/fuzz';

/**
 * `ipconfig getpacket en0` as published on https://support.moonpoint.com/os/os-x/dhcp-info.php
 * (the page's text extraction joined the lines: one field per line restored, values unchanged).
 * Not in __fixtures__, which mirrors shared/fixtures/macos exactly.
 */
const MOONPOINT = [
  'op = BOOTREPLY', 'htype = 1', 'flags = 0', 'hlen = 6', 'hops = 0', 'xid = 0xceb36b13', 'secs = 0',
  'ciaddr = 0.0.0.0', 'yiaddr = 192.168.2.51', 'siaddr = 0.0.0.0', 'giaddr = 0.0.0.0', 'chaddr = ac:bc:32:ce:d3:f5',
  'sname = ', 'file = ', 'options:', 'Options count is 7',
  'dhcp_message_type (uint8): ACK 0x5', 'server_identifier (ip): 192.168.2.1', 'lease_time (uint32): 0x15180',
  'subnet_mask (ip): 255.255.255.0', 'router (ip_mult): {192.168.2.1}', 'domain_name_server (ip_mult): {192.168.2.1}', 'end (none): ', '',
].join('\n');

/** The same lease as a relay would deliver it: giaddr set, the server identifier off our subnet (edited from MOONPOINT). */
const RELAYED = MOONPOINT.replace('giaddr = 0.0.0.0', 'giaddr = 192.168.2.1').replace('server_identifier (ip): 192.168.2.1', 'server_identifier (ip): 198.51.100.67');

describe('parseIpconfigPacket', () => {
  it('reads the lease of a real capture', () => {
    expect(parseIpconfigPacket(MOONPOINT)).toEqual({
      yiaddr: '192.168.2.51', ciaddr: '0.0.0.0', giaddr: '0.0.0.0', messageType: 'ACK', serverIdentifier: '192.168.2.1', subnetMask: '255.255.255.0',
      domainNameServers: ['192.168.2.1'],
    });
  });

  it('is null when ipconfig printed nothing (no DHCP on the interface, or no lease: ipconfig(8))', () => {
    expect(parseIpconfigPacket('')).toBeNull();
    expect(parseIpconfigPacket('\n')).toBeNull();
  });

  it('keeps a relayed lease\'s relay and server apart', () => {
    expect(parseIpconfigPacket(RELAYED)).toMatchObject({ giaddr: '192.168.2.1', serverIdentifier: '198.51.100.67' });
  });

  it('reads a BOOTP reply (no DHCP options) without a server identifier', () => {
    const bootp = MOONPOINT.split('\n').filter((l) => !/^(dhcp_message_type|server_identifier)/.test(l)).join('\n');
    expect(parseIpconfigPacket(bootp)).toEqual({ yiaddr: '192.168.2.51', ciaddr: '0.0.0.0', giaddr: '0.0.0.0', subnetMask: '255.255.255.0', domainNameServers: ['192.168.2.1'] });
  });

  describe('domain_name_server (option 6, ip_mult)', () => {
    const withServers = (value: string) => MOONPOINT.replace('domain_name_server (ip_mult): {192.168.2.1}', `domain_name_server (ip_mult): ${value}`);

    it('reads several resolvers in the order the server gave them', () => {
      expect(parseIpconfigPacket(withServers('{198.51.100.53, 192.168.2.1, 203.0.113.9}'))?.domainNameServers).toEqual(['198.51.100.53', '192.168.2.1', '203.0.113.9']);
    });

    it('joins option 6 split in several pieces (RFC 3396: ipconfig prints each)', () => {
      const split = withServers('{198.51.100.53}\ndomain_name_server (ip_mult): {192.168.2.1, 203.0.113.9}');
      expect(parseIpconfigPacket(split)?.domainNameServers).toEqual(['198.51.100.53', '192.168.2.1', '203.0.113.9']);
    });

    it('has none when the lease gives none (no option 6, or an empty list)', () => {
      const without = MOONPOINT.split('\n').filter((l) => !l.startsWith('domain_name_server')).join('\n');
      expect(parseIpconfigPacket(without)).not.toHaveProperty('domainNameServers');
      expect(parseIpconfigPacket(withServers('{}'))?.domainNameServers).toEqual([]);
    });

    it.each([
      ['a bad address in the list', '{192.168.2.1, 192.168.2}'],
      ['an IPv6 address (option 6 is IPv4 only)', '{2001:db8::53}'],
      ['a list without braces', '192.168.2.1'],
    ])('refuses %s', (_what, value) => {
      expect(() => parseIpconfigPacket(withServers(value))).toThrow(ParseError);
    });
  });

  it.each([
    ['not a packet dump', 'ipconfig: getpacket en9 failed'],
    ['a header field missing', MOONPOINT.replace('yiaddr = 192.168.2.51\n', '')],
    ['a bad address', MOONPOINT.replace('server_identifier (ip): 192.168.2.1', 'server_identifier (ip): 192.168.2')],
    ['a request, not a reply', MOONPOINT.replace('op = BOOTREPLY', 'op = BOOTREQUEST')],
  ])('refuses %s', (_what, text) => {
    expect(() => parseIpconfigPacket(text)).toThrow(ParseError);
  });
});

describe('onLinkLeaseServer', () => {
  const lease = parseIpconfigPacket(MOONPOINT)!;

  it('is the server identifier when it lies in our leased subnet', () => {
    expect(onLinkLeaseServer(lease)).toBe('192.168.2.1');
  });

  it('uses ciaddr when yiaddr is 0.0.0.0 (a reply to DHCPINFORM)', () => {
    expect(onLinkLeaseServer({ ...lease, yiaddr: '0.0.0.0', ciaddr: '192.168.2.77' })).toBe('192.168.2.1');
  });

  it.each([
    ['no lease', null],
    ['a relayed lease (server off-link)', parseIpconfigPacket(RELAYED)],
    ['no server identifier', { ...lease, serverIdentifier: undefined }],
    ['no subnet mask', { ...lease, subnetMask: undefined }],
    ['a non-contiguous mask', { ...lease, subnetMask: '255.0.255.0' }],
    ['a /32 lease', { ...lease, subnetMask: '255.255.255.255' }],
    ['a server identifier that is our own address', { ...lease, serverIdentifier: '192.168.2.51' }],
    ['the limited broadcast', { ...lease, serverIdentifier: '255.255.255.255' }],
    ['the subnet broadcast', { ...lease, serverIdentifier: '192.168.2.255' }],
    ['the subnet address', { ...lease, serverIdentifier: '192.168.2.0' }],
    ['no address of ours', { ...lease, yiaddr: '0.0.0.0' }],
    ['a neighbouring subnet', { ...lease, serverIdentifier: '192.168.3.1' }],
  ])('is undefined for %s', (_what, packet) => {
    expect(onLinkLeaseServer(packet)).toBeUndefined();
  });
});

describe('parseIpconfigPacket on random input', () => {
  const parseAndJudge = (text: string) => onLinkLeaseServer(parseIpconfigPacket(text));

  it('answers or throws ParseError, quickly, for random text and mutated captures', () => {
    const started = Date.now();
    const tokens = ['op = BOOTREPLY', 'yiaddr = ', 'server_identifier (ip): ', 'subnet_mask (ip): ', '192.168.2.1', '255.255.255.0', ' (ip): '];
    fc.assert(fc.property(fc.oneof(randomText(tokens), mutated([MOONPOINT, RELAYED])), (text) => parseOrParseError(parseAndJudge, text).ms >= 0), { numRuns: 500 });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('handles long adversarial lines in bounded time', () => {
    for (const text of [...ADVERSARIAL_INPUTS, `op = ${'a'.repeat(50_000)}`, `${'x'.repeat(50_000)} (ip): 1`]) parseOrParseError(parseAndJudge, text, 1_000);
  });
});
