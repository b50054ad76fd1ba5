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
  /** Resolves when the user asks to stop (Ctrl-C): long-running commands watch it. */
  interrupted?: Promise<void>;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

export function line(out: Writable, text = ''): void {
  out.write(`${text}\n`);
}
