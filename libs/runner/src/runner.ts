/**
 * The command runner: the only way code in this repository runs a system command.
 *
 * - argv arrays, never a shell string: an argument holding `;`, `$(…)` or a newline
 *   reaches the program unchanged.
 * - LC_ALL=C so the output formats our parsers read do not depend on the user's locale.
 * - a timeout that kills the child (SIGTERM, then SIGKILL after a grace period).
 * - stdout, stderr and the exit code are captured; `check` turns a non-zero exit into a
 *   typed CommandError that carries argv, exit code and stderr.
 */
import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Data written to the child's stdin (then closed). */
  input?: string;
  /** Kill the child after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Extra environment on top of the runner's (LC_ALL=C is always set). */
  env?: Record<string, string>;
  /** Accept these exit codes without throwing (default: only 0). */
  okExitCodes?: number[];
  /** Do not throw on a non-zero exit at all; the caller inspects the result. */
  allowFailure?: boolean;
  /** Mutating commands are recorded, not executed, by the dry-run runner. Reads pass through. */
  readOnly?: boolean;
  cwd?: string;
}

export interface RunResult {
  argv: readonly string[];
  stdout: string;
  stderr: string;
  /** -1 when the process was killed by a signal or not run. */
  exitCode: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  dryRun: boolean;
}

export interface Runner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  readonly stdout: string;
  readonly timedOut: boolean;

  constructor(result: RunResult, reason?: string) {
    const why =
      reason ??
      (result.timedOut
        ? 'timed out'
        : result.signal
          ? `killed by ${result.signal}`
          : `exit code ${result.exitCode}`);
    const tail = result.stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${formatArgv(result.argv)}: ${why}${tail ? `: ${tail}` : ''}`);
    this.name = 'CommandError';
    this.argv = result.argv;
    this.exitCode = result.exitCode;
    this.stderr = result.stderr;
    this.stdout = result.stdout;
    this.timedOut = result.timedOut;
  }
}

/** Human-readable argv, quoting only what a shell would need quoted. For logs and errors only. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

const DEFAULT_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;

export function isAccepted(result: RunResult, options: RunOptions = {}): boolean {
  if (options.allowFailure) return true;
  if (result.timedOut || result.signal) return false;
  return (options.okExitCodes ?? [0]).includes(result.exitCode);
}

/** Runs commands for real with child_process.spawn (no shell). */
export class ExecRunner implements Runner {
  constructor(private readonly baseEnv: NodeJS.ProcessEnv = process.env) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (argv.length === 0) throw new Error('runner: empty argv');
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), {
        shell: false,
        cwd: options.cwd,
        env: { ...this.baseEnv, ...options.env, LC_ALL: 'C', LANG: 'C' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
        killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      }, timeoutMs);
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => undefined); // child may exit before reading its input
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (killTimer) clearTimeout(killTimer);
        const result: RunResult = {
          argv: [...argv],
          stdout: '',
          stderr: e.code === 'ENOENT' ? `${argv[0]}: command not found` : String(e.message),
          exitCode: e.code === 'ENOENT' ? 127 : -1,
          signal: null,
          timedOut: false,
          durationMs: Date.now() - started,
          dryRun: false,
        };
        if (isAccepted(result, options)) resolve(result);
        else reject(new CommandError(result));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (killTimer) clearTimeout(killTimer);
        const result: RunResult = {
          argv: [...argv],
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          exitCode: code ?? -1,
          signal: signal ?? null,
          timedOut,
          durationMs: Date.now() - started,
          dryRun: false,
        };
        if (isAccepted(result, options)) resolve(result);
        else reject(new CommandError(result));
      });
      child.stdin.end(options.input ?? '');
    });
  }
}

/**
 * Records every command instead of running it; commands marked readOnly are passed to
 * `reads` (a real runner, or nothing) so a plan can still look at the live system.
 */
export class DryRunRunner implements Runner {
  readonly recorded: RunResult[] = [];

  constructor(private readonly reads?: Runner) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (options.readOnly && this.reads) return this.reads.run(argv, options);
    const result: RunResult = {
      argv: [...argv],
      stdout: '',
      stderr: '',
      exitCode: 0,
      signal: null,
      timedOut: false,
      durationMs: 0,
      dryRun: true,
    };
    this.recorded.push(result);
    return result;
  }
}

/** Wraps a runner so every call is reported (for streaming argv in progress events). */
export class ObservedRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    private readonly observe: (result: RunResult) => void,
  ) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    try {
      const result = await this.inner.run(argv, options);
      this.observe(result);
      return result;
    } catch (e) {
      if (e instanceof CommandError) {
        this.observe({
          argv: e.argv,
          stdout: e.stdout,
          stderr: e.stderr,
          exitCode: e.exitCode,
          signal: null,
          timedOut: e.timedOut,
          durationMs: 0,
          dryRun: false,
        });
      }
      throw e;
    }
  }
}
