/**
 * The health sampler: reads the live state in the background and caches it, so that
 * grpc.health.v1 calls never spawn a process. Status answers from the cache when it is
 * fresh enough and otherwise takes one new sample (concurrent callers share it). The
 * mechanism is @wgctl/state's BackgroundSampler; the verdict policy is here.
 */
import type { Logger } from '@wgctl/logging';
import { BackgroundSampler } from '@wgctl/state';
import type { EngineStatus, MacAgentEngine } from './engine';

/**
 * A sample runs ~7 commands (`ip -j` route/addr, `nft -j list`, resolv.conf) and parses them:
 * every 5 s that was ~1% of a CPU at idle. Every 15 s costs a third; Status still reads afresh
 * when the sample is older than a second, and route/link changes are seen at once by the
 * engine's `ip monitor` / `route monitor`, so only the grpc health verdict waits for it.
 */
export const DEFAULT_HEALTH_INTERVAL_MS = 15_000;

export interface HealthSamplerOptions {
  engine: Pick<MacAgentEngine, 'status'>;
  logger: Logger;
  /** Background sampling period. Default DEFAULT_HEALTH_INTERVAL_MS. */
  intervalMs?: number;
  /** Called after every sample with the verdict (wire it to AgentServer.setHealth). */
  onHealth?: (serving: boolean, reasons: string[]) => void;
  now?: () => number;
}

export class HealthSampler {
  private readonly sampler: BackgroundSampler<EngineStatus>;
  private lastServing?: boolean;
  private readonly now: () => number;

  constructor(private readonly options: HealthSamplerOptions) {
    this.now = options.now ?? Date.now;
    this.sampler = new BackgroundSampler(() => this.take(), {
      intervalMs: options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      onSample: (status) => this.judge(status),
    });
  }

  /** Samples taken (tests check that health calls do not add any). */
  get samples(): number {
    return this.sampler.samples;
  }

  start(): void {
    this.sampler.start();
  }

  stop(): void {
    this.sampler.stop();
  }

  /** The last sample, or undefined before the first one finished. No I/O. */
  latest(): EngineStatus | undefined {
    return this.sampler.latest;
  }

  /** Takes a sample now (shared with any sample already running). */
  refresh(): Promise<EngineStatus> {
    return this.sampler.refresh();
  }

  /** After an Up/Down: a sample that starts after it (never one begun before the change). */
  refreshAfterChange(): Promise<EngineStatus> {
    return this.sampler.refreshAfterChange();
  }

  /**
   * The cached sample if younger than maxAgeMs, else a fresh one; while the sample asked for
   * after an Up/Down is not in, that one (a Status must not report the state before the change).
   */
  async current(maxAgeMs = 1_000): Promise<EngineStatus> {
    const afterChange = this.sampler.afterChange;
    if (afterChange) return afterChange;
    const cached = this.sampler.latest;
    if (cached && this.now() - cached.sampledAtMs <= maxAgeMs) return cached;
    return this.refresh();
  }

  private take(): Promise<EngineStatus> {
    return this.options.engine.status().catch((e: unknown) => {
      const reason = `status sampling failed: ${e instanceof Error ? e.message : String(e)}`;
      this.options.logger.warn(reason);
      this.lastServing = false;
      this.options.onHealth?.(false, [reason]);
      throw e;
    });
  }

  private judge(status: EngineStatus): void {
    if (this.lastServing !== status.healthy) {
      this.options.logger.log(status.healthy ? 'info' : 'warn', status.healthy ? 'health: serving' : 'health: not serving', { reasons: status.reasons });
    }
    this.lastServing = status.healthy;
    this.options.onHealth?.(status.healthy, status.reasons);
  }
}
