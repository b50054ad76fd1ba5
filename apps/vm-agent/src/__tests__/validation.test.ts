import { InvalidRequestError } from '@wgctl/agent-kit';
import { normalizeMacSource, validateHandshakeTimeout, validateInterfaceName } from '../service/validation';
import { downArgvs, systemdMethodFor, upArgv, wgQuickTable } from '../host/wireguard';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedRunner } from '@wgctl/runner';
import { derivePublicKey, tunnelConfigFromText } from '../host/config';
import { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { ProcSysctl } from '../host/sysctl';

describe('normalizeMacSource', () => {
  it.each([
    ['198.51.100.2', '198.51.100.2/32'],
    [' 198.51.100.2 ', '198.51.100.2/32'],
    ['198.51.100.7/24', '198.51.100.0/24'],
    ['192.168.64.1/32', '192.168.64.1/32'],
    ['10.1.2.3/8', '10.0.0.0/8'],
  ])('%s → %s (as iptables prints it)', (input, canonical) => {
    expect(normalizeMacSource(input)).toBe(canonical);
  });

  it.each([
    ['', /mac_source: required/],
    ['nope', /mac_source: "nope" is not an IPv4 address or CIDR/],
    ['2001:db8::1/128', /mac_source: .* is IPv6/],
    ['0.0.0.0/0', /every source/],
    ['198.51.100.2/33', /not an IPv4 address or CIDR/],
  ])('refuses %j naming the field', (input, message) => {
    expect(() => normalizeMacSource(input)).toThrow(InvalidRequestError);
    expect(() => normalizeMacSource(input)).toThrow(message);
  });

  it('checks the other fields', () => {
    expect(() => validateInterfaceName('lan_interface', 'eth0; rm -rf /')).toThrow(/^lan_interface: /);
    expect(() => validateInterfaceName('lan_interface', 'enp0s1')).not.toThrow();
    expect(() => validateHandshakeTimeout(300_001)).toThrow(/^handshake_timeout_ms: /);
  });
});

describe('wg-quick invocation', () => {
  it('uses wg-quick@ when the config is where that unit looks, a transient unit otherwise', () => {
    expect(systemdMethodFor('/etc/wireguard/wg0.conf', 'wg0')).toBe('systemd-unit');
    expect(systemdMethodFor('/srv/wg/wg0.conf', 'wg0')).toBe('systemd-run');
    expect(upArgv('systemd-unit', '/etc/wireguard/wg0.conf', 'wg0')).toEqual(['systemctl', 'start', 'wg-quick@wg0.service']);
    expect(upArgv('systemd-run', '/srv/wg/wg0.conf', 'wg0')).toEqual([
      'systemd-run',
      '--unit=wgctl-wg-quick-wg0',
      '--service-type=oneshot',
      '--property=RemainAfterExit=yes',
      '--collect',
      'wg-quick',
      'up',
      '/srv/wg/wg0.conf',
    ]);
    expect(downArgvs('systemd-run', '/srv/wg/wg0.conf', 'wg0')).toEqual([
      ['wg-quick', 'down', '/srv/wg/wg0.conf'],
      ['systemctl', 'stop', 'wgctl-wg-quick-wg0.service'],
    ]);
    expect(upArgv('wg-quick', '/tmp/x/wtv0.conf', 'wtv0')).toEqual(['wg-quick', 'up', '/tmp/x/wtv0.conf']);
  });

  it("knows wg-quick's policy routing table", () => {
    expect(wgQuickTable(undefined)).toBe(51820);
    expect(wgQuickTable('auto')).toBe(51820);
    expect(wgQuickTable('1234')).toBe(1234);
    expect(wgQuickTable('off')).toBeUndefined();
  });
});

describe('tunnel config', () => {
  // RFC 7748 section 6.1 test vector (Alice), in WireGuard's base64.
  const alicePrivate = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  const alicePublic = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');

  it('derives the public key (X25519) from the private key', () => {
    expect(derivePublicKey(alicePrivate)).toBe(alicePublic);
  });

  it('takes the interface from the file name and the SNAT address from the first IPv4 Address', () => {
    const config = tunnelConfigFromText(
      '/etc/wireguard/wg0.conf',
      `[Interface]\nPrivateKey = ${alicePrivate}\nAddress = fd00::2/64, 192.0.2.2/24\n[Peer]\nPublicKey = ${alicePublic}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\n`,
    );
    expect(config).toMatchObject({ interface: 'wg0', tunnelIPv4: '192.0.2.2', publicKey: alicePublic, addresses: ['fd00::2/64', '192.0.2.2/24'] });
    expect(JSON.stringify(config)).not.toContain(alicePrivate);
    expect(() => tunnelConfigFromText('/etc/wireguard/wg0.cfg', '[Interface]\n')).toThrow(/named <interface>\.conf/);
    expect(() => tunnelConfigFromText('/etc/wireguard/wg0.conf', '[Interface]\nMTU = x\n')).toThrow(/^\/etc\/wireguard\/wg0\.conf: wg-quick config: line 2: MTU/);
  });
});

describe('Describe', () => {
  it('returns addresses, resolved endpoints, peers and the public key, never a private or preshared key, without running anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wtv-describe-'));
    try {
      const priv = Buffer.alloc(32, 3).toString('base64');
      const psk = Buffer.alloc(32, 4).toString('base64');
      const server = derivePublicKey(Buffer.alloc(32, 5).toString('base64'));
      const other = derivePublicKey(Buffer.alloc(32, 6).toString('base64'));
      const configPath = join(dir, 'wg0.conf');
      writeFileSync(
        configPath,
        [
          '[Interface]',
          `PrivateKey = ${priv}`,
          'Address = 192.0.2.2/24, 2001:db8:9::2/64',
          'DNS = 192.0.2.53',
          'MTU = 1380',
          '[Peer]',
          `PublicKey = ${server}`,
          `PresharedKey = ${psk}`,
          'Endpoint = vpn.example.net:51820',
          'AllowedIPs = 0.0.0.0/0, ::/0',
          'PersistentKeepalive = 25',
          '[Peer]',
          `PublicKey = ${other}`,
          'Endpoint = gone.example.net:4500',
          'AllowedIPs = 198.51.100.0/24',
          '',
        ].join('\n'),
        { mode: 0o600 }, // the agent refuses a config others can read
      );
      const runner = new ScriptedRunner([]);
      const engine = new VmEngine({
        configPath,
        runner,
        sysctl: new ProcSysctl(join(dir, 'sys')),
        journal: new JournalStore(dir),
        resolver: async (host) => {
          if (host === 'vpn.example.net') return '203.0.113.1';
          throw new Error('ENOTFOUND');
        },
      });
      const description = await engine.describe();
      runner.assertDone();
      expect(description).toMatchObject({
        interface: 'wg0',
        tunnelAddresses: ['192.0.2.2/24', '2001:db8:9::2/64'],
        endpoints: [
          { host: 'vpn.example.net', ip: '203.0.113.1', port: 51820 },
          { host: 'gone.example.net', ip: '', port: 4500 },
        ],
        dns: ['192.0.2.53'],
        mtu: 1380,
        configPath,
        publicKey: derivePublicKey(priv),
      });
      expect(description.peers.map((p) => [p.publicKey, p.allowedIps, p.persistentKeepalive])).toEqual([
        [server, ['0.0.0.0/0', '::/0'], 25],
        [other, ['198.51.100.0/24'], 0],
      ]);
      const text = JSON.stringify(description);
      expect(text).not.toContain(priv);
      expect(text).not.toContain(psk);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
