/** verify through the CLI: both captures requested concurrently, the verdict decides the exit code. */
import * as grpc from '@grpc/grpc-js';
import type { Packet } from '@wgctl/proto';
import { type Lab, defaultVmDescription, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
});
afterEach(() => lab.cleanup());

const pkt = (p: Partial<Packet>): Packet => ({ interface: '', family: 'ip', protocol: 'udp', src: '', dst: '', srcPort: 0, dstPort: 0, line: '', srcMac: '', dstMac: '', ...p });
const wg = pkt({ interface: 'en0', src: '192.0.2.10', srcPort: 55555, dst: '203.0.113.5', dstPort: 51820 });
const probe = pkt({ interface: 'wg0', protocol: 'icmp', src: '10.64.0.2', dst: '10.64.0.1' });

describe('wgctl verify', () => {
  it('PASS (exit 0): asks the Mac to probe the VM\'s DNS through the tunnel while the VM captures', async () => {
    lab.agents.mac.capture = { interface: 'en0', packets: [wg], probeOk: true, probeDetail: '3/3', command: undefined, linkAddress: '', interfaceAddresses: [] };
    lab.agents.vm.capture = { interface: 'wg0', packets: [probe], probeOk: false, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] };
    const r = await cli(['--config', config, 'verify', '--duration', '2', '--count', '2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/verify: PASS \(probe 10\.64\.0\.1; uplink en0, tunnel wg0\)/);
    const captures = lab.agents.calls.filter((c) => c.rpc === 'Capture');
    expect(captures.map((c) => c.side)).toEqual(['vm', 'mac']);
    expect(captures[1]!.request).toMatchObject({ probeTarget: '10.64.0.1', probeCount: 2, durationMs: 2000 });
    expect((captures[0]!.request as { durationMs: number }).durationMs).toBeGreaterThan(2000);
  });

  it('FAIL (exit 1) lists what leaked; --json carries the packets', async () => {
    const dns = pkt({ interface: 'en0', src: '192.0.2.10', srcPort: 5353, dst: '192.0.2.1', dstPort: 53 });
    lab.agents.mac.capture = { interface: 'en0', packets: [wg, dns], probeOk: true, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] };
    lab.agents.vm.capture = { interface: 'wg0', packets: [probe], probeOk: false, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] };
    const text = await cli(['--config', config, 'verify', '--duration', '1.6', '--target', '10.64.0.1']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/verify: FAIL/);
    expect(text.stdout).toContain('    - UDP 192.0.2.10:5353 → 192.0.2.1:53: DNS outside the tunnel');

    const json = await cli(['--config', config, '--json', 'verify', '--duration', '1.6', '--target', '10.64.0.1']);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout);
    expect(doc).toMatchObject({ command: 'verify', pass: false, target: '10.64.0.1', leaks: [{ packet: { dstPort: 53 } }] });
  });

  it('PASS on a chatty LAN: names the uplink MAC, counts neighbours\' broadcasts apart and lists unsolicited inbound once per flow', async () => {
    const own = '3e:95:27:df:e4:20';
    const mdns = pkt({ interface: 'en0', srcMac: '02:00:5e:10:00:32', dstMac: '01:00:5e:00:00:fb', src: '192.0.2.50', srcPort: 5353, dst: '224.0.0.251', dstPort: 5353 });
    const knock = pkt({ interface: 'en0', srcMac: '02:00:5e:10:00:32', dstMac: own, src: '192.0.2.50', srcPort: 40000, dst: '192.0.2.10', dstPort: 9 });
    const link = { linkAddress: own, interfaceAddresses: ['192.0.2.10/25'] };
    lab.agents.mac.capture = { interface: 'en0', packets: [{ ...wg, srcMac: own, dstMac: '2e:a4:93:48:59:6a' }, mdns, knock, knock], probeOk: true, probeDetail: '3/3', command: undefined, ...link };
    lab.agents.vm.capture = { interface: 'wg0', packets: [probe], probeOk: false, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] };
    const r = await cli(['--config', config, 'verify', '--duration', '2', '--target', '10.64.0.1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  uplink MAC 3e:95:27:df:e4:20: 2 unsolicited inbound, 1 neighbours' broadcast/multicast packet(s) (not the Mac's: never a leak)\n");
    expect(r.stdout).toContain('  unsolicited inbound (reported, not a leak):\n    - UDP 192.0.2.50:40000 → 192.0.2.10:9: reached the uplink unsolicited (×2)\n');
  });

  it('a capture the agent does not implement yet is a clear failure (exit 1)', async () => {
    lab.agents.vm.capture = { grpcError: { code: grpc.status.UNIMPLEMENTED, details: 'Capture is not implemented' } };
    const r = await cli(['--config', config, 'verify', '--duration', '1.6']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/capture failed: vm-agent at 127\.0\.0\.1:\d+ does not implement Capture/);
  });

  it('a bad --target is exit 2 before any capture', async () => {
    const r = await cli(['--config', config, 'verify', '--target', 'example.com']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--target: expected an IPv4 or IPv6 address/);
    expect(lab.agents.calls).toEqual([]);
  });

  it.each([
    [['--duration', '30'], /--duration: at most 29 seconds/],
    [['--duration', '1', '--count', '20'], /--duration: 20 probe\(s\) need at least 5 seconds/],
  ])('refuses %j before any capture (exit 2)', async (flags, message) => {
    const r = await cli(['--config', config, 'verify', '--target', '10.64.0.1', ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(lab.agents.calls).toEqual([]);
  });

  it('never probes a built-in address: with no DNS anywhere it asks for --target (exit 2)', async () => {
    lab.agents.vm.describe = { ...defaultVmDescription(), dns: [] };
    const r = await cli(['--config', config, 'verify', '--duration', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--target: no default probe target/);
    expect(lab.agents.calls.filter((c) => c.rpc === 'Capture')).toEqual([]);
  });
});
