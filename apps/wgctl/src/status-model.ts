/**
 * `wgctl status` as data: the two agents' Status answers (or why they could not be had)
 * turned into one report — the JSON of `status --json` (its types are inferred from the zod
 * schema in status-schema.ts; fields: docs/status-schema.md) and the input of the table. Pure:
 * `now` is a parameter.
 */
import { type Check, type Endpoint, type Health, type MacStatus, type PortalWindowState, PROTOCOL_VERSION, type SelfHealStatus, type VmStatus } from '@wgctl/proto';
import type { PortalDetection } from './portal-state';
import { formatAge } from './render/text';
import {
  type AgentJson,
  type CheckJson,
  type ControllerJson,
  type HealthJson,
  type LivenessJson,
  type MacSideJson,
  OVERALL_EXIT,
  type Overall,
  type PortalJson,
  type PortalWindowJson,
  type SelfHealJson,
  STATUS_SCHEMA_ID,
  type StatusReport,
  type Unreachable,
  type VmSideJson,
} from './status-schema';

// The report's types keep their names here, where the renderers import them from.
export type {
  AgentJson,
  CheckJson,
  ControllerJson,
  HealthJson,
  LivenessJson,
  MacSideJson,
  Overall,
  PortalJson,
  PortalWindowJson,
  SelfHealJson,
  StatusReport,
  Unreachable,
  VmSideJson,
};
export type { VmPeerJson } from './status-schema';

/** WireGuard re-handshakes about every 2 minutes on a live tunnel; 180 s = RejectAfterTime. */
const HANDSHAKE_STALE_S = 180;

/**
 * How long a detection is worth showing: a portal's sign-in usually lasts hours, but after half
 * an hour the user has likely moved or signed in elsewhere; the next failed `up` probes again.
 */
export const PORTAL_RECENT_S = 30 * 60;

export type Fetched<T> = { ok: true; value: T } | { ok: false; error: string };

const orNull = (s: string): string | null => (s === '' ? null : s);

function toNumber(value: string | number): number {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
}

function isoFromMs(ms: string | number): string | null {
  const n = toNumber(ms);
  return n > 0 ? new Date(n).toISOString() : null;
}

function agentJson(agent: VmStatus['agent']): AgentJson | null {
  if (!agent) return null;
  return {
    name: agent.agent,
    version: agent.version,
    protocolVersion: agent.protocolVersion,
    hostname: agent.hostname,
    driver: agent.driver,
    pid: toNumber(agent.pid),
  };
}

function healthJson(health: Health | undefined): HealthJson {
  const state = health?.state === 1 ? 'SERVING' : health?.state === 2 ? 'NOT_SERVING' : 'UNKNOWN';
  return { state, reasons: health?.reasons ?? [], sampledAt: health ? isoFromMs(health.sampledAtMs) : null };
}

function checksJson(checks: Check[]): CheckJson[] {
  return checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail, evidence: c.evidence }));
}

function endpointJson(e: Endpoint) {
  return { host: e.host, ip: e.ip, port: e.port };
}

const LIVENESS_STATES: readonly LivenessJson['state'][] = ['unknown', 'alive', 'probing', 'dead'];

function livenessJson(l: VmStatus['liveness'], now: Date): LivenessJson | null {
  if (!l) return null;
  const lastReplyMs = toNumber(l.lastReplyUnixMs);
  return {
    state: LIVENESS_STATES.find((x) => x === l.state) ?? 'unknown',
    lastReply: isoFromMs(lastReplyMs),
    lastReplyAgeSeconds: lastReplyMs > 0 ? Math.max(0, Math.round((now.getTime() - lastReplyMs) / 1000)) : null,
    lastProbe: isoFromMs(l.lastProbeUnixMs),
    deadSince: isoFromMs(l.deadSinceUnixMs),
    probeTarget: orNull(l.probeTarget),
    detail: l.detail,
  };
}

function selfHealJson(h: SelfHealStatus | undefined): SelfHealJson | null {
  if (!h) return null;
  return { heals: h.heals, lastHeal: isoFromMs(h.lastHealUnixMs), lastChanges: h.lastChanges, lastBy: orNull(h.lastBy), lastTrigger: orNull(h.lastTrigger) };
}

