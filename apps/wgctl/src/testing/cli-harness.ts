/** Runs the whole CLI in-process with captured stdout/stderr (tests only). */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from '../cli';
import type { CliIo } from '../io';
import type { Lab } from './fake-agents';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  stdin?: string;
  tty?: boolean;
  /** Called with a function that simulates Ctrl-C. */
  onStart?: (interrupt: () => void) => void;
}

export async function cli(args: string[], options: RunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const handlers = new Set<() => 'handled' | 'exit'>();
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: options.tty ?? false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    stdin: Readable.from(options.stdin !== undefined ? [Buffer.from(options.stdin)] : []),
    env: { HOME: '/nonexistent-home', ...options.env },
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
  options.onStart?.(() => {
    for (const h of [...handlers]) h();
  });
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

/** A config for the lab's fake agents; returns its path. */
export function writeLabConfig(lab: Lab, extra: Record<string, unknown> = {}): string {
  const port = Number(lab.agents.vmTarget.split(':').pop());
  const path = join(lab.dir, 'config.json');
  const config = { version: 1, vm: { address: '127.0.0.1', port }, mac: { agent: lab.agents.macTarget }, tlsDir: lab.tlsDir, ...extra };
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
