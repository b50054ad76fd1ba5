/**
 * The agents' Status messages as Prometheus metrics (names and meanings: ./catalog.ts). Pure:
 * statuses in, a prom-client registry out — the agents' /metrics build one per scrape from the
 * background sample, `wgctl metrics --textfile` from the Status calls it made. A metric is
 * created at its first value: what a source does not say (an unreachable agent, a liveness
 * probe not watched) is absent, not 0.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { HealthState, type AgentInfo, type MacStatus, type VmPeerStatus, type VmStatus } from '@wgctl/proto';
import { LIVENESS_STATES, METRICS, type MetricKey } from './catalog';

export type AgentName = 'vm-agent' | 'mac-agent';

export interface MetricsSources {
  vm?: VmStatus;
  mac?: MacStatus;
  /** `wgctl metrics --textfile`: whether the controller got each agent's Status (wgctl_agent_reachable). */
  reachable?: Partial<Record<AgentName, boolean>>;
  /** Agents before their first sample: only wgctl_agent_info (known without reading the host). */
  unsampled?: AgentInfo[];
}

type Labels = Record<string, string>;

/** A registry filled from the catalog: each metric created at its first value. */
class RegistryWriter {
  readonly registry = new Registry();
  private readonly metrics = new Map<MetricKey, Gauge | Counter>();

  set(key: MetricKey, value: number, labels: Labels = {}): void {
    const metric = this.metric(key);
    // int64/uint64 travel as decimal strings; anything unreadable is 0, never NaN in the output.
    const finite = Number.isFinite(value) && value >= 0 ? value : 0;
    if (metric instanceof Counter) metric.inc(labels, finite);
    else metric.set(labels, finite);
  }

  private metric(key: MetricKey): Gauge | Counter {
    let metric = this.metrics.get(key);
    if (!metric) {
      const { name, help, labels, type } = METRICS[key];
      const config = { name, help, labelNames: [...labels], registers: [this.registry] };
      metric = type === 'counter' ? new Counter(config) : new Gauge(config);
      this.metrics.set(key, metric);
    }
    return metric;
  }
}

const flag = (value: boolean | undefined): number => (value ? 1 : 0);
const seconds = (unixMs: string | undefined): number => Number(unixMs ?? 0) / 1000;

function writeAgentCommon(out: RegistryWriter, agent: AgentName, status: VmStatus | MacStatus): void {
  out.set('healthServing', flag(status.health?.state === HealthState.HEALTH_STATE_SERVING), { agent });
  out.set('healthSampledAt', seconds(status.health?.sampledAtMs), { agent });
  // Absent on a vm-agent that does not heal (--heal-check-interval 0).
  if (status.selfHeal) out.set('selfHeals', status.selfHeal.heals, { agent });
  writeAgentInfo(out, agent, status.agent);
}

function writeAgentInfo(out: RegistryWriter, agent: AgentName, info: AgentInfo | undefined): void {
  out.set('agentInfo', 1, { agent, version: info?.version ?? '', driver: info?.driver ?? '' });
}

/** The labels prometheus_wireguard_exporter gives a peer (allowed IPs joined with ","). */
function peerLabels(iface: string, peer: VmPeerStatus): Labels {
  return { interface: iface, public_key: peer.publicKey, allowed_ips: peer.allowedIps.join(',') };
}

/** The agent's own FORWARD/NAT chains (checks firewall-<table>, firewall6-<table>; `firewall` when unreadable) all in place. */
function chainsPresent(vm: VmStatus): boolean {
  const chains = vm.checks.filter((c) => /^firewall6?(-|$)/.test(c.name));
  return chains.length > 0 && chains.every((c) => c.ok);
}

function writeVm(out: RegistryWriter, vm: VmStatus): void {
  for (const peer of vm.peers) {
    const labels = peerLabels(vm.interface, peer);
    out.set('sentBytes', Number(peer.txBytes), labels);
    out.set('receivedBytes', Number(peer.rxBytes), labels);
    out.set('latestHandshake', Number(peer.latestHandshakeUnix), labels);
  }
  out.set('vmInterfaceUp', flag(vm.interfaceUp), { interface: vm.interface });
  out.set('vmIpForward', flag(vm.ipForward));
  out.set('vmChainsPresent', flag(chainsPresent(vm)));
  // The sample's `applied` check: the journal says Up completed.
  out.set('vmUp', flag(vm.checks.some((c) => c.name === 'applied' && c.ok)));
  if (vm.liveness) {
    for (const state of LIVENESS_STATES) out.set('tunnelLiveness', flag(vm.liveness.state === state), { state });
  }
  writeAgentCommon(out, 'vm-agent', vm);
}

function writeMac(out: RegistryWriter, mac: MacStatus): void {
  out.set('killSwitchLoaded', flag(mac.killSwitch?.loaded));
  out.set('killSwitchEnabled', flag(mac.killSwitch?.enabled));
  out.set('killSwitchReferenced', flag(mac.killSwitch?.referenced));
  out.set('macUp', flag(mac.up));
  for (const route of mac.routes) {
    out.set('routePresent', flag(route.present), { destination: route.destination, gateway: route.gateway, interface: route.interface });
  }
  out.set('routesExpected', mac.routes.length);
  out.set('routesPresent', mac.routes.filter((r) => r.present).length);
  out.set('dnsManaged', flag(mac.dns?.managed));
  if (mac.uplinkInterface) out.set('uplinkInfo', 1, { interface: mac.uplinkInterface, gateway: mac.gateway });
  out.set('roams', mac.roams);
  if (mac.roams > 0) out.set('lastRoamDuration', Number(mac.lastRoamTookMs) / 1000);
  out.set('lastRoamAt', seconds(mac.lastRoamUnixMs));
  out.set('portalWindowOpen', flag(mac.portalWindow !== undefined));
  out.set('allowLan', flag(mac.allowLan));
  writeAgentCommon(out, 'mac-agent', mac);
}

/** A fresh registry with the metrics of the given sources (see MetricsSources). */
export function buildMetricsRegistry(sources: MetricsSources): Registry {
  const out = new RegistryWriter();
  if (sources.vm) writeVm(out, sources.vm);
  if (sources.mac) writeMac(out, sources.mac);
  for (const info of sources.unsampled ?? []) writeAgentInfo(out, info.agent === 'mac-agent' ? 'mac-agent' : 'vm-agent', info);
  for (const [agent, reachable] of Object.entries(sources.reachable ?? {})) {
    if (reachable !== undefined) out.set('agentReachable', flag(reachable), { agent });
  }
  return out.registry;
}
