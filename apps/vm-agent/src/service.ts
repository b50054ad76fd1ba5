/**
 * gRPC handlers of wgctl.v1.VmAgent on top of the engine and the health sampler.
 *
 * - Up/Down stream one Progress per step event, then the Outcome. A second Up/Down while one
 *   runs is refused at once with ABORTED ("another Up is in progress …"): the caller decides
 *   whether to retry; nothing queues behind a long handshake wait.
 * - The call's deadline bounds the handshake wait (minus a reserve for the rollback); a client
 *   that goes away aborts the operation at the next step, and what was changed is rolled back.
 * - Bad arguments → INVALID_ARGUMENT naming the field; an unreadable wg-quick config →
 *   FAILED_PRECONDITION.
 * - Status answers from the health sampler's cache; Capture (tcpdump, see ./capture) defaults
 *   to the tunnel interface.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '@wgctl/logging';
import type { DescribeRequest, Progress, StatusRequest, VmDescription, VmDownRequest, VmStatus, VmUpRequest } from '@wgctl/proto';
import { aborted, failedPrecondition, invalidArgument, unavailable } from '@wgctl/transport';
import { ConfigFileError } from './config';
import { vmCaptureHandler } from './capture';
import { BusyError } from '@wgctl/state';
import { StoppingError, type OperationContext, type VmEngine } from './engine';
import type { HealthSampler } from './health';
import { InvalidArgumentError } from './validation';

function mapError(e: unknown): unknown {
  if (e instanceof InvalidArgumentError) return invalidArgument(e.message);
  if (e instanceof BusyError) return aborted(e.message);
  if (e instanceof StoppingError) return unavailable(e.message);
  if (e instanceof ConfigFileError) return failedPrecondition(e.message);
  return e;
}

function deadlineMsOf(call: grpc.ServerWritableStream<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Longest wait for the stream's end before `after` runs anyway. */
const AFTER_STREAM_FALLBACK_MS = 1_000;

/**
 * Runs `after` once the call's end (Outcome, then status) has been handed to the transport,
 * and then only on the next turn of the event loop: work done there (a health sample spawns
 * processes) must not hold back the answer the client waits for. Runs once, also when the
 * call failed or was cancelled.
 */
function afterStreamEnd(call: grpc.ServerWritableStream<unknown, Progress>, after: () => void): void {
  let scheduled = false;
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    call.off('finish', schedule);
    call.off('close', schedule);
    clearTimeout(fallback);
    setImmediate(after);
  };
  // An error status is ended by the transport after the handler returns: wait for it too.
  const fallback = setTimeout(schedule, AFTER_STREAM_FALLBACK_MS);
  if (call.writableFinished || call.destroyed) return schedule();
  call.once('finish', schedule);
  call.once('close', schedule);
}

/** Runs a streaming operation: progress to the client, abort on cancel, errors mapped. */
async function stream(
  call: grpc.ServerWritableStream<unknown, Progress>,
  run: (ctx: OperationContext) => Promise<unknown>,
  after: () => void,
): Promise<void> {
  const controller = new AbortController();
  const onCancel = (): void => controller.abort();
  call.on('cancelled', onCancel);
  try {
    await run({
      emit: (progress) => {
        if (!call.cancelled && !call.writableEnded) call.write(progress);
      },
      signal: controller.signal,
      deadlineMs: deadlineMsOf(call),
    });
    if (!call.writableEnded) call.end();
  } catch (e) {
    throw mapError(e);
  } finally {
    call.off('cancelled', onCancel);
    afterStreamEnd(call, after);
  }
}

export function vmAgentHandlers(engine: VmEngine, sampler: HealthSampler, logger?: Logger): grpc.UntypedServiceImplementation {
  // Up/Down change what health reports: sample again right away (once the answer is out).
  const resample = (): void => {
    void sampler.refreshAfterChange().catch((e) => logger?.warn('sample after operation failed', { error: (e as Error).message }));
  };
  return {
    describe: async (_call: grpc.ServerUnaryCall<DescribeRequest, VmDescription>, callback: grpc.sendUnaryData<VmDescription>) => {
      try {
        callback(null, await engine.describe());
      } catch (e) {
        callback(mapError(e) as grpc.ServiceError);
      }
    },
    up: (call: grpc.ServerWritableStream<VmUpRequest, Progress>) =>
      stream(
        call,
        (ctx) =>
          engine.up(
            {
              macSource: call.request.macSource,
              macSource6: call.request.macSource6 || undefined,
              lanInterface: call.request.lanInterface || undefined,
              dryRun: call.request.dryRun,
              handshakeTimeoutMs: call.request.handshakeTimeoutMs || undefined,
            },
            ctx,
          ),
        resample,
      ),
    down: (call: grpc.ServerWritableStream<VmDownRequest, Progress>) =>
      stream(call, (ctx) => engine.down({ dryRun: call.request.dryRun, forceInterfaceDown: call.request.forceInterfaceDown }, ctx), resample),
    status: async (_call: grpc.ServerUnaryCall<StatusRequest, VmStatus>, callback: grpc.sendUnaryData<VmStatus>) => {
      const sample = await sampler.current();
      callback(null, sample.status);
    },
    capture: vmCaptureHandler(engine, { logger }),
  };
}
