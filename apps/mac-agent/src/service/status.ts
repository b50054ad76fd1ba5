/**
 * Status: the live state read back (uplink, kill switch, our routes, DNS) and judged against
 * the journal — each judgement a check; any failed check makes the agent unhealthy.
 */
import type { StatusCheck } from '@wgctl/agent-kit';
import type { DnsSnapshot, KillSwitchStatus, PortalWindow, RouteReadback, Uplink, Vnic } from '../host/driver';
import { messageOf, usesServers, type EngineCore } from './core';
import type { HealSummary } from './heal';
import type { Ipv6InEffect, MacJournal, UpIntent } from './journal';

export interface EngineStatus {
  up: boolean;
  phase: MacJournal['phase'];
  intent: UpIntent | null;
  uplink: Uplink | null;
  uplinkLost: boolean;
  vnic: Vnic | null;
  routes: RouteReadback[];
  killSwitch: KillSwitchStatus;
  dns: { servers: string[]; previous: string[]; managed: boolean };
  checks: StatusCheck[];
  healthy: boolean;
  reasons: string[];
  sampledAtMs: number;
  lastRoamMs: number;
  lastError: string;
  /** IPv6 as the last Up applied it (journal); null when not up. */
  ipv6: Ipv6InEffect | null;
  /** What the self-healing put back since the agent started. */
  heals: HealSummary;
  /** --allow-lan: the LAN subnets the loaded kill switch lets through (journal's policy); absent without it. */
  lanSubnets?: string[];
  /** An open captive-portal sign-in window (`wgctl portal`): what the kill switch lets out, until when. */
  portalWindow?: PortalWindow;
}

/** What collectStatus read from the host. */
interface LiveState {
  uplink: Uplink | null;
  killSwitch: KillSwitchStatus;
  routes: RouteReadback[];
  dns: DnsSnapshot;
  dnsServers: string[];
}

/**
 * Reads the live state back and judges it. Spawns commands: the engine runs it in its queue.
 * `advisoryChecks`: shown in Status without deciding health (certificate expiry).
 */
export async function collectStatus(core: EngineCore, advisoryChecks?: () => StatusCheck[], heals: HealSummary = { count: 0, last: null }): Promise<EngineStatus> {
  const j = core.loadJournal();
  const run = core.runner;
  const checks: StatusCheck[] = [];
  const up = j.phase === 'up';
  const policy = j.killSwitch?.policy;
  // Independent reads, run side by side: a Status that has to sample answers sooner.
  const [uplink, killSwitch, routes, dnsRead] = await Promise.all([
    core.driver.discoverUplink(run),
    core.driver.readKillSwitch(run, up ? policy : undefined, j.killSwitch?.handle ?? undefined),
    j.routes.length ? core.driver.readRoutes(run, j.routes) : Promise.resolve([]),
    // The DNS context names the journal's uplink: the live one is being read at the same time.
    core.driver.readDns(run, { uplink: j.uplink?.interface, vnic: j.vnic?.interface }).then(
      (snapshot) => ({ snapshot }),
      (e: unknown) => ({ error: messageOf(e) }),
    ),
  ]);
  let dnsNow: DnsSnapshot = { services: [] };
  if ('snapshot' in dnsRead) dnsNow = dnsRead.snapshot;
  else checks.push({ name: 'dns-readable', ok: false, detail: dnsRead.error, evidence: [] });
  const live: LiveState = { uplink, killSwitch, routes, dns: dnsNow, dnsServers: [...new Set(dnsNow.services.flatMap((s) => s.servers))] };

  checks.push(...(up || j.phase === 'up-in-progress' ? checksWhileUp(j, live) : checksWhileDown(live)));
  if (j.lastError) checks.push({ name: 'last-operation', ok: false, detail: j.lastError, evidence: [] });
  const reasons = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  // Advisory checks (certificate expiry): shown in Status, without turning health red.
  checks.push(...(advisoryChecks?.() ?? []));
  return {
    up,
    phase: j.phase,
    intent: j.intent,
    uplink,
    uplinkLost: j.uplinkLost,
    vnic: j.vnic,
    routes,
    killSwitch,
    dns: { servers: live.dnsServers, previous: j.dns ? j.dns.snapshot.services.flatMap((s) => s.servers) : [], managed: j.dns !== null },
    checks,
    healthy: reasons.length === 0,
    reasons,
    sampledAtMs: core.now(),
    lastRoamMs: j.lastRoamMs,
    lastError: j.lastError,
    ipv6: up ? (j.ipv6 ?? null) : null,
    heals,
    ...(policy?.allowLan ? { lanSubnets: policy.lanSubnets ?? [] } : {}),
    ...(policy?.portalWindow && policy.portalWindow.untilMs > core.now() ? { portalWindow: policy.portalWindow } : {}),
  };
}

/** Up (or half-way there): an uplink, pinned via the current gateway, our routes, the kill switch, DNS through the tunnel. */
function checksWhileUp(j: MacJournal, live: LiveState): StatusCheck[] {
  const { uplink, routes, killSwitch } = live;
  const checks: StatusCheck[] = [];
  checks.push({
    name: 'uplink',
    ok: uplink !== null,
    detail: uplink ? `${uplink.interface} via ${uplink.gateway}` : 'no default route (fail-closed: the kill switch stays loaded)',
    evidence: [],
  });
  if (uplink && j.uplink) {
    const same = uplink.interface === j.uplink.interface && uplink.gateway === j.uplink.gateway;
    checks.push({
      name: 'pinned-uplink-current',
      ok: same,
      detail: same ? `server pinned via the current gateway ${uplink.gateway}` : `pinned via ${j.uplink.interface}/${j.uplink.gateway} but the default is now ${uplink.interface}/${uplink.gateway} (roaming pending)`,
      evidence: [],
    });
  }
  const missing = routes.filter((r) => !r.present);
  checks.push({
    name: 'routes',
    ok: routes.length > 0 && missing.length === 0,
    detail: missing.length ? `missing: ${missing.map((m) => `${m.destination} via ${m.gateway}`).join(', ')}` : `${routes.length} routes present`,
    evidence: routes.map((r) => r.evidence).filter(Boolean),
  });
  checks.push({
    name: 'kill-switch',
    ok: killSwitch.loaded && killSwitch.enabled && killSwitch.problems.length === 0,
    detail: killSwitch.problems.length ? killSwitch.problems.join('; ') : `loaded on ${killSwitch.interface ?? '?'}, ${killSwitch.rules.length} rules match the policy`,
    evidence: killSwitch.rules,
  });
  if (j.dns) {
    const dns = j.dns;
    const wanted = dns.servers.join(' ');
    const ok = live.dns.services.length > 0 && live.dns.services.every((s) => usesServers(s, dns.servers));
    checks.push({ name: 'dns', ok, detail: ok ? `DNS is ${wanted}` : `DNS should be ${wanted}, is ${live.dnsServers.join(' ') || 'none'}`, evidence: live.dnsServers });
  }
  return checks;
}

/** Down: no kill switch left behind. */
function checksWhileDown(live: LiveState): StatusCheck[] {
  const { killSwitch } = live;
  return [
    {
      name: 'kill-switch-absent',
      ok: !killSwitch.loaded,
      detail: killSwitch.loaded ? 'a kill switch is loaded while down: run Down to remove it' : 'no kill switch loaded',
      evidence: killSwitch.rules,
    },
  ];
}
