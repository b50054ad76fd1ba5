/**
 * One sample of the live system, read-only (the health sampler calls it in the background):
 *   applied → config → interface-up → handshake → liveness (once watched) → ip-forward → firewall-* [→ firewall6-*, ip6-forward]
 * Each check that fails is a reason for NOT_SERVING; advisory checks (certificate expiry) are
 * shown without deciding health.
 */
import type { StatusCheck } from '@wgctl/agent-kit';
import { wgHandshakeAgeSeconds, type IptablesSaveTable, type WgDumpInterface } from '@wgctl/parsers';
import { readTogether, type Runner } from '@wgctl/runner';
import { loadTunnelConfig, type TunnelConfig } from '../../host/config';
import { desiredRules, detectBackend, ip6Tools, ownChainsAgainst, readRuleset, type ForwardingPlan, type IptablesTools } from '../../host/firewall';
import { IP_FORWARD, IPV6_FORWARDING } from '../../host/sysctl';
import { linkState, wgShowDump } from '../../host/wireguard';
import type { JournalRecord } from '../journal';
import type { LivenessReport } from './liveness';
import { handshakeThresholdS, type EngineScope } from './context';

/** A peer as `wg show dump` shows it. */
export interface PeerStatus {
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
  /** 0: never. */
  latestHandshakeUnix: number;
  /** -1: never. */
  handshakeAgeS: number;
  rxBytes: string;
  txBytes: string;
  persistentKeepalive: number;
}

/** What the live system looks like (Status, without the health verdict: see VmSample). */
export interface VmStatusReport {
  interface: string;
  interfaceUp: boolean;
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
  ipForward: boolean;
  /** nft | legacy; '' before it is known. */
  iptablesBackend: string;
  checks: StatusCheck[];
  /** From the journal, when up. */
  macSource: string;
  macSource6: string;
  tunnelAddresses: string[];
  /** Replies through the tunnel (liveness.ts); undefined: not watched. */
  liveness: LivenessReport | undefined;
}

/** What one sample of the live system says (cached by the health sampler). */
export interface VmSample {
  status: VmStatusReport;
  serving: boolean;
  reasons: string[];
  sampledAtMs: number;
}

/** One sample in the making: its checks, in the order they are made. */
class Sampling {
  readonly runner: Runner;
  readonly sampledAtMs: number;
  readonly checks: StatusCheck[] = [];

  constructor(readonly engine: EngineScope) {
    this.runner = engine.options.runner;
    this.sampledAtMs = engine.now();
  }

  check(name: string, ok: boolean, detail: string, evidence: string[] = []): void {
    this.checks.push({ name, ok, detail, evidence });
  }
}

export async function sample(engine: EngineScope): Promise<VmSample> {
  const s = new Sampling(engine);
  const record = await journalCheck(s);
  const config = await configCheck(s);
  const ifname = record?.interface || config?.interface || '';
  const { interfaceUp, dump } = await interfaceCheck(s, ifname);
  if (dump) handshakeCheck(s, dump);
  const liveness = livenessCheck(s, ifname);
  const ipForward = await ipForwardCheck(s);
  const tools = await firewallChecks(s, record);

  const reasons = s.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  if (!s.checks.some((c) => c.name === 'handshake')) reasons.push('handshake: no WireGuard interface to read');
  // Advisory checks (certificate expiry): shown in Status, without turning health red.
  s.checks.push(...(engine.options.advisoryChecks?.() ?? []));
  const status: VmStatusReport = {
    interface: ifname,
    interfaceUp,
    publicKey: dump?.publicKey ?? config?.publicKey ?? '',
    listenPort: dump?.listenPort ?? 0,
    peers: peerStatuses(dump, s.sampledAtMs),
    ipForward,
    iptablesBackend: tools?.kind ?? '',
    checks: s.checks,
    macSource: record?.phase === 'up' ? record.macSource : '',
    macSource6: record?.phase === 'up' ? (record.v6?.macSource ?? '') : '',
    tunnelAddresses: config?.addresses ?? [],
    liveness,
  };
  return { status, serving: reasons.length === 0, reasons, sampledAtMs: s.sampledAtMs };
}

async function journalCheck(s: Sampling): Promise<JournalRecord | null> {
  try {
    const record = await s.engine.options.journal.read();
    s.check('applied', record?.phase === 'up', record ? `journal phase ${record.phase}` : 'Up has not been applied (no journal)');
    return record;
  } catch (e) {
    s.check('applied', false, (e as Error).message);
    return null;
  }
}

async function configCheck(s: Sampling): Promise<TunnelConfig | null> {
  try {
    return await loadTunnelConfig(s.engine.options.configPath);
  } catch (e) {
    s.check('config', false, (e as Error).message);
    return null;
  }
}

async function interfaceCheck(s: Sampling, ifname: string): Promise<{ interfaceUp: boolean; dump: WgDumpInterface | null }> {
  let interfaceUp = false;
  let dump: WgDumpInterface | null = null;
  if (!ifname) return { interfaceUp, dump };
  try {
    const link = await linkState(s.runner, ifname);
    interfaceUp = link.up;
    s.check('interface-up', link.up, link.exists ? `${ifname} flags ${link.flags.join(',')}` : `${ifname} does not exist`, link.addresses);
    if (link.exists) dump = await wgShowDump(s.runner, ifname);
  } catch (e) {
    s.check('interface-up', false, `${ifname}: ${(e as Error).message}`);
  }
  return { interfaceUp, dump };
}

