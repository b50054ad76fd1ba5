/**
 * Long-running commands whose output must be read as it comes (`ip monitor`, `route -n
 * monitor`, `tcpdump -l`): the single sanctioned exception to Runner.run, with the same
 * rules — argv only (no shell), LC_ALL=C.
 *
 * Lines are delivered complete (a partial last line is held until its newline or exit).
 * `stop()` sends SIGTERM, then SIGKILL after a grace period, and resolves on exit.
 */
import { spawn } from 'node:child_process';

export interface StreamExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all (e.g. ENOENT). */
  error?: string;
}

export interface StreamingOptions {
  /** Each complete stdout line (without its newline). */
  onLine: (line: string) => void;
  /** Each complete stderr line; by default stderr is kept (last 20 lines) for `stderrTail`. */
  onStderrLine?: (line: string) => void;
  onExit?: (exit: StreamExit) => void;
  /**
   * Written to stdin once started; stdin then stays open until the process ends (interactive
   * tools such as `scutil` read commands from it and exit at its end). Absent: stdin ends at once.
   */
  input?: string;
  /** Extra environment; LC_ALL=C is always set. */
  env?: Record<string, string>;
  baseEnv?: NodeJS.ProcessEnv;
}

export interface StreamingProcess {
  readonly argv: readonly string[];
  readonly pid: number | undefined;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<StreamExit>;
  /** The last stderr lines, for error messages. */
  stderrTail(): string[];
  /** SIGTERM, SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<StreamExit>;
}

/** Calls `emit` for every complete line in the chunks fed to it. */
function lineSplitter(emit: (line: string) => void): { push(chunk: Buffer): void; flush(): void } {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk.toString('utf8');
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        emit(pending.slice(0, newline).replace(/\r$/, ''));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    },
    flush() {
      if (pending !== '') emit(pending);
      pending = '';
    },
  };
}

export function spawnStreaming(argv: readonly string[], options: StreamingOptions): StreamingProcess {
  if (argv.length === 0) throw new Error('spawnStreaming: empty argv');
  const child = spawn(argv[0], argv.slice(1), {
    shell: false,
    env: { ...(options.baseEnv ?? process.env), ...options.env, LC_ALL: 'C', LANG: 'C' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // EPIPE when it exits first: its exit is reported anyway
  // Without input, stdin ends at once (as /dev/null would).
  if (options.input === undefined) child.stdin.end();
  else child.stdin.write(options.input);
  const tail: string[] = [];
  const safe = (fn: (line: string) => void) => (line: string) => {
    try {
      fn(line);
    } catch {
      // A throwing consumer must not kill the stream reader.
    }
  };
  const out = lineSplitter(safe(options.onLine));
  const err = lineSplitter(
    safe((line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.onStderrLine?.(line);
    }),
  );
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));

  let done = false;
  const exited = new Promise<StreamExit>((resolve) => {
    const finish = (exit: StreamExit) => {
      if (done) return;
      done = true;
      out.flush();
      err.flush();
      try {
        options.onExit?.(exit);
      } finally {
        resolve(exit);
      }
    };
    child.on('error', (e: NodeJS.ErrnoException) => finish({ code: e.code === 'ENOENT' ? 127 : null, signal: null, error: `${argv[0]}: ${e.message}` }));
    child.on('close', (code, signal) => finish({ code, signal }));
  });

  return {
    argv: [...argv],
    pid: child.pid,
    exited,
    stderrTail: () => [...tail],
    async stop(graceMs = 2_000) {
      if (!done) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (!done) child.kill('SIGKILL');
        }, graceMs);
        timer.unref();
        const exit = await exited;
        clearTimeout(timer);
        return exit;
      }
      return exited;
    },
  };
}
