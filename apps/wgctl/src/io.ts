/**
 * Where a command writes and what it knows about its surroundings. Commands never touch
 * process.stdout/env directly so tests can run the whole CLI in-process.
 */
export interface Writable {
  write(chunk: string): unknown;
}

export interface CliIo {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /**
   * Lets a long-running command handle Ctrl-C. The handler answers 'exit' to let the process
   * quit (exit code 130). Returns the function that unregisters it.
   */
  onInterrupt?: (handler: () => 'handled' | 'exit') => () => void;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    // Lazy: touching process.stdin loads readline and fs/promises, which --help never needs.
    get stdin() {
      return process.stdin;
    },
    env: process.env,
    onInterrupt(handler) {
      const listener = () => {
        if (handler() === 'exit') process.exit(130);
      };
      process.on('SIGINT', listener);
      return () => process.off('SIGINT', listener);
    },
  };
}
