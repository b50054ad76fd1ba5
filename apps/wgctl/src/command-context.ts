/**
 * What every command receives: where it writes and the global flags. cli.ts builds it; the
 * commands (loaded lazily through load-commands.ts) take it — neither imports the other.
 */
import type { CliIo } from './io';

export interface GlobalOptions {
  config?: string;
  json: boolean;
  logLevel?: string;
  /** Seconds; undefined = the command's default. */
  timeout?: number;
}

export interface CommandContext {
  io: CliIo;
  global: GlobalOptions;
}
