/**
 * wgctl.v1.MacAgent over gRPC: maps the engine to the generated service. Up and Down are the
 * agent kit's stream (a caller that cancels ends the operation between two steps, fail-closed:
 * see the engine). Health comes from the background sampler (no process per health call);
 * Status re-reads when its sample is older than a second; Capture (tcpdump, see ./capture)
 * defaults to the uplink.
 */
import ipaddr from 'ipaddr.js';
import { invalidField, SAMPLE_AFTER_REPLY_MS, type HealthSampler } from '@wgctl/agent-kit';
import { checkExcludedCidr, isIpAddress, isPort, MAX_EXCLUDED } from '@wgctl/config';
import { VM_ADDRESS_METADATA, agentInfo, streamOperation } from '@wgctl/agent-kit/grpc';
import { HealthState, type MacAgentServer, type MacDescription, type MacDownRequest, type MacStatus, type MacUpRequest, type SelfHealStatus, ipv6ModeWord, knownIpv6Mode } from '@wgctl/proto';
import { invalidArgument } from '@wgctl/transport';
import { macCaptureHandler } from './capture';
import type { EngineStatus, MacAgentEngine } from './engine';
import type { HealSummary } from './heal';
import type { RoamSummary } from './roam';
import { PORTAL_WEB_PORTS, type ServerEndpoint } from '../host/driver';
import type { UpIntent } from './journal';
import { MAX_ENDPOINTS } from './validation';

/** Status answers from a sample at most this old: routing changes reach the host at any time. */
const STATUS_MAX_AGE_MS = 1_000;

export function intentFromRequest(request: MacUpRequest): UpIntent {
  const mode = knownIpv6Mode(request.ipv6);
  // An enum value this agent does not know (a newer controller) is refused, not read as auto.
  if (mode === undefined) throw invalidField('ipv6', `unknown mode ${String(request.ipv6)} (expected 0 auto, 1 route, 2 block)`);
  return {
    vmAddress: request.vmAddress.trim(),
    vmAddress6: request.vmAddress6.trim() || undefined,
    endpoints: request.endpoints.map((e) => ({ host: e.host, ip: e.ip.trim(), port: e.port })),
    dnsServers: request.dnsServers.map((s) => s.trim()).filter(Boolean),
    // The engine's word for the mode (it sees no proto).
    ipv6: ipv6ModeWord(mode),
    ...(request.killSwitchOnly ? { killSwitchOnly: true } : {}),
    ...(request.exclude?.length ? { exclude: request.exclude.map((c) => c.trim()) } : {}),
    ...(request.allowLan ? { allowLan: true } : {}),
    ...(request.portalWindowMs ? { portalWindowMs: request.portalWindowMs } : {}),
  };
}

/** The VM addresses of a Down (they end up in `route`/`ip route` argv): IP addresses only; anything else is ignored. */
export function downVmAddresses(request: Pick<MacDownRequest, 'vmAddress' | 'vmAddress6'>): { v4?: string; v6?: string } {
  const v4 = (request.vmAddress ?? '').trim();
  const v6 = (request.vmAddress6 ?? '').trim();
  return {
    ...(ipaddr.IPv4.isValidFourPartDecimal(v4) ? { v4 } : ipaddr.IPv6.isValid(v4) ? { v6: v4 } : {}),
    ...(ipaddr.IPv6.isValid(v6) ? { v6 } : {}),
  };
}

/** The servers of a Down (their pins end up in `route`/`ip route` argv): IP literals with a port, at most 16; anything else is ignored like a bad VM address. */
export function downServers(request: Pick<MacDownRequest, 'endpoints'>): ServerEndpoint[] {
  return (request.endpoints ?? [])
    .filter((e) => isIpAddress(e.ip) && isPort(e.port))
    .slice(0, MAX_ENDPOINTS)
    .map((e) => ({ ip: e.ip, port: e.port }));
}

/** The excluded CIDRs of a Down (their routes end up in `route`/`ip route` argv): only those that may be excluded, at most 64; anything else is ignored. */
export function downExcluded(request: Pick<MacDownRequest, 'exclude'>): string[] {
  return (request.exclude ?? [])
    .map((c) => checkExcludedCidr(c.trim()))
    .flatMap((checked) => ('cidr' in checked ? [checked.cidr] : []))
    .slice(0, MAX_EXCLUDED);
}

