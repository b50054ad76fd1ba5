/**
 * Why an agent's Up or Down did not run, or ended early. The gRPC layer answers the first
 * three with a status (grpc/stream.ts: INVALID_ARGUMENT, ABORTED, UNAVAILABLE); a stopped or
 * cancelled operation ends with a failed Outcome that names the step it stopped before.
 */
import { StepFailedError } from '@wgctl/runner';
import type { AgentName } from './operation';

/**
 * A request refused before anything runs. Each problem names its proto field
 * (`mac_source: …`, `endpoints[1].ip: …`) so the caller knows what to fix.
 */
export class InvalidRequestError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'InvalidRequestError';
  }
}

/** One bad field: `field: problem`. */
export function invalidField(field: string, problem: string): InvalidRequestError {
  return new InvalidRequestError([`${field}: ${problem}`]);
}

/**
 * An Up or Down asked for while another runs: refused at once, never queued — a second
 * controller must not silently redo or undo the first one's work.
 */
export class BusyError extends Error {
  constructor(
    readonly running: string,
    readonly sinceMs: number,
  ) {
    super(`another ${running} is in progress (started ${new Date(sinceMs).toISOString()}); wait for it to finish and retry`);
    this.name = 'BusyError';
  }
}

/**
 * The agent is stopping (SIGTERM). New work is refused; the operation in flight ends after its
 * current step with no rollback: the journal keeps what was applied, the next start reconciles.
 */
export class StoppingError extends Error {
  constructor(
    readonly agent: AgentName,
    readonly reason: string,
    readonly beforeStep?: string,
  ) {
    super(
      beforeStep
        ? `the ${agent} is stopping (${reason}): it finished its current step and stopped before ${beforeStep}; ` +
            'its journal keeps what was applied and its next start reconciles it (run `wgctl status`, then `wgctl up` or `wgctl down`)'
        : `the ${agent} is stopping (${reason}): no new Up or Down; try again once it has restarted`,
    );
    this.name = 'StoppingError';
  }
}

/** The caller went away (cancelled the call, or its deadline passed): the operation ended before `beforeStep`. */
export class CancelledError extends Error {
  constructor(readonly beforeStep?: string) {
    super(`cancelled${beforeStep ? ` before ${beforeStep}` : ''}: the caller went away or its deadline passed`);
    this.name = 'CancelledError';
  }
}

/** What a step threw, without the StepFailedError that names the step. */
export function stepCause(e: unknown): unknown {
  return e instanceof StepFailedError ? e.cause : e;
}
