/**
 * The health sampler: reads the live state in the background and caches it, so that
 * grpc.health.v1 calls never spawn a process. Status answers from the cache when it is
 * fresh enough and otherwise takes one new sample (concurrent callers share it).
 */
import type { Logger } from '@wgctl/logging';
import type { EngineStatus, MacAgentEngine } from './engine';

export interface HealthSamplerOptions {
  engine: Pick<MacAgentEngine, 'status'>;
  logger: Logger;
  /** Background sampling period. Default 5 s. */
  intervalMs?: number;
  /** Called after every sample with the verdict (wire it to AgentServer.setHealth). */
  onHealth?: (serving: boolean, reasons: string[]) => void;
  now?: () => number;
}

export class HealthSampler {
  private latestSample?: EngineStatus;
  private inFlight?: Promise<EngineStatus>;
  private timer?: NodeJS.Timeout;
  private lastServing?: boolean;
  private readonly intervalMs: number;
  private readonly now: () => number;
  /** Samples taken (tests check that health calls do not add any). */
  samples = 0;

  constructor(private readonly options: HealthSamplerOptions) {
    this.intervalMs = options.intervalMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The last sample, or undefined before the first one finished. No I/O. */
  latest(): EngineStatus | undefined {
    return this.latestSample;
  }

  /** Takes a sample now (shared with any sample already running). */
  refresh(): Promise<EngineStatus> {
    if (this.inFlight) return this.inFlight;
    const sample = this.options.engine
      .status()
      .then((status) => {
        this.samples++;
        this.latestSample = status;
        if (this.lastServing !== status.healthy) {
          this.options.logger.log(status.healthy ? 'info' : 'warn', status.healthy ? 'health: serving' : 'health: not serving', { reasons: status.reasons });
        }
        this.lastServing = status.healthy;
        this.options.onHealth?.(status.healthy, status.reasons);
        return status;
      })
      .catch((e: unknown) => {
        const reason = `status sampling failed: ${e instanceof Error ? e.message : String(e)}`;
        this.options.logger.warn(reason);
        this.lastServing = false;
        this.options.onHealth?.(false, [reason]);
        throw e;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    this.inFlight = sample;
    sample.catch(() => undefined);
    return sample;
  }

  /** The cached sample if younger than maxAgeMs, else a fresh one. */
  async current(maxAgeMs = 1_000): Promise<EngineStatus> {
    const cached = this.latestSample;
    if (cached && this.now() - cached.sampledAtMs <= maxAgeMs) return cached;
    return this.refresh();
  }
}
