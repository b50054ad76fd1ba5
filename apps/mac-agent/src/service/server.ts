/**
 * wgctl.v1.MacAgent over gRPC: maps the engine to the generated service. Health comes from
 * the background sampler (no process per health call); Capture (tcpdump, see ./capture)
 * defaults to the uplink.
 */
import { hostname } from 'node:os';
import type * as grpc from '@grpc/grpc-js';
import ipaddr from 'ipaddr.js';
import {
  HealthState,
  Ipv6Mode,
  PROTOCOL_VERSION,
  StepState,
  wgctlVersion,
  type AgentInfo,
  type MacAgentServer,
  type MacDescription,
  type MacDownRequest,
  type MacStatus,
  type MacUpRequest,
  type Progress,
} from '@wgctl/proto';
import type { StepRecord } from '@wgctl/runner';
import { aborted, invalidArgument, unavailable } from '@wgctl/transport';
import { macCaptureHandler } from './capture';
import type { EngineStatus, MacAgentEngine, OperationOutcome } from './engine';
import { BusyError } from '@wgctl/state';
import { InvalidRequestError, StoppingError, afterReplyFlushed } from './engine';
import type { HealthSampler } from './health';
import type { Ipv6Choice, UpIntent } from './journal';

/** gRPC metadata key the controller sets on Describe (see apps/wgctl clients.ts). */
export const VM_ADDRESS_METADATA = 'wgctl-vm-address';

const STEP_STATES: Record<StepRecord['state'], StepState> = {
  started: StepState.STEP_STATE_STARTED,
  done: StepState.STEP_STATE_DONE,
  skipped: StepState.STEP_STATE_SKIPPED,
  failed: StepState.STEP_STATE_FAILED,
};

export function agentInfo(driver: string): AgentInfo {
  return {
    agent: 'mac-agent',
    version: wgctlVersion(),
    protocolVersion: PROTOCOL_VERSION,
    hostname: hostname(),
    driver,
    pid: String(process.pid),
  };
}

export function stepProgress(step: StepRecord): Progress {
  return {
    kind: {
      $case: 'step',
      value: {
        step: step.step,
        state: STEP_STATES[step.state],
        message: step.message,
        commands: step.commands.map((c) => ({
          argv: c.argv,
          exitCode: c.exitCode,
          stderr: c.stderr,
          dryRun: c.dryRun,
          durationMs: String(Math.round(c.durationMs)),
        })),
        elapsedMs: String(Math.round(step.elapsedMs)),
      },
    },
  };
}

export function outcomeProgress(outcome: OperationOutcome): Progress {
  return { kind: { $case: 'outcome', value: { ok: outcome.ok, failedStep: outcome.failedStep, error: outcome.error, totalMs: String(Math.round(outcome.totalMs)) } } };
}

const IPV6_CHOICES: Partial<Record<number, Ipv6Choice>> = {
  [Ipv6Mode.IPV6_MODE_UNSPECIFIED]: 'auto',
  [Ipv6Mode.IPV6_MODE_ROUTE]: 'route',
  [Ipv6Mode.IPV6_MODE_BLOCK]: 'block',
};

export function intentFromRequest(request: MacUpRequest): UpIntent {
  const ipv6 = IPV6_CHOICES[request.ipv6];
  // An enum value this agent does not know (a newer controller) is refused, not read as auto.
  if (ipv6 === undefined) throw new InvalidRequestError(`ipv6: unknown mode ${String(request.ipv6)} (expected 0 auto, 1 route, 2 block)`);
  return {
    vmAddress: request.vmAddress.trim(),
    vmAddress6: request.vmAddress6.trim() || undefined,
    endpoints: request.endpoints.map((e) => ({ host: e.host, ip: e.ip.trim(), port: e.port })),
    dnsServers: request.dnsServers.map((s) => s.trim()).filter(Boolean),
    ipv6,
  };
}

export function statusMessage(status: EngineStatus, driver: string): MacStatus {
  const ks = status.killSwitch;
  return {
    agent: agentInfo(driver),
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
  };
}

/** Streams an Up/Down: one Progress per step event, then the Outcome; ends the call. */
async function streamOperation(
  call: grpc.ServerWritableStream<unknown, Progress>,
  run: (listener: (step: StepRecord) => void) => Promise<OperationOutcome>,
  afterwards: () => void,
): Promise<void> {
  const write = (p: Progress) => {
    if (!call.writableEnded && !call.destroyed) call.write(p);
  };
  const outcome = await run((step) => write(stepProgress(step)));
  write(outcomeProgress(outcome));
  call.end();
  // Resampling spawns processes (synchronously): only once the Outcome and the end are out.
  afterReplyFlushed(afterwards);
}

export function createMacAgentImplementation(engine: MacAgentEngine, sampler: HealthSampler): MacAgentServer {
  const resample = () => void sampler.refreshAfterChange().catch(() => undefined);
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
            agent: agentInfo(engine.driverName),
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
    up: async (call) => {
      const request = call.request as MacUpRequest;
      try {
        const intent = intentFromRequest(request);
        await streamOperation(call, (listener) => engine.up(intent, { dryRun: request.dryRun }, listener), resample);
      } catch (e) {
        if (e instanceof InvalidRequestError) throw invalidArgument(e.message);
        if (e instanceof StoppingError) throw unavailable(e.message);
        if (e instanceof BusyError) throw aborted(e.message);
        throw e;
      }
    },
    down: async (call) => {
      const request = call.request as MacDownRequest;
      try {
        await streamOperation(call, (listener) => engine.down({ dryRun: request.dryRun }, listener), resample);
      } catch (e) {
        if (e instanceof StoppingError) throw unavailable(e.message);
        if (e instanceof BusyError) throw aborted(e.message);
        throw e;
      }
    },
    status: (_call, callback) => {
      sampler.current().then(
        (status) => callback(null, statusMessage(status, engine.driverName)),
        (e: unknown) => callback(e as Error),
      );
    },
    capture: macCaptureHandler(engine),
  };
}
