/**
 * The Up/Down handler both agents serve: one Progress per step event, then the Outcome, then
 * the end of the call.
 *
 * - A caller that cancels (or whose deadline passes) aborts the operation: it ends before its
 *   next step. What that leaves is the engine's decision (the vm-agent rolls an Up back, the
 *   mac-agent keeps its journal and stays fail-closed).
 * - Refusals become statuses: a bad request INVALID_ARGUMENT, another operation running
 *   ABORTED, the agent stopping UNAVAILABLE.
 * - `afterwards` (a health sample: it spawns processes) runs only once the end of the call is
 *   out, also when the call failed or was cancelled — not after a refusal: nothing ran.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Progress } from '@wgctl/proto';
import { aborted, invalidArgument, unavailable } from '@wgctl/transport';
import { BusyError, InvalidRequestError, StoppingError } from '../errors';
import type { OperationContext, OperationOutcome } from '../operation';
import { outcomeProgress, planProgress, stepProgress, tunnelReadyProgress } from './messages';

/** An Up or Down refused before anything ran. */
function isRefusal(e: unknown): e is InvalidRequestError | BusyError | StoppingError {
  return e instanceof InvalidRequestError || e instanceof BusyError || e instanceof StoppingError;
}

/** The status for a refusal; anything else is returned as it is. */
export function operationStatusError(e: unknown): unknown {
  if (e instanceof InvalidRequestError) return invalidArgument(e.message);
  if (e instanceof BusyError) return aborted(e.message);
  if (e instanceof StoppingError) return unavailable(e.message);
  return e;
}

export type OperationCall = grpc.ServerWritableStream<unknown, Progress>;

export async function streamOperation(call: OperationCall, run: (ctx: OperationContext) => Promise<OperationOutcome>, afterwards: () => void): Promise<void> {
  const cancelled = new AbortController();
  const onCancel = (): void => cancelled.abort();
  call.on('cancelled', onCancel);
  const write = (progress: Progress): void => {
    if (!call.cancelled && !call.writableEnded && !call.destroyed) call.write(progress);
  };
  let refused = false;
  try {
    const outcome = await run({
      onStep: (step) => write(stepProgress(step)),
      onPlan: (planned) => write(planProgress(planned)),
      onTunnelReady: (handshake) => write(tunnelReadyProgress(handshake)),
      signal: cancelled.signal,
      deadlineMs: deadlineMsOf(call),
    });
    write(outcomeProgress(outcome));
    if (!call.writableEnded) call.end();
  } catch (e) {
    refused = isRefusal(e);
    throw operationStatusError(e);
  } finally {
    call.off('cancelled', onCancel);
    if (!refused) afterStreamEnd(call, afterwards);
  }
}

function deadlineMsOf(call: OperationCall): number | undefined {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Longest wait for the end of the call before `after` runs anyway. */
const AFTER_STREAM_FALLBACK_MS = 1_000;

/**
 * Runs `after` once the call's end (Outcome, then status) has been handed to the transport,
 * and then only on the next turn of the event loop: work done there must not hold back the
 * answer the client waits for. Runs once.
 */
function afterStreamEnd(call: OperationCall, after: () => void): void {
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
