/**
 * A monitor process (`route -n monitor`, `ip monitor`, `nft monitor`) kept running while it is
 * wanted: its lines handed on, restarted `restartDelayMs` after it exits (a monitor that dies
 * must not leave the agent blind), stopped for good by stop(). What an exit means (a log line;
 * a tool that is missing is not restarted) is the owner's to say in onExit.
 */
import type { StreamExit, StreamingOptions, StreamingProcess } from './stream';

export interface SupervisedMonitorOptions {
  spawn: (argv: readonly string[], options: StreamingOptions) => StreamingProcess;
  argv: readonly string[];
  /** Written to its stdin at each start, which then stays open (see StreamingOptions.input). */
  input?: string;
  onLine: (line: string) => void;
  /** Each start, the first and every restart (e.g. one look for what changed before it listened). */
  onStart?: (proc: StreamingProcess) => void;
  /** Each exit while wanted, with stderr's last lines; false: not restarted. */
  onExit?: (exit: StreamExit, stderrTail: string[]) => boolean | void;
  /** Default 1000 ms. */
  restartDelayMs?: number;
}

export class SupervisedMonitor {
  private proc: StreamingProcess | undefined;
  private restart: NodeJS.Timeout | undefined;
  private wanted = false;

  constructor(private readonly options: SupervisedMonitorOptions) {}

  /** The process while it runs. */
  get running(): StreamingProcess | undefined {
    return this.proc;
  }

  /** Starts it unless it runs; from now on it is restarted after each exit until stop(). */
  start(): void {
    this.wanted = true;
    if (this.proc) return;
    const proc = this.options.spawn(this.options.argv, {
      input: this.options.input,
      onLine: (line) => this.options.onLine(line),
      onExit: (exit) => {
        if (this.proc !== proc) return; // stopped (or replaced) meanwhile
        this.proc = undefined;
        if (!this.wanted) return;
        if (this.options.onExit?.(exit, proc.stderrTail()) === false) return;
        this.restart = setTimeout(() => {
          this.restart = undefined;
          if (this.wanted) this.start();
        }, this.options.restartDelayMs ?? 1_000);
        this.restart.unref();
      },
    });
    this.proc = proc;
    this.options.onStart?.(proc);
  }

  /** Stops it (SIGTERM, SIGKILL after `graceMs`) and any restart pending. */
  async stop(graceMs = 500): Promise<void> {
    this.wanted = false;
    if (this.restart) clearTimeout(this.restart);
    this.restart = undefined;
    const proc = this.proc;
    this.proc = undefined;
    if (proc) await proc.stop(graceMs);
  }
}