/** A sample as Status carries it; the roams as they are now (the count since start, the last one's duration). */
export function macStatusMessage(status: EngineStatus, driver: string, roams: RoamSummary): MacStatus {
  const ks = status.killSwitch;
  return {
    agent: agentInfo('mac-agent', driver),
    health: {
      state: status.healthy ? HealthState.HEALTH_STATE_SERVING : HealthState.HEALTH_STATE_NOT_SERVING,
      reasons: status.reasons,
      sampledAtMs: String(status.sampledAtMs),
    },
    uplinkInterface: status.uplink?.interface ?? '',
    gateway: status.uplink?.gateway ?? '',
    routes: status.routes.map((r) => ({
      destination: r.destination,
      gateway: r.gateway,
      interface: r.interface ?? '',
      present: r.present,
      evidence: r.evidence,
    })),
    killSwitch: { loaded: ks.loaded, enabled: ks.enabled, referenced: ks.referenced, tokenHeld: ks.tokenHeld, interface: ks.interface ?? '', rules: ks.rules },
    dns: { servers: status.dns.servers, previous: status.dns.previous, managed: status.dns.managed },
    checks: status.checks,
    up: status.up,
    vmAddress: status.intent?.vmAddress ?? '',
    endpoints: (status.intent?.endpoints ?? []).map((e) => ({ host: e.host ?? '', ip: e.ip, port: e.port })),
    lastRoamUnixMs: String(status.lastRoamMs),
    ipv6: status.ipv6 ?? '',
    vmAddress6: status.ipv6 === 'route' ? (status.intent?.vmAddress6 ?? '') : '',
    selfHeal: selfHealMessage(status.heals),
    roams: roams.count,
    lastRoamTookMs: String(Math.round(roams.last?.tookMs ?? 0)),
    exclude: status.intent?.exclude ?? [],
    allowLan: status.intent?.allowLan ?? false,
    lanSubnets: status.lanSubnets ?? [],
    portalWindow: status.portalWindow ? { untilUnixMs: String(status.portalWindow.untilMs), resolvers: status.portalWindow.resolvers, tcpPorts: [...PORTAL_WEB_PORTS] } : undefined,
  };
}

function selfHealMessage({ count, last }: HealSummary): SelfHealStatus {
  return {
    heals: count,
    lastHealUnixMs: String(last?.atMs ?? 0),
    lastChanges: last ? [`${last.what}: ${last.detail}`] : [],
    lastBy: last?.by ?? '',
    lastTrigger: last?.trigger ?? '',
  };
}

/** How long the status sample after a kill-switch-only Up waits for the full Up (see createMacAgentImplementation). */
export const KILL_SWITCH_ONLY_SAMPLE_DELAY_MS = 1_000;

export function createMacAgentImplementation(engine: MacAgentEngine, sampler: HealthSampler<EngineStatus>): MacAgentServer {
  // Begun past the reply's end (SAMPLE_AFTER_REPLY_MS says why); a Status meanwhile begins it.
  const resample = () => void sampler.refreshAfterChange(SAMPLE_AFTER_REPLY_MS).catch(() => undefined);
  // A kill-switch-only Up is followed by the full Up once the VM's tunnel is up: sampling in
  // between would only compete with the VM's wg-quick for the CPU. The full Up's (or a Down's)
  // sample covers both; a Status meanwhile begins it at once; the fallback is a second.
  const resampleAfterKillSwitchOnly = () => void sampler.refreshAfterChange(KILL_SWITCH_ONLY_SAMPLE_DELAY_MS).catch(() => undefined);
  return {
    describe: (call, callback) => {
      const fromMetadata = call.metadata.get(VM_ADDRESS_METADATA)[0];
      const vmAddress = typeof fromMetadata === 'string' ? fromMetadata.trim() : undefined;
      // It ends up in `route get`: an IP address or nothing.
      if (vmAddress && !ipaddr.IPv4.isValidFourPartDecimal(vmAddress) && !ipaddr.IPv6.isValid(vmAddress)) {
        callback(invalidArgument(`metadata ${VM_ADDRESS_METADATA}: ${JSON.stringify(vmAddress.slice(0, 64))} is not an IP address`));
        return;
      }
      engine.describe(vmAddress).then(
        ({ uplink, vnic }) => {
          const description: MacDescription = {
            agent: agentInfo('mac-agent', engine.driverName),
            uplinkInterface: uplink?.interface ?? '',
            gateway: uplink?.gateway ?? '',
            gateway6: uplink?.gateway6 ?? '',
            vnicInterface: vnic?.interface ?? '',
            vnicAddress: vnic?.address ?? '',
            vnicAddress6: vnic?.address6 ?? '',
          };
          callback(null, description);
        },
        (e: unknown) => callback(e as Error),
      );
    },
    up: (call) => {
      const request = call.request as MacUpRequest;
      const afterwards = request.killSwitchOnly && !request.dryRun ? resampleAfterKillSwitchOnly : resample;
      return streamOperation(call, ({ onStep, signal }) => engine.up(intentFromRequest(request), { dryRun: request.dryRun, signal }, (step) => onStep?.(step)), afterwards);
    },
    down: (call) => {
      const request = call.request as MacDownRequest;
      const vmAddresses = downVmAddresses(request);
      const servers = downServers(request);
      const excluded = downExcluded(request);
      return streamOperation(call, ({ onStep, signal }) => engine.down({ dryRun: request.dryRun, signal, vmAddresses, servers, excluded }, (step) => onStep?.(step)), resample);
    },
    status: (_call, callback) => {
      sampler.current(STATUS_MAX_AGE_MS).then(
        (status) => callback(null, macStatusMessage(status, engine.driverName, engine.roamSummary)),
        (e: unknown) => callback(e as Error),
      );
    },
    capture: macCaptureHandler(engine),
    endPortalWindow: (_call, callback) => {
      engine.endPortalWindow().then(
        (closed) => {
          if (closed) resample();
          callback(null, { closed });
        },
        (e: unknown) => callback(e as Error),
      );
    },
  };
}
