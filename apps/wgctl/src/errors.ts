/**
 * Exit codes and the one error type that carries them. Every command ends by returning an
 * exit code or throwing a CliError; main.ts turns anything else into a one-line message
 * (never a stack trace, unless --log-level debug).
 */

export const EXIT = {
  /** Success, healthy, SERVING, PASS. */
  ok: 0,
  /** The operation ran and failed (up/down/verify FAIL), status degraded, health NOT_SERVING. */
  failed: 1,
  /** Bad CLI input or config; status down/unreachable; health probe could not reach the agent. */
  usage: 2,
  /** down removed everything of ours it found, but could not restore some settings (journal unusable: see the list). */
  notRestored: 3,
} as const;

export type ExitCode = number;

/** Survives duplicated module copies (the release bundle loads commands separately). */
const CLI_ERROR = Symbol.for('wgctl.CliError');

export class CliError extends Error {
  readonly [CLI_ERROR] = true;

  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function isCliError(error: unknown): error is CliError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[CLI_ERROR] === true;
}

/** Bad input from the user (flags, arguments, config): exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