function vmSide(target: string, s: VmStatus, now: Date): VmSideJson {
  return {
    reachable: true,
    target,
    agent: agentJson(s.agent),
    health: healthJson(s.health),
    interface: s.interface,
    interfaceUp: s.interfaceUp,
    publicKey: s.publicKey,
    listenPort: s.listenPort,
    tunnelAddresses: s.tunnelAddresses,
    ipForward: s.ipForward,
    iptablesBackend: s.iptablesBackend,
    macSource: orNull(s.macSource),
    macSource6: orNull(s.macSource6),
    peers: s.peers.map((p) => {
      const handshake = toNumber(p.latestHandshakeUnix);
      const age = toNumber(p.handshakeAgeS);
      return {
        publicKey: p.publicKey,
        endpoint: orNull(p.endpoint),
        allowedIps: p.allowedIps,
        latestHandshake: handshake > 0 ? new Date(handshake * 1000).toISOString() : null,
        handshakeAgeSeconds: handshake > 0 && age >= 0 ? age : null,
        rxBytes: toNumber(p.rxBytes),
        txBytes: toNumber(p.txBytes),
        persistentKeepalive: p.persistentKeepalive > 0 ? p.persistentKeepalive : null,
      };
    }),
    liveness: livenessJson(s.liveness, now),
    selfHeal: selfHealJson(s.selfHeal),
    checks: checksJson(s.checks),
  };
}

function macSide(target: string, s: MacStatus, now: Date): MacSideJson {
  const ks = s.killSwitch;
  return {
    reachable: true,
    target,
    agent: agentJson(s.agent),
    health: healthJson(s.health),
    up: s.up,
    uplink: { interface: orNull(s.uplinkInterface), gateway: orNull(s.gateway) },
    vmAddress: orNull(s.vmAddress),
    ipv6: s.ipv6 === 'route' || s.ipv6 === 'block' ? s.ipv6 : null,
    vmAddress6: orNull(s.vmAddress6),
    endpoints: s.endpoints.map(endpointJson),
    routes: s.routes.map((r) => ({ destination: r.destination, gateway: r.gateway, interface: r.interface, present: r.present, evidence: r.evidence })),
    killSwitch: {
      loaded: ks?.loaded ?? false,
      enabled: ks?.enabled ?? false,
      referenced: ks?.referenced ?? false,
      tokenHeld: ks?.tokenHeld ?? false,
      interface: ks ? orNull(ks.interface) : null,
      rules: ks?.rules ?? [],
    },
    lan: { allowed: s.allowLan ?? false, subnets: s.lanSubnets ?? [] },
    excluded: (s.exclude ?? []).map((destination) => ({ destination, present: s.routes.some((r) => r.destination === destination && r.present) })),
    portalWindow: portalWindowJson(s.portalWindow, now),
    dns: { servers: s.dns?.servers ?? [], previous: s.dns?.previous ?? [], managed: s.dns?.managed ?? false },
    lastRoam: isoFromMs(s.lastRoamUnixMs),
    roams: s.roams ?? 0,
    lastRoamTookMs: s.roams ? toNumber(s.lastRoamTookMs) : null,
    selfHeal: selfHealJson(s.selfHeal),
    checks: checksJson(s.checks),
  };
}

function portalWindowJson(w: PortalWindowState | undefined, now: Date): PortalWindowJson | null {
  if (!w) return null;
  const untilMs = toNumber(w.untilUnixMs);
  return { until: new Date(untilMs).toISOString(), secondsLeft: Math.max(0, Math.ceil((untilMs - now.getTime()) / 1000)), resolvers: w.resolvers, tcpPorts: w.tcpPorts };
}

/** The remembered detection, while recent and only while the Mac is not up (an up Mac got past it). */
function portalJson(detection: PortalDetection | null, mac: MacSideJson | Unreachable, now: Date): PortalJson | null {
  if (!detection || (mac.reachable && mac.up)) return null;
  const ageSeconds = Math.max(0, Math.floor((now.getTime() - Date.parse(detection.detectedAt)) / 1000));
  if (ageSeconds > PORTAL_RECENT_S) return null;
  const { detectedAt, probeUrl, status, location, detail } = detection;
  return { detectedAt, ageSeconds, probeUrl, status, location, detail };
}

/** `captive portal detected 2 min ago (http://… answered 302 → http://192.0.2.1/login)` */
export function portalSentence(portal: PortalJson): string {
  return `captive portal detected ${formatAge(portal.ageSeconds)} (${portal.probeUrl} ${portal.detail})`;
}

/** The freshest handshake over all peers: seconds, null = never. */
export function freshestHandshake(vm: VmSideJson): number | null {
  const ages = vm.peers.map((p) => p.handshakeAgeSeconds).filter((a): a is number => a !== null);
  return ages.length > 0 ? Math.min(...ages) : null;
}

function portalWindowProblem(mac: MacSideJson): string[] {
  const w = mac.portalWindow;
  return w ? [`Mac: SIGN-IN WINDOW OPEN (${w.secondsLeft} s left): web traffic (TCP ${w.tcpPorts.join('/')}) and DNS to ${w.resolvers.join(', ') || 'no resolver'} leave UNPROTECTED`] : [];
}

/**
 * healthy: both reachable and up, SERVING, every check ok, a handshake within 180 s, the
 * split routes present, kill switch loaded and enabled, ip_forward on.
 * down: an agent unreachable, or neither side up. Anything in between: degraded.
 */
