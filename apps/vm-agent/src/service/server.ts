/**
 * gRPC handlers of wgctl.v1.VmAgent on top of the engine and the health sampler; the engine's
 * reports become proto messages here.
 *
 * - Up/Down are the agent kit's stream: one Progress per step event, then the Outcome. A
 *   second Up/Down while one runs is refused at once with ABORTED ("another Up is in progress
 *   …"): the caller decides whether to retry; nothing queues behind a long handshake wait.
 * - The call's deadline bounds the handshake wait (minus a reserve for the rollback); a client
 *   that goes away ends the operation at the next step, and an Up is rolled back.
 * - Bad arguments → INVALID_ARGUMENT naming the field; an unreadable wg-quick config →
 *   FAILED_PRECONDITION.
 * - Status answers from the health sampler's cache; Capture (tcpdump, see ./capture) defaults
 *   to the tunnel interface.
 */
import type * as grpc from '@grpc/grpc-js';
import { SAMPLE_AFTER_REPLY_MS, type HealthSampler } from '@wgctl/agent-kit';
import { agentInfo, operationStatusError, streamOperation } from '@wgctl/agent-kit/grpc';
import type { Logger } from '@wgctl/logging';
import { HealthState, type DescribeRequest, type Progress, type SelfHealStatus, type StatusRequest, type TunnelLiveness, type VmDescription, type VmDownRequest, type VmStatus, type VmUpRequest } from '@wgctl/proto';
import { failedPrecondition, peerAddressOf } from '@wgctl/transport';
import { ConfigFileError } from '../host/config';
import { vmCaptureHandler } from './capture';
import { withLivenessNow, type HealsSoFar, type VmEngine, type VmSample } from './engine/engine';
import type { LivenessReport } from './engine/liveness';

function mapError(e: unknown): unknown {
  if (e instanceof ConfigFileError) return failedPrecondition(e.message);
  return operationStatusError(e);
}

/** What self-healing did, as Status carries it (undefined: the agent does not heal). */
export function selfHealMessage(heals: HealsSoFar | undefined): SelfHealStatus | undefined {
  if (!heals) return undefined;
  const { last } = heals;
  return { heals: heals.count, lastHealUnixMs: String(last?.atMs ?? 0), lastChanges: last?.changes ?? [], lastBy: last?.by ?? '', lastTrigger: last?.trigger ?? '' };
}

/** The liveness check as Status carries it: times as unix ms in decimal strings, 0 for none. */
export function livenessMessage(report: LivenessReport | undefined): TunnelLiveness | undefined {
  if (!report) return undefined;
  const ms = (value: number | null): string => String(value ?? 0);
  const { state, probeTarget, detail } = report;
  return { state, interface: report.interface, lastReplyUnixMs: ms(report.lastRxAtMs), lastProbeUnixMs: ms(report.lastProbeAtMs), deadSinceUnixMs: ms(report.deadSinceMs), probeTarget, detail };
}

/** A sample as Status carries it: the verdict as Health, int64s as decimal strings; heals as they are now (not as sampled). */
export function vmStatusMessage(sample: VmSample, driver: string, heals?: HealsSoFar): VmStatus {
  const { status } = sample;
  return {
    ...status,
    selfHeal: selfHealMessage(heals),
    liveness: livenessMessage(status.liveness),
    agent: agentInfo('vm-agent', driver),
    health: {
      state: sample.serving ? HealthState.HEALTH_STATE_SERVING : HealthState.HEALTH_STATE_NOT_SERVING,
      reasons: sample.reasons,
      sampledAtMs: String(sample.sampledAtMs),
    },
    peers: status.peers.map((p) => ({ ...p, latestHandshakeUnix: String(p.latestHandshakeUnix), handshakeAgeS: String(p.handshakeAgeS) })),
  };
}

/**
 * `startup`: the agent's own start-up reconcile (it finishes or undoes what a previous process
 * left). An Up or Down that arrives meanwhile waits for it, within the call's deadline, instead
 * of being refused as busy: the caller did not start that operation and cannot see it end.
 */
export function vmAgentHandlers(engine: VmEngine, sampler: HealthSampler<VmSample>, logger?: Logger, startup: Promise<unknown> = Promise.resolve()): grpc.UntypedServiceImplementation {
  // Up/Down change what health reports: sample again once the answer is out (SAMPLE_AFTER_REPLY_MS
  // says why); a Status meanwhile begins it.
  const resample = (): void => {
    void sampler.refreshAfterChange(SAMPLE_AFTER_REPLY_MS).catch((e) => logger?.warn('sample after operation failed', { error: (e as Error).message }));
  };
  return {
    describe: async (call: grpc.ServerUnaryCall<DescribeRequest, VmDescription>, callback: grpc.sendUnaryData<VmDescription>) => {
      try {
        // grpc-js emits 'cancelled' once a call has ended in any way, a success included
        // (grpc/grpc-node#2771): the answer and its trailers are out by then.
        const upFollows = call.request.upFollows
          ? { caller: peerAddressOf(call.getPeer()), answered: new Promise<void>((resolve) => call.once('cancelled', () => resolve())) }
          : undefined;
        const description: VmDescription = { agent: agentInfo('vm-agent', engine.driverName), ...(await engine.describe(upFollows)) };
        callback(null, description);
      } catch (e) {
        callback(mapError(e) as grpc.ServiceError);
      }
    },
    up: (call: grpc.ServerWritableStream<VmUpRequest, Progress>) =>
      streamOperation(
        call,
        (ctx) =>
          startup.then(() =>
            engine.up(
            {
              macSource: call.request.macSource,
              macSource6: call.request.macSource6 || undefined,
              lanInterface: call.request.lanInterface || undefined,
              dryRun: call.request.dryRun,
              handshakeTimeoutMs: call.request.handshakeTimeoutMs || undefined,
            },
            ctx,
          )),
        resample,
      ),
    down: (call: grpc.ServerWritableStream<VmDownRequest, Progress>) =>
      streamOperation(call, (ctx) => startup.then(() => engine.down({ dryRun: call.request.dryRun, forceInterfaceDown: call.request.forceInterfaceDown }, ctx)), resample),
    status: async (_call: grpc.ServerUnaryCall<StatusRequest, VmStatus>, callback: grpc.sendUnaryData<VmStatus>) => {
      // The liveness as it is now, between samples (withLivenessNow).
      callback(null, vmStatusMessage(withLivenessNow(await sampler.current(), engine.livenessNow()), engine.driverName, engine.heals));
    },
    capture: vmCaptureHandler(engine, { logger }),
  };
}