function peerStatuses(dump: WgDumpInterface | null, sampledAtMs: number): PeerStatus[] {
  return (dump?.peers ?? []).map((p) => ({
    publicKey: p.publicKey,
    endpoint: p.endpointText ?? '',
    allowedIps: p.allowedIps,
    latestHandshakeUnix: p.latestHandshake,
    handshakeAgeS: wgHandshakeAgeSeconds(p.latestHandshake, sampledAtMs),
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    persistentKeepalive: p.persistentKeepalive,
  }));
}

/** The freshest handshake of a peer with an endpoint, against the threshold. */
function handshakeCheck(s: Sampling, dump: WgDumpInterface): void {
  const threshold = handshakeThresholdS(s.engine);
  const ages = dump.peers
    .filter((p) => p.endpoint)
    .map((p) => wgHandshakeAgeSeconds(p.latestHandshake, s.sampledAtMs))
    .filter((a) => a >= 0);
  const freshest = ages.length ? Math.min(...ages) : -1;
  s.check(
    'handshake',
    freshest >= 0 && freshest <= threshold,
    freshest < 0 ? 'no handshake yet' : `latest handshake ${freshest} s ago (threshold ${threshold} s)`,
  );
}

/**
 * `sample` with the liveness monitor's report as it is now, for Status and metrics between two
 * samples. The monitor's state moves every few seconds on an idle tunnel (a probe sent, its
 * reply), and a whole sample for each move — 4 processes — was most of the agent's idle CPU;
 * only a move into or out of dead changes health, and that is sampled at once (tunnel-watch.ts).
 * So the report is taken only while its verdict is the sample's; until the sample that follows
 * such a move, the sample stands as it is.
 */
export function withLivenessNow(sample: VmSample, report: LivenessReport | undefined): VmSample {
  const { status } = sample;
  if (!report || !status.interface || report.interface !== status.interface) return sample;
  const sampled = status.checks.find((c) => c.name === 'liveness');
  const ok = report.state !== 'dead';
  if ((sampled?.ok ?? true) !== ok) return sample;
  const now: StatusCheck = { name: 'liveness', ok, detail: report.detail, evidence: [] };
  // Where sample() puts it (after the handshake, before ip-forward) when the sample had none yet.
  const at = sampled ? status.checks.indexOf(sampled) : status.checks.findIndex((c) => c.name === 'ip-forward');
  const checks = [...status.checks];
  if (sampled) checks[at] = now;
  else checks.splice(at < 0 ? checks.length : at, 0, now);
  return { ...sample, status: { ...status, checks, liveness: report } };
}

/** The liveness monitor's verdict on this interface: NOT_SERVING once nothing comes back after a probe. */
function livenessCheck(s: Sampling, ifname: string): LivenessReport | undefined {
  const monitor = s.engine.liveness;
  if (!monitor?.started) return undefined;
  const report = monitor.report();
  if (ifname && report.interface === ifname) s.check('liveness', report.state !== 'dead', report.detail);
  return report;
}

async function ipForwardCheck(s: Sampling): Promise<boolean> {
  try {
    const value = await s.engine.options.sysctl.read(IP_FORWARD, s.runner);
    s.check('ip-forward', value === '1', `${IP_FORWARD}=${value}`);
    return value === '1';
  } catch (e) {
    s.check('ip-forward', false, (e as Error).message);
    return false;
  }
}

/** Own chains against what the journaled Up wants (both families), and IPv6 forwarding. Returns the backend, once known. */
async function firewallChecks(s: Sampling, record: JournalRecord | null): Promise<IptablesTools | undefined> {
  let tools = record?.backend ?? s.engine.backend;
  try {
    if (!tools) tools = (await detectBackend(s.runner)).tools;
    s.engine.backend = tools;
    if (record && record.macSource) {
      const v6 = record.v6;
      // Both families and the IPv6 forwarding switch read side by side.
      const [tables, tables6, forwarding] = await readTogether([
        readRuleset(s.runner, tools),
        v6 ? readRuleset(s.runner, ip6Tools(tools)) : undefined,
        v6 ? s.engine.options.sysctl.read(IPV6_FORWARDING, s.runner) : undefined,
      ]);
      const plan = { macSource: record.macSource, lanInterface: record.lanInterface, wgInterface: record.interface, tunnelAddress: record.tunnelAddress };
      chainChecks(s, '', tables, plan);
      if (v6 && tables6) {
        chainChecks(s, '6', tables6, { ...plan, macSource: v6.macSource, tunnelAddress: v6.tunnelAddress });
        s.check('ip6-forward', forwarding === '1', `${IPV6_FORWARDING}=${forwarding}`);
      }
    }
  } catch (e) {
    s.check('firewall', false, (e as Error).message);
  }
  return tools;
}

function chainChecks(s: Sampling, family: '' | '6', found: IptablesSaveTable[], plan: ForwardingPlan): void {
  const label = family ? 'ip6 ' : '';
  for (const { state, inPlace } of ownChainsAgainst(found, desiredRules(plan, family ? 6 : 4))) {
    const { own } = state;
    s.check(
      `firewall${family}-${own.table}`,
      inPlace,
      inPlace ? `${label}${own.chain} in place (${own.purpose})` : `${label}${own.chain}: ${state.chainExists ? `${state.rules.length} rules` : 'missing'}, ${state.jumps} jump(s)`,
      state.rules.map((r) => `-A ${own.chain} ${r.join(' ')}`),
    );
  }
}
