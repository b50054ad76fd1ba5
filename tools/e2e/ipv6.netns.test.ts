/**
 * The Mac's IPv6 end to end, through `wgctl` only, with the built agents:
 *   a. `ipv6: auto` with vm.address6 set: after up, an IPv6 HTTP request from the Mac reaches
 *      the web host through the tunnel (the web host sees the WireGuard server's IPv6; inside
 *      the tunnel it comes from the VM's IPv6 tunnel address), the Mac's uplink carries no IPv6
 *      but link-scope ICMPv6 and nothing but WireGuard UDP; down restores every route, rule,
 *      firewall table (ip6tables included), sysctl (IPv6 ones included) and resolv.conf;
 *   b. `ipv6: block`: IPv6 stays blocked on the Mac (nothing on the uplink), IPv4 still tunnels.
 * One lab for the file; each test starts and ends with the tunnel down.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { TcpdumpPacket } from '@wgctl/parsers';
import { labExec, labHttpGet, withChattyNeighbour, type Lab } from '../lab/src';
import { diffSnapshots, formatPacket, snapshotNetwork, startCapture, type NetworkSnapshot } from './observe';
import { createStack, describeRun, type Stack, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wge6';

function isLinkScopeIcmp6(p: TcpdumpPacket): boolean {
  const linkScope = (address: string) => /^(fe80:|ff02:)/i.test(address);
  return p.family === 'ip6' && p.protocol === 'icmp6' && (linkScope(p.src) || p.src === '::') && linkScope(p.dst);
}

suite('end to end: the Mac\'s IPv6 (netns)', () => {
  let stack: Stack;
  let lab: Lab;

  const isWireGuard = (p: TcpdumpPacket) => {
    const server = lab.srv.wan.ipv4;
    const port = lab.srv.wireguard.listenPort;
    return p.protocol === 'udp' && ((p.dst === server && p.dstPort === port) || (p.src === server && p.srcPort === port));
  };
  /** Anything on the uplink but WireGuard, ARP and IPv6's link-scope ICMP is a leak. */
  const offUplink = (packets: TcpdumpPacket[]) => packets.filter((p) => !isWireGuard(p) && p.family !== 'arp' && !isLinkScopeIcmp6(p)).map(formatPacket);

  /** snapshotNetwork plus every IPv6 interface setting (forwarding, accept_ra, … per interface). */
  async function snapshot(): Promise<NetworkSnapshot> {
    const base = await snapshotNetwork(lab);
    for (const role of ['mac', 'vm']) {
      const r = await labExec(lab, role, ['sysctl', '-a', '--pattern', '^net\\.ipv6\\.conf\\.'], { readOnly: true, allowFailure: true });
      base[`${role}: ipv6 sysctls`] = r.stdout.split('\n').filter((l) => !/stable_secret/.test(l)).sort().join('\n');
    }
    return base;
  }

  function setIpv6Mode(mode: 'auto' | 'block'): void {
    const config = JSON.parse(readFileSync(stack.configFile, 'utf8'));
    writeFileSync(stack.configFile, `${JSON.stringify({ ...config, ipv6: mode }, null, 2)}\n`, { mode: 0o600 });
  }

  beforeAll(async () => {
    stack = await createStack(PREFIX, {
      vmAgentArgs: ['--health-interval', '1000'],
      initArgs: ['--ipv6', 'auto'],
    });
    lab = stack.lab;
    // The VM's IPv6 on the vnic, as a user would add it to the config (init --vm-address6).
    const config = JSON.parse(readFileSync(stack.configFile, 'utf8'));
    writeFileSync(stack.configFile, `${JSON.stringify({ ...config, vm: { ...config.vm, address6: lab.vm.eth.ipv6 } }, null, 2)}\n`, { mode: 0o600 });
  }, 60_000);

  afterEach(async () => {
    if (!stack) return;
    const down = await stack.wgctl(['down']);
    if (down.exitCode !== 0) throw new Error(`cleanup: wgctl down failed\n${describeRun(down)}`);
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
  }, 60_000);

  it('a. auto + vm.address6: IPv6 goes through the tunnel (the web host sees the server\'s IPv6), none on the uplink; down restores everything', async () => {
    setIpv6Mode('auto');
    // Control: before up the Mac's IPv6 goes straight out, from its own address (a leak the capture could see).
    const before = await labHttpGet(lab, 'mac', lab.web.url6);
    expect(before.ok && JSON.parse(before.body).remote).toBe(lab.cafes.cafe1.client.ipv6);
    const initial = await snapshot();

    const upRun = await stack.wgctl(['up']);
    expect({ exit: upRun.exitCode, out: describeRun(upRun) }).toMatchObject({ exit: 0 });
    expect(upRun.stdout).toContain(`IPv6: routed through the tunnel (Mac ${lab.mac.vnic.ipv6} via ${lab.vm.eth.ipv6})`);
    // Both agents report it: the Mac routes IPv6 via the VM, the VM forwards the Mac's IPv6.
    const status = await stack.wgctl(['--json', 'status']);
    const report = JSON.parse(status.stdout);
    expect({ exit: status.exitCode, problems: report.problems }).toEqual({ exit: 0, problems: [] });
    expect(report.mac).toMatchObject({ ipv6: 'route', vmAddress6: lab.vm.eth.ipv6 });
    expect(report.vm.macSource6).toBe(`${lab.mac.vnic.ipv6}/128`);
    // The user's own leak test, over IPv6: an ICMPv6 probe leaves the tunnel from its IPv6 address
    // (on a LAN where a neighbour chatters: mDNS, SSDP, MLD, RS — not the Mac's, not leaks).
    const verify = await withChattyNeighbour(lab, () => stack.wgctl(['verify', '--target', lab.web.wan.ipv6!, '--duration', '2']));
    expect({ exit: verify.exitCode, out: verify.exitCode === 0 ? '' : describeRun(verify) }).toEqual({ exit: 0, out: '' });
    expect(verify.stdout).toContain('PASS');

    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const tunnel = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    const http6 = await labHttpGet(lab, 'mac', lab.web.url6);
    const http4 = await labHttpGet(lab, 'mac', lab.web.url4);
    const [onUplink, inTunnel] = await Promise.all([uplink.stop(), tunnel.stop()]);

    expect(http6.ok && JSON.parse(http6.body).remote).toBe(lab.srv.wan.ipv6); // the server's NAT66
    expect(http4.ok && JSON.parse(http4.body).remote).toBe(lab.srv.wan.ipv4);
    expect(offUplink(onUplink)).toEqual([]);
    expect(onUplink.filter((p) => p.family === 'ip6' && !isLinkScopeIcmp6(p)).map(formatPacket)).toEqual([]);
    expect(onUplink.filter(isWireGuard).length).toBeGreaterThan(0);
    // In the tunnel, the Mac's IPv6 request comes from the VM's IPv6 tunnel address (the VM's NAT66).
    const toWeb6 = inTunnel.filter((p) => p.family === 'ip6' && p.protocol === 'tcp' && p.dst === lab.web.wan.ipv6);
    expect(toWeb6.length).toBeGreaterThan(0);
    expect([...new Set(toWeb6.map((p) => p.src))]).toEqual([lab.vm.wireguard.address6]);
    expect(inTunnel.filter((p) => p.src === lab.mac.vnic.ipv6)).toEqual([]);

    const down = await stack.wgctl(['down']);
    expect(down.exitCode).toBe(0);
    expect(diffSnapshots(initial, await snapshot())).toEqual([]);
    // And the Mac's IPv6 is direct again.
    const after = await labHttpGet(lab, 'mac', lab.web.url6);
    expect(after.ok && JSON.parse(after.body).remote).toBe(lab.cafes.cafe1.client.ipv6);
  });

  it('b. block: IPv6 stays blocked on the Mac even with vm.address6 set; nothing on the uplink; IPv4 still tunnels', async () => {
    setIpv6Mode('block');
    const upRun = await stack.wgctl(['up']);
    expect({ exit: upRun.exitCode, out: describeRun(upRun) }).toMatchObject({ exit: 0 });
    expect(upRun.stdout).toContain('IPv6: blocked on the Mac (ipv6: block)');
    const report = JSON.parse((await stack.wgctl(['--json', 'status'])).stdout);
    expect({ mac: report.mac.ipv6, vm: report.vm.macSource6 }).toEqual({ mac: 'block', vm: null });

    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const tunnel = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    const http6 = await labHttpGet(lab, 'mac', lab.web.url6, { timeoutMs: 1500 });
    const http4 = await labHttpGet(lab, 'mac', lab.web.url4);
    const [onUplink, inTunnel] = await Promise.all([uplink.stop(), tunnel.stop()]);

    expect(http6.ok).toBe(false);
    expect(http4.ok && JSON.parse(http4.body).remote).toBe(lab.srv.wan.ipv4);
    expect(offUplink(onUplink)).toEqual([]);
    expect(inTunnel.filter((p) => p.family === 'ip6' && p.dst === lab.web.wan.ipv6).map(formatPacket)).toEqual([]);
  });

  it('c. the mode changed between two ups (no down): routed, then blocked, then routed again; down still restores everything', async () => {
    const initial = await snapshot();
    const sees6 = async () => {
      const r = await labHttpGet(lab, 'mac', lab.web.url6, { timeoutMs: 1500 });
      return r.ok ? JSON.parse(r.body).remote : 'no answer';
    };
    const ipv6Status = async () => {
      const report = JSON.parse((await stack.wgctl(['--json', 'status'])).stdout);
      return { mac: report.mac.ipv6, vm: report.vm.macSource6, problems: report.problems };
    };
    for (const [mode, expected] of [
      ['auto', { sees: lab.srv.wan.ipv6, mac: 'route', vm: `${lab.mac.vnic.ipv6}/128` }],
      ['block', { sees: 'no answer', mac: 'block', vm: null }],
      ['auto', { sees: lab.srv.wan.ipv6, mac: 'route', vm: `${lab.mac.vnic.ipv6}/128` }],
    ] as const) {
      setIpv6Mode(mode);
      const upRun = await stack.wgctl(['up']);
      expect({ mode, exit: upRun.exitCode, out: upRun.exitCode === 0 ? '' : describeRun(upRun) }).toEqual({ mode, exit: 0, out: '' });
      expect({ mode, sees: await sees6(), ...(await ipv6Status()) }).toEqual({ mode, sees: expected.sees, mac: expected.mac, vm: expected.vm, problems: [] });
    }
    const down = await stack.wgctl(['down']);
    expect(down.exitCode).toBe(0);
    expect(diffSnapshots(initial, await snapshot())).toEqual([]);
  });
});
