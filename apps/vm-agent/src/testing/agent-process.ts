/**
 * End-to-end helpers: build the real vm-agent bundle (and the test client) with esbuild, run
 * the agent inside the lab's VM namespace as its own process (so it can be kill -9'ed), and
 * run one-shot clients from another namespace.
 */
import { join, resolve } from 'node:path';
import { spawnStreaming, type StreamExit, type StreamingProcess } from '@wgctl/runner';
import type { Runner } from '@wgctl/runner';
import { WG_USERSPACE_ENV } from './netns';

export const REPO_ROOT = resolve(__dirname, '../../../..');

/** Environment for bundles run from a scratch directory: externals from the repo, protos from proto/. */
export const BUNDLE_ENV = {
  NODE_PATH: join(REPO_ROOT, 'node_modules'),
  WGCTL_PROTO_DIR: join(REPO_ROOT, 'proto'),
  ...WG_USERSPACE_ENV,
};

/** Bundles apps/vm-agent/src/main.ts and the test client into `outDir`. */
export async function buildBundles(outDir: string): Promise<{ agent: string; client: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { build } = require('esbuild') as typeof import('esbuild');
  const agent = join(outDir, 'vm-agent.js');
  const client = join(outDir, 'client.js');
  const common = {
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    format: 'cjs' as const,
    logLevel: 'error' as const,
    external: ['@grpc/grpc-js', '@grpc/proto-loader', 'grpc-health-check', '@grpc/reflection'],
  };
  await build({ ...common, entryPoints: [join(REPO_ROOT, 'apps/vm-agent/src/main.ts')], outfile: agent });
  await build({ ...common, entryPoints: [join(REPO_ROOT, 'apps/vm-agent/src/testing/client-main.ts')], outfile: client });
  return { agent, client };
}

export class AgentProcess {
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  private waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  private readonly proc: StreamingProcess;

  constructor(namespace: string, bundle: string, args: string[]) {
    this.proc = spawnStreaming(['ip', 'netns', 'exec', namespace, process.execPath, bundle, ...args], {
      env: BUNDLE_ENV,
      onLine: (line) => this.push(line),
      onStderrLine: (line) => {
        this.stderr.push(line);
        this.push(line);
      },
    });
  }

  private push(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  /** `ip netns exec` execs the program: this is node's own pid. */
  get pid(): number {
    return this.proc.pid!;
  }

  get exited(): Promise<StreamExit> {
    return this.proc.exited;
  }

  /** Resolves with the first (past or future) output line containing `text`. */
  waitFor(text: string, timeoutMs = 15_000): Promise<string> {
    const seen = this.lines.find((l) => l.includes(text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not print "${text}" within ${timeoutMs} ms; output:\n${this.lines.join('\n')}`)), timeoutMs);
      this.waiters.push({
        test: (line) => line.includes(text),
        resolve: (line) => {
          clearTimeout(timer);
          resolvePromise(line);
        },
      });
      void this.proc.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`agent exited before printing "${text}"; output:\n${this.lines.join('\n')}`));
      });
    });
  }

  kill9(): void {
    process.kill(this.pid, 'SIGKILL');
  }

  stop(): Promise<StreamExit> {
    return this.proc.stop(5000);
  }
}

export type ClientLine = { progress?: { kind?: { $case: string; value: Record<string, unknown> } }; result?: unknown; error?: { code: number; details: string } };

/** Runs the test client once inside `runner`'s namespace and parses its JSON lines. */
export async function runClient(runner: Runner, client: string, target: string, creds: string, command: string, arg?: unknown): Promise<ClientLine[]> {
  const argv = [process.execPath, client, target, creds, command];
  if (arg !== undefined) argv.push(typeof arg === 'string' ? arg : JSON.stringify(arg));
  const result = await runner.run(argv, { env: BUNDLE_ENV, timeoutMs: 90_000 });
  return result.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as ClientLine);
}

/** Streams the test client's lines as they arrive (for killing the agent mid-Up). */
export function streamClient(
  namespace: string,
  client: string,
  target: string,
  creds: string,
  command: string,
  arg: unknown,
  onLine: (line: ClientLine) => void,
): StreamingProcess {
  return spawnStreaming(['ip', 'netns', 'exec', namespace, process.execPath, client, target, creds, command, JSON.stringify(arg)], {
    env: BUNDLE_ENV,
    onLine: (line) => onLine(JSON.parse(line) as ClientLine),
  });
}