function assess(vm: VmSideJson | Unreachable, mac: MacSideJson | Unreachable): { overall: Overall; problems: string[] } {
  const problems: string[] = [];
  if (!vm.reachable) problems.push(`vm-agent unreachable (${vm.target}): ${vm.error}`);
  if (!mac.reachable) problems.push(`mac-agent unreachable (${mac.target}): ${mac.error}`);
  if (!vm.reachable || !mac.reachable) return { overall: 'down', problems };

  // An open sign-in window is said even then: the Mac's web traffic and DNS leave unprotected.
  if (!vm.interfaceUp && !mac.up) return { overall: 'down', problems: ['the tunnel is down on both sides (run `wgctl up`)', ...portalWindowProblem(mac)] };

  for (const side of [vm, mac]) {
    if (side.agent && side.agent.protocolVersion !== PROTOCOL_VERSION) {
      problems.push(`${side.agent.name || 'agent'} speaks protocol "${side.agent.protocolVersion}", this wgctl "${PROTOCOL_VERSION}": upgrade one of them`);
    }
  }
  if (vm.health.state !== 'SERVING') problems.push(`vm-agent ${vm.health.state}${vm.health.reasons.length ? `: ${vm.health.reasons.join('; ')}` : ''}`);
  if (mac.health.state !== 'SERVING') problems.push(`mac-agent ${mac.health.state}${mac.health.reasons.length ? `: ${mac.health.reasons.join('; ')}` : ''}`);

  if (!vm.interfaceUp) problems.push(`VM: ${vm.interface || 'the WireGuard interface'} is down`);
  else {
    const age = freshestHandshake(vm);
    if (age === null) problems.push('VM: no handshake with the server yet');
    else if (age > HANDSHAKE_STALE_S) problems.push(`VM: last handshake ${age} s ago (stale after ${HANDSHAKE_STALE_S} s)`);
    if (!vm.ipForward) problems.push('VM: ip_forward is off: the Mac\'s traffic is not forwarded');
    if (vm.liveness?.state === 'dead') problems.push(`VM: nothing comes back through the tunnel: ${vm.liveness.detail}`);
  }
  problems.push(...portalWindowProblem(mac));
  if (!mac.up) problems.push('Mac: not up (routes/kill switch not applied)');
  else {
    const missing = mac.routes.filter((r) => !r.present).map((r) => r.destination);
    if (missing.length > 0) problems.push(`Mac: routes missing: ${missing.join(', ')}`);
    if (!mac.killSwitch.loaded || !mac.killSwitch.enabled) {
      problems.push(`Mac: kill switch ${!mac.killSwitch.loaded ? 'not loaded' : 'loaded but not enabled'}: traffic could leak`);
    }
    // Routed to a VM that does not forward it, the Mac's IPv6 dies there (no leak, no traffic).
    if (mac.ipv6 === 'route' && vm.interfaceUp && !vm.macSource6) {
      problems.push('Mac: IPv6 is routed to the VM, but the VM does not forward it (run `wgctl up` again)');
    }
  }
  for (const [who, checks] of [['VM', vm.checks], ['Mac', mac.checks]] as const) {
    // The liveness check says what the liveness problem above says.
    for (const c of checks) if (!c.ok && !(who === 'VM' && c.name === 'liveness')) problems.push(`${who}: check ${c.name} failed${c.detail ? `: ${c.detail}` : ''}`);
  }
  return { overall: problems.length === 0 ? 'healthy' : 'degraded', problems };
}

export function buildStatusReport(
  vm: Fetched<VmStatus>,
  mac: Fetched<MacStatus>,
  targets: { vm: string; mac: string },
  now: Date,
  controller: ControllerJson | null = null,
  portalDetection: PortalDetection | null = null,
): StatusReport {
  const vmJson: VmSideJson | Unreachable = vm.ok ? vmSide(targets.vm, vm.value, now) : { reachable: false, target: targets.vm, error: vm.error };
  const macJson: MacSideJson | Unreachable = mac.ok ? macSide(targets.mac, mac.value, now) : { reachable: false, target: targets.mac, error: mac.error };
  const assessed = assess(vmJson, macJson);
  const problems = assessed.problems;
  let overall = assessed.overall;
  // A certificate about to expire is reported long before it stops the controller.
  if (controller && !controller.certificate.ok) {
    problems.push(`controller: ${controller.certificate.detail}`);
    if (overall === 'healthy') overall = 'degraded';
  }
  // Shown only while the Mac is not up, so already down/degraded: the exit code stays the same.
  const portal = portalJson(portalDetection, macJson, now);
  if (portal) problems.push(`${portalSentence(portal)}: run \`wgctl portal\``);
  return {
    schema: STATUS_SCHEMA_ID,
    time: now.toISOString(),
    overall,
    exitCode: OVERALL_EXIT[overall],
    problems,
    vm: vmJson,
    mac: macJson,
    controller,
    portal,
  };
}
