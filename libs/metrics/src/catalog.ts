/**
 * Every metric wgctl exports: its name, type, labels and meaning, in one place (the builder
 * reads it; the README's table was generated from it). The VM's peer metrics keep the names and
 * labels of prometheus_wireguard_exporter (MindFlavor), so dashboards and alerts written for it
 * (`time() - wireguard_latest_handshake_seconds > 300`) work unchanged.
 */

export type MetricType = 'counter' | 'gauge';

export interface MetricSpec {
  name: string;
  type: MetricType;
  labels: readonly string[];
  help: string;
}

const PEER_LABELS = ['interface', 'public_key', 'allowed_ips'] as const;

/** The liveness probe's states (vm-agent engine/liveness.ts), one series each: a state set. */
export const LIVENESS_STATES = ['unknown', 'alive', 'probing', 'dead'] as const;

export const METRICS = {
  // ---------------------------------------------------------------- VM (VmStatus), per peer
  sentBytes: { name: 'wireguard_sent_bytes_total', type: 'counter', labels: PEER_LABELS, help: 'Bytes sent to the peer (wg show transfer tx).' },
  receivedBytes: { name: 'wireguard_received_bytes_total', type: 'counter', labels: PEER_LABELS, help: 'Bytes received from the peer (wg show transfer rx).' },
  latestHandshake: {
    name: 'wireguard_latest_handshake_seconds',
    type: 'gauge',
    labels: PEER_LABELS,
    help: 'Unix time of the latest handshake with the peer, 0 = never.',
  },
  // ------------------------------------------------------------------- VM, the agent's own
  vmInterfaceUp: { name: 'wgctl_vm_interface_up', type: 'gauge', labels: ['interface'], help: 'The WireGuard interface exists and is up (1) or not (0).' },
  vmIpForward: { name: 'wgctl_vm_ip_forward', type: 'gauge', labels: [], help: 'IPv4 forwarding is on in the VM (1) or off (0).' },
  vmChainsPresent: {
    name: 'wgctl_vm_chains_present',
    type: 'gauge',
    labels: [],
    help: "The vm-agent's own FORWARD and NAT chains and their jumps are in place as the last Up wants them (1), or not / not up (0).",
  },
  vmUp: { name: 'wgctl_vm_up', type: 'gauge', labels: [], help: "The vm-agent's journal says Up completed: it forwards a Mac (1), or not (0)." },
  tunnelLiveness: {
    name: 'wgctl_tunnel_liveness',
    type: 'gauge',
    labels: ['state'],
    help: 'The tunnel liveness probe: 1 for the current state (unknown, alive, probing, dead), 0 for the others; absent when not watched.',
  },
  // ------------------------------------------------------------------------- both agents
  healthServing: { name: 'wgctl_health_serving', type: 'gauge', labels: ['agent'], help: "The agent's background health sample says SERVING (1) or not (0)." },
  healthSampledAt: {
    name: 'wgctl_health_sampled_timestamp_seconds',
    type: 'gauge',
    labels: ['agent'],
    help: 'Unix time of the background health sample the other metrics of the agent come from.',
  },
  selfHeals: { name: 'wgctl_self_heals_total', type: 'counter', labels: ['agent'], help: 'What the self-healing put back since the agent started.' },
  agentInfo: { name: 'wgctl_agent_info', type: 'gauge', labels: ['agent', 'version', 'driver'], help: "The agent's version and driver (always 1)." },
  agentReachable: {
    name: 'wgctl_agent_reachable',
    type: 'gauge',
    labels: ['agent'],
    help: 'wgctl metrics --textfile only: the controller got the agent\'s Status (1) or could not reach it (0).',
  },
  // ----------------------------------------------------------------------- Mac (MacStatus)
  killSwitchLoaded: { name: 'wgctl_killswitch_loaded', type: 'gauge', labels: [], help: "The kill switch's rules are loaded (PF anchor / nft table) (1) or not (0)." },
  killSwitchEnabled: { name: 'wgctl_killswitch_enabled', type: 'gauge', labels: [], help: 'The kill switch is enforced: PF enabled (darwin) / table hooked (linux) (1) or not (0).' },
  killSwitchReferenced: { name: 'wgctl_killswitch_referenced', type: 'gauge', labels: [], help: "PF's main ruleset references the kill switch's anchor (darwin) (1) or not (0)." },
  macUp: { name: 'wgctl_mac_up', type: 'gauge', labels: [], help: "The mac-agent's journal says Up completed (1), or not (0)." },
  routePresent: {
    name: 'wgctl_route_present',
    type: 'gauge',
    labels: ['destination', 'gateway', 'interface'],
    help: 'A route of the last Up (split routes, server pins, excluded ranges) is in the routing table (1) or missing (0).',
  },
  routesExpected: { name: 'wgctl_routes_expected', type: 'gauge', labels: [], help: 'Routes the last Up put in place (0 when down).' },
  routesPresent: { name: 'wgctl_routes_present', type: 'gauge', labels: [], help: 'Of those, the routes found in the routing table.' },
  dnsManaged: { name: 'wgctl_dns_managed', type: 'gauge', labels: [], help: 'The mac-agent manages DNS (set to the tunnel\'s resolvers) (1) or not (0).' },
  uplinkInfo: { name: 'wgctl_uplink_info', type: 'gauge', labels: ['interface', 'gateway'], help: "The host's uplink (default route), always 1; absent when there is none." },
  roams: { name: 'wgctl_roams_total', type: 'counter', labels: [], help: 'Roams handled (pins and kill switch moved to a new uplink or gateway) since the agent started.' },
  lastRoamDuration: {
    name: 'wgctl_last_roam_duration_seconds',
    type: 'gauge',
    labels: [],
    help: "The last roam since the agent started: from the first routing event to the pins and kill switch moved; absent before the first.",
  },
  lastRoamAt: { name: 'wgctl_last_roam_timestamp_seconds', type: 'gauge', labels: [], help: 'Unix time of the last roam (journal), 0 = never.' },
  portalWindowOpen: { name: 'wgctl_portal_window_open', type: 'gauge', labels: [], help: 'A captive-portal sign-in window (wgctl portal) is open in the kill switch (1) or not (0).' },
  allowLan: { name: 'wgctl_allow_lan', type: 'gauge', labels: [], help: 'The kill switch lets the LAN through (up --allow-lan) (1) or not (0).' },
} as const satisfies Record<string, MetricSpec>;

export type MetricKey = keyof typeof METRICS;
