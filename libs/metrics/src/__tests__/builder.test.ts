import { buildMetricsRegistry } from '../builder';
import { METRICS } from '../catalog';
import { macStatus, SAMPLED_AT_MS, vmStatus } from '../testing/statuses';

/** The sample lines of an exposition (no # HELP / # TYPE). */
async function samples(sources: Parameters<typeof buildMetricsRegistry>[0]): Promise<string[]> {
  const text = await buildMetricsRegistry(sources).metrics();
  return text.split('\n').filter((line) => line && !line.startsWith('#'));
}

async function typeOf(name: string, sources: Parameters<typeof buildMetricsRegistry>[0]): Promise<string | undefined> {
  const text = await buildMetricsRegistry(sources).metrics();
  return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
}

const PEER_A = 'interface="wg0",public_key="PEERAPEERAPEERAPEERAPEERAPEERAPEERAPEERA0=",allowed_ips="0.0.0.0/0,::/0"';
const PEER_B = 'interface="wg0",public_key="PEERBPEERBPEERBPEERBPEERBPEERBPEERBPEERB0=",allowed_ips="198.51.100.0/24"';

describe('buildMetricsRegistry: vm-agent', () => {
  it('gives each peer the WireGuard exporter names and labels; a never-handshaked peer is 0', async () => {
    const lines = await samples({ vm: vmStatus() });
    expect(lines).toEqual(
      expect.arrayContaining([
        `wireguard_sent_bytes_total{${PEER_A}} 204800`,
        `wireguard_received_bytes_total{${PEER_A}} 1048576`,
        `wireguard_latest_handshake_seconds{${PEER_A}} 1764763188`,
        `wireguard_sent_bytes_total{${PEER_B}} 0`,
        `wireguard_received_bytes_total{${PEER_B}} 0`,
        `wireguard_latest_handshake_seconds{${PEER_B}} 0`,
      ]),
    );
    expect(await typeOf('wireguard_sent_bytes_total', { vm: vmStatus() })).toBe('counter');
    expect(await typeOf('wireguard_received_bytes_total', { vm: vmStatus() })).toBe('counter');
    expect(await typeOf('wireguard_latest_handshake_seconds', { vm: vmStatus() })).toBe('gauge');
  });

  it("reports the VM's own state, the liveness state set and the agent's health, heals and info", async () => {
    const lines = await samples({ vm: vmStatus() });
    expect(lines).toEqual(
      expect.arrayContaining([
        'wgctl_vm_interface_up{interface="wg0"} 1',
        'wgctl_vm_ip_forward 1',
        'wgctl_vm_chains_present 1',
        'wgctl_vm_up 1',
        'wgctl_tunnel_liveness{state="unknown"} 0',
        'wgctl_tunnel_liveness{state="alive"} 1',
        'wgctl_tunnel_liveness{state="probing"} 0',
        'wgctl_tunnel_liveness{state="dead"} 0',
        'wgctl_health_serving{agent="vm-agent"} 1',
        `wgctl_health_sampled_timestamp_seconds{agent="vm-agent"} ${SAMPLED_AT_MS / 1000}`,
        'wgctl_self_heals_total{agent="vm-agent"} 3',
        'wgctl_agent_info{agent="vm-agent",version="0.1.0",driver="nft"} 1',
      ]),
    );
    // Agents are scraped: Prometheus has `up`; reachability is the textfile's.
    expect(lines.filter((l) => l.startsWith('wgctl_agent_reachable'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('wgctl_kill'))).toEqual([]);
  });

  it('a missing own chain, a VM that is down, an unwatched tunnel', async () => {
    const vm = vmStatus();
    vm.checks = vm.checks.map((c) => (c.name === 'firewall-nat' ? { ...c, ok: false } : c.name === 'applied' ? { ...c, ok: false } : c));
    vm.liveness = undefined;
    vm.interfaceUp = false;
    const lines = await samples({ vm });
    expect(lines).toEqual(expect.arrayContaining(['wgctl_vm_chains_present 0', 'wgctl_vm_up 0', 'wgctl_vm_interface_up{interface="wg0"} 0']));
    expect(lines.filter((l) => l.startsWith('wgctl_tunnel_liveness'))).toEqual([]);
    // Down: no chain checks at all is not "present".
    const down = vmStatus();
    down.checks = [{ name: 'applied', ok: false, detail: 'Up has not been applied (no journal)', evidence: [] }];
    expect(await samples({ vm: down })).toContain('wgctl_vm_chains_present 0');
  });
});

describe('buildMetricsRegistry: mac-agent', () => {
  it('kill switch, routes, DNS, uplink, roams, portal window and LAN, health', async () => {
    const lines = await samples({ mac: macStatus() });
    expect(lines).toEqual(
      expect.arrayContaining([
        'wgctl_killswitch_loaded 1',
        'wgctl_killswitch_enabled 1',
        'wgctl_killswitch_referenced 0',
        'wgctl_mac_up 1',
        'wgctl_route_present{destination="0.0.0.0/1",gateway="192.0.2.3",interface="bridge100"} 1',
        'wgctl_route_present{destination="128.0.0.0/1",gateway="192.0.2.3",interface="bridge100"} 0',
        'wgctl_route_present{destination="203.0.113.5/32",gateway="192.0.2.1",interface="en0"} 1',
        'wgctl_routes_expected 3',
        'wgctl_routes_present 2',
        'wgctl_dns_managed 1',
        'wgctl_uplink_info{interface="en0",gateway="192.0.2.1"} 1',
        'wgctl_roams_total 2',
        'wgctl_last_roam_duration_seconds 0.34',
        'wgctl_last_roam_timestamp_seconds 1764763100',
        'wgctl_portal_window_open 0',
        'wgctl_allow_lan 1',
        'wgctl_health_serving{agent="mac-agent"} 0',
        `wgctl_health_sampled_timestamp_seconds{agent="mac-agent"} ${SAMPLED_AT_MS / 1000}`,
        'wgctl_self_heals_total{agent="mac-agent"} 1',
        'wgctl_agent_info{agent="mac-agent",version="0.1.0",driver="darwin"} 1',
      ]),
    );
    expect(await typeOf('wgctl_roams_total', { mac: macStatus() })).toBe('counter');
    expect(await typeOf('wgctl_self_heals_total', { mac: macStatus() })).toBe('counter');
    expect(lines.filter((l) => l.startsWith('wireguard_') || l.startsWith('wgctl_vm_'))).toEqual([]);
  });

  it('no uplink: no uplink_info; no roam since start: no duration; an open portal window', async () => {
    const mac = macStatus();
    mac.uplinkInterface = '';
    mac.gateway = '';
    mac.roams = 0;
    mac.lastRoamTookMs = '0';
    mac.portalWindow = { untilUnixMs: String(SAMPLED_AT_MS + 60_000), resolvers: ['192.0.2.1'], tcpPorts: [80, 443] };
    const lines = await samples({ mac });
    expect(lines.filter((l) => l.startsWith('wgctl_uplink_info') || l.startsWith('wgctl_last_roam_duration'))).toEqual([]);
    expect(lines).toEqual(expect.arrayContaining(['wgctl_roams_total 0', 'wgctl_portal_window_open 1']));
  });
});

describe('buildMetricsRegistry: textfile and start-up', () => {
  it('an unreachable agent is wgctl_agent_reachable 0 and nothing else of it', async () => {
    const lines = await samples({ vm: vmStatus(), reachable: { 'vm-agent': true, 'mac-agent': false } });
    expect(lines).toEqual(expect.arrayContaining(['wgctl_agent_reachable{agent="vm-agent"} 1', 'wgctl_agent_reachable{agent="mac-agent"} 0']));
    expect(lines.filter((l) => l.includes('mac-agent') && !l.startsWith('wgctl_agent_reachable'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('wgctl_killswitch') || l.startsWith('wgctl_route'))).toEqual([]);
  });

  it('before the first sample: only the agent info', async () => {
    const info = vmStatus().agent!;
    expect(await samples({ unsampled: [info] })).toEqual(['wgctl_agent_info{agent="vm-agent",version="0.1.0",driver="nft"} 1']);
  });

  it('every metric of the catalog appears with its type when both agents and reachability are given', async () => {
    const text = await buildMetricsRegistry({ vm: vmStatus(), mac: macStatus(), reachable: { 'vm-agent': true, 'mac-agent': true } }).metrics();
    for (const { name, type } of Object.values(METRICS)) expect(text).toContain(`# TYPE ${name} ${type}\n`);
  });
});
