import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { join } from 'node:path';
import { ParseError } from '../../errors';
import { parseWgEndpoint, parseWgQuickConfig, wgQuickInterfaceFromPath } from '../wg-quick-config';
import { WgSecret } from '../secret';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PUB1 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PUB2 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';

const FULL = `
# managed by hand
[Interface]
PrivateKey = ${PRIV}
Address = 192.0.2.2/24, 2001:db8:9::2/64
address = 192.0.2.3/32   # a second Address line adds to the list
ListenPort = 51821
MTU = 1380
Table = off
FwMark = 0xca6c
DNS = 192.0.2.53, 2001:db8::53, corp.example
PreUp = echo pre-up
PostUp = iptables -A FORWARD -i %i -j ACCEPT; echo "two commands"
PostUp = echo second
PreDown = echo pre-down
PostDown = echo post-down
SaveConfig = false

[Peer]
PublicKey = ${PUB1}
PresharedKey = ${PSK}
Endpoint = vpn.example.net:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25

[peer]
publickey = ${PUB2}
endpoint = [2001:db8::1]:4500
allowedips = 198.51.100.0/24
allowedips = 203.0.113.7
`;

describe('parseWgQuickConfig', () => {
  it('reads every Interface and Peer key, case-insensitively, with repeated list keys', () => {
    const config = parseWgQuickConfig(FULL);
    const i = config.interface;
    expect(i.addresses).toEqual(['192.0.2.2/24', '2001:db8:9::2/64', '192.0.2.3/32']);
    expect(i.listenPort).toBe(51821);
    expect(i.mtu).toBe(1380);
    expect(i.table).toBe('off');
    expect(i.fwMark).toBe(51820);
    expect(i.dns).toEqual(['192.0.2.53', '2001:db8::53']);
    expect(i.dnsSearch).toEqual(['corp.example']);
    expect(i.preUp).toEqual(['echo pre-up']);
    expect(i.postUp).toEqual(['iptables -A FORWARD -i %i -j ACCEPT; echo "two commands"', 'echo second']);
    expect(i.preDown).toEqual(['echo pre-down']);
    expect(i.postDown).toEqual(['echo post-down']);
    expect(i.saveConfig).toBe(false);
    expect(i.privateKey?.reveal()).toBe(PRIV);
    expect(config.peers).toHaveLength(2);
    expect(config.peers[0]).toMatchObject({
      publicKey: PUB1,
      endpoint: { host: 'vpn.example.net', port: 51820, family: 'name' },
      allowedIps: ['0.0.0.0/0', '::/0'],
      persistentKeepalive: 25,
    });
    expect(config.peers[0].presharedKey?.reveal()).toBe(PSK);
    expect(config.peers[1]).toMatchObject({
      publicKey: PUB2,
      endpoint: { host: '2001:db8::1', port: 4500, family: 6 },
      allowedIps: ['198.51.100.0/24', '203.0.113.7'],
      persistentKeepalive: 0,
    });
  });

  it('keeps private and preshared keys out of JSON, String() and inspect()', () => {
    const config = parseWgQuickConfig(FULL);
    for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config.interface.privateKey), `${config.peers[0].presharedKey}`]) {
      expect(text).not.toContain(PRIV);
      expect(text).not.toContain(PSK);
    }
    expect(config.interface.privateKey).toBeInstanceOf(WgSecret);
  });

  it('parses the real client config of the fixtures', () => {
    const text = readFileSync(join(__dirname, '../__fixtures__/wg-quick-client.conf'), 'utf8');
    const config = parseWgQuickConfig(text);
    expect(config.interface.addresses).toEqual(['192.0.2.2/24']);
    expect(config.peers.map((p) => [p.endpoint?.host ?? null, p.allowedIps.length, p.persistentKeepalive, p.presharedKey !== undefined])).toEqual([
      ['2001:db8:1::1', 3, 25, true],
      ['203.0.113.9', 1, 0, false],
      [null, 0, 0, false],
    ]);
  });

  it.each([
    ['[Interface]\nAddress = 192.0.2.300/24\n', /line 2: Address "192.0.2.300\/24"/],
    ['[Interface]\nAddress = 192.0.2.1/33\n', /Address/],
    ['[Interface]\nListenPort = 70000\n', /line 2: ListenPort/],
    ['[Interface]\nPrivateKey = nope\n', /PrivateKey is not a WireGuard key/],
    ['[Interface]\nBogus = 1\n', /unknown \[Interface\] key Bogus/],
    ['[Interface]\nMTU = 100\n', /MTU 100/],
    ['PublicKey = x\n', /before any \[Interface\]/],
    ['[Interface]\n[Interface]\n', /second \[Interface\]/],
    ['[Interface]\n[Peer]\nAllowedIPs = 192.0.2.0/24\n', /line 2: \[Peer\] has no PublicKey/],
    [`[Interface]\n[Peer]\nPublicKey = ${PUB1}\nEndpoint = 2001:db8::1:51820\n`, /Endpoint "2001:db8::1:51820"/],
    [`[Interface]\n[Peer]\nPublicKey = ${PUB1}\nEndpoint = host-without-port\n`, /Endpoint/],
    [`[Interface]\n[Peer]\nPublicKey = ${PUB1}\n[Peer]\nPublicKey = ${PUB1}\n`, /duplicate \[Peer\]/],
    [`[Interface]\nListenPort = 1\nListenPort = 2\n`, /set twice/],
    ['[Interface]\njust text\n', /expected "Key = Value"/],
    ['[Wat]\n', /unknown section/],
    ['', /no \[Interface\]/],
  ])('rejects %j', (text, message) => {
    expect(() => parseWgQuickConfig(text)).toThrow(ParseError);
    expect(() => parseWgQuickConfig(text)).toThrow(message);
  });

  it('never quotes a key in an error', () => {
    try {
      parseWgQuickConfig(`[Interface]\nPrivateKey = ${PRIV.slice(0, 40)}\n`);
      throw new Error('should throw');
    } catch (e) {
      expect(String(e)).not.toContain(PRIV.slice(0, 40));
    }
  });

  it('parses endpoints like wg(8)', () => {
    expect(parseWgEndpoint('203.0.113.1:51820')).toEqual({ host: '203.0.113.1', port: 51820, family: 4 });
    expect(parseWgEndpoint('[2001:db8::1]:51820')).toEqual({ host: '2001:db8::1', port: 51820, family: 6 });
    expect(parseWgEndpoint('vpn.example.net:443')).toEqual({ host: 'vpn.example.net', port: 443, family: 'name' });
    expect(parseWgEndpoint('[vpn.example.net]:443')).toBeUndefined();
    expect(parseWgEndpoint('203.0.113.1:0')).toBeUndefined();
    expect(parseWgEndpoint('203.0.113.1')).toBeUndefined();
  });

  it('derives the interface name like wg-quick', () => {
    expect(wgQuickInterfaceFromPath('/etc/wireguard/wg0.conf')).toBe('wg0');
    expect(wgQuickInterfaceFromPath('wtv-a.conf')).toBe('wtv-a');
    expect(wgQuickInterfaceFromPath('/etc/wireguard/this-name-is-too-long.conf')).toBeUndefined();
    expect(wgQuickInterfaceFromPath('/etc/wireguard/wg0.cfg')).toBeUndefined();
  });
});
