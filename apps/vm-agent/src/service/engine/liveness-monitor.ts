/**
 * Runs the liveness decision (liveness.ts) while the tunnel is up: reads the peers' rx
 * counters (`wg show IF dump`, one process) every pollMs and at each deadline, sends the probe
 * the decision asks for, and tells `onChange` when the verdict changes (the agent samples its
 * health again at once). A link event (link-watch.ts) makes it read at once.
 */
import type { Logger } from '@wgctl/logging';
import type { Runner } from '@wgctl/runner';
import { wgShowDump } from '../../host/wireguard';
import type { JournalStore } from '../journal';
import { livenessReport, livenessState, observeRx, probeArgv, probeTargetFor, type LivenessMemory, type LivenessReport, type LivenessTimings } from './liveness';

export interface LivenessMonitorOptions {
  runner: Runner;
  now: () => number;
  timings: LivenessTimings;
  /** The interface to watch (the tunnel's while the journal says up); null: nothing to watch. */
  target: () => Promise<string | null>;
  logger: Logger;
}

/** The tunnel interface while the journal says up (an Up in progress awaits its own handshake). */
export function tunnelWhileUp(journal: JournalStore): () => Promise<string | null> {
  return async () => {
    const record = await journal.read().catch(() => null);
    return record?.phase === 'up' ? record.interface : null;
  };
}

/** ping waits 1 s at most (-w 1); this only guards against a hung process. */
const PROBE_TIMEOUT_MS = 5_000;

export class LivenessMonitor {
  private memory: LivenessMemory | null = null;
  private probeTarget = '';
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private readAgain = false;
  private onChange: ((report: LivenessReport) => void) | undefined;
  /** Why the last probe could not be sent ('' when it was). */
  private probeError = '';

  constructor(private readonly options: LivenessMonitorOptions) {}

  get started(): boolean {
    return this.onChange !== undefined;
  }

  start(onChange: (report: LivenessReport) => void): void {
    this.onChange = onChange;
    this.wake();
  }

  stop(): void {
    this.onChange = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  report(): LivenessReport {
    const report = livenessReport(this.memory, this.probeTarget, this.options.now());
    return this.probeError ? { ...report, detail: `${report.detail}; probe not sent: ${this.probeError}` } : report;
  }

  /** Reads now (or right after the reading under way), then again when the decision needs it. */
  wake(): void {
    if (!this.started) return;
    clearTimeout(this.timer);
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    const { pollMs } = this.options.timings;
    this.reading = this.readOnce()
      .catch((e: unknown) => {
        this.options.logger.warn('liveness: reading failed', { error: (e as Error).message });
        return pollMs;
      })
      .then((delayMs) => {
        this.reading = undefined;
        if (this.readAgain) {
          this.readAgain = false;
          this.wake();
        } else if (this.started) {
          this.timer = setTimeout(() => this.wake(), delayMs);
          this.timer.unref();
        }
      });
  }

  /** One reading and its probe if due; resolves to how long until the next one. */
  private async readOnce(): Promise<number> {
    const before = livenessState(this.memory);
    const deadline = await this.observe();
    const report = this.report();
    if (report.state !== before) {
      this.options.logger.log(report.state === 'dead' ? 'warn' : 'info', `liveness: ${report.state}`, { detail: report.detail });
      this.onChange?.(report);
    }
    const { pollMs } = this.options.timings;
    return deadline === null ? pollMs : Math.max(0, Math.min(pollMs, deadline - this.options.now()));
  }

  /** Returns the decision's next deadline, or null when there is nothing to watch. */
  private async observe(): Promise<number | null> {
    const { runner } = this.options;
    const ifname = await this.options.target();
    const dump = ifname ? await wgShowDump(runner, ifname).catch(() => null) : null;
    const peers = dump?.peers.filter((p) => p.endpoint) ?? [];
    const target = peers.length ? probeTargetFor(peers.flatMap((p) => p.allowedIps)) : null;
    if (!ifname || !target) {
      this.memory = null;
      return null;
    }
    const rxBytes = peers.reduce((sum, p) => sum + BigInt(p.rxBytes), 0n).toString();
    const step = observeRx(this.memory, { interface: ifname, atMs: this.options.now(), rxBytes }, this.options.timings);
    this.memory = step.memory;
    this.probeTarget = target.address;
    if (step.probe) {
      const result = await runner.run(probeArgv(ifname, target), { readOnly: true, allowFailure: true, timeoutMs: PROBE_TIMEOUT_MS });
      // 0: echo reply, 1: none (time-exceeded counts as none): both sent it. Anything else did
      // not, and an unsent probe proves nothing: it is not awaited (tried again next reading).
      const unsent = result.exitCode !== 0 && result.exitCode !== 1 ? `${result.argv.join(' ')}: exit ${result.exitCode} ${result.stderr.trim()}` : '';
      if (unsent) this.memory = { ...step.memory, probeAtMs: null };
      if (unsent && unsent !== this.probeError) this.options.logger.warn('liveness: the probe could not be sent', { error: unsent });
      this.probeError = unsent;
    }
    return step.nextDeadlineMs;
  }
}
