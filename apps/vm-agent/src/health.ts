/**
 * The health sampler: samples the live system (link, `wg show dump`, ip_forward, iptables)
 * on an interval in the background and keeps the latest result. Health checks and Status
 * are answered from this cache, so no RPC ever spawns a process; concurrent refreshes are
 * coalesced into one sample (the mechanism is @wgctl/state's BackgroundSampler; the verdict
 * policy is here).
 */
import type { Logger } from '@wgctl/logging';
import { HealthState, VmStatus } from '@wgctl/proto';
import { BackgroundSampler } from '@wgctl/state';
import type { VmSample } from './engine';

/**
 * A sample runs `ip`, `wg show` and `iptables-save` and parses them: ~10 ms of CPU. Every 5 s
 * that was the agent's whole idle cost (~0.5% of a CPU); every 15 s it is a third of that,
 * and still well inside the 180 s handshake threshold. Up/Down sample again at once.
 */
export const DEFAULT_HEALTH_INTERVAL_MS = 15_000;

export interface HealthSamplerOptions {
  intervalMs?: number;
  /** Called when the serving verdict changes (and after the first sample). */
  onChange?: (serving: boolean, reasons: string[]) => void;
  logger?: Logger;
}

export class HealthSampler {
  private readonly sampler: BackgroundSampler<VmSample>;
  private lastVerdict: boolean | undefined;

  constructor(
    private readonly sampleFn: () => Promise<VmSample>,
    private readonly options: HealthSamplerOptions = {},
  ) {
    this.sampler = new BackgroundSampler(() => this.take(), {
      intervalMs: options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      onSample: (sample) => this.judge(sample),
    });
  }

  get intervalMs(): number {
    return this.sampler.intervalMs;
  }

  get latest(): VmSample | undefined {
    return this.sampler.latest;
  }

  /** Number of samples taken (tests check that RPCs do not cause samples). */
  get samples(): number {
    return this.sampler.samples;
  }

  start(): void {
    this.sampler.start();
  }

  stop(): void {
    this.sampler.stop();
  }

  /** Takes a sample now, or joins the one in progress. Never rejects (a failed sample is NOT_SERVING). */
  refresh(): Promise<VmSample> {
    return this.sampler.refresh();
  }

  /** After an Up/Down: a sample that starts after it (never one begun before the change). */
  refreshAfterChange(): Promise<VmSample> {
    return this.sampler.refreshAfterChange();
  }

  /**
   * The cached sample; it waits only for the first one, or for the sample asked for after a
   * change, so a Status right after an Up never reports the state from before or during it.
   */
  async current(): Promise<VmSample> {
    const afterChange = this.sampler.afterChange;
    if (afterChange) return afterChange;
    return this.sampler.latest ?? this.refresh();
  }

  private async take(): Promise<VmSample> {
    try {
      return await this.sampleFn();
    } catch (e) {
      const reason = `sampling failed: ${(e as Error).message}`;
      this.options.logger?.warn('health sample failed', { error: (e as Error).message });
      const sampledAtMs = Date.now();
      const health = { state: HealthState.HEALTH_STATE_NOT_SERVING, reasons: [reason], sampledAtMs: String(sampledAtMs) };
      const previous = this.sampler.latest;
      const status = previous ? { ...previous.status, health } : VmStatus.fromPartial({ health });
      return { status, serving: false, reasons: [reason], sampledAtMs };
    }
  }

  private judge(sample: VmSample): void {
    if (sample.serving === this.lastVerdict) return;
    this.lastVerdict = sample.serving;
    this.options.logger?.info(`health ${sample.serving ? 'SERVING' : 'NOT_SERVING'}`, { reasons: sample.reasons });
    this.options.onChange?.(sample.serving, sample.reasons);
  }
}
