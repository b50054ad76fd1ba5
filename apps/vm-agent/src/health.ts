/**
 * The health sampler: samples the live system (link, `wg show dump`, ip_forward, iptables)
 * on an interval in the background and keeps the latest result. Health checks and Status
 * are answered from this cache, so no RPC ever spawns a process; concurrent refreshes are
 * coalesced into one sample.
 */
import type { Logger } from '@wgctl/logging';
import { HealthState, VmStatus } from '@wgctl/proto';
import type { VmSample } from './engine';

export const DEFAULT_HEALTH_INTERVAL_MS = 5_000;

export interface HealthSamplerOptions {
  intervalMs?: number;
  /** Called when the serving verdict changes (and after the first sample). */
  onChange?: (serving: boolean, reasons: string[]) => void;
  logger?: Logger;
}

export class HealthSampler {
  private latestSample: VmSample | undefined;
  private inFlight: Promise<VmSample> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastVerdict: boolean | undefined;
  /** Number of samples taken (tests check that RPCs do not cause samples). */
  samples = 0;

  constructor(
    private readonly sampleFn: () => Promise<VmSample>,
    private readonly options: HealthSamplerOptions = {},
  ) {}

  get intervalMs(): number {
    return this.options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
  }

  get latest(): VmSample | undefined {
    return this.latestSample;
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

  /** Takes a sample now, or joins the one in progress. Never rejects (a failed sample is NOT_SERVING). */
  refresh(): Promise<VmSample> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.take().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** The cached sample; only when there is none yet does it wait for the first one. */
  async current(): Promise<VmSample> {
    return this.latestSample ?? this.refresh();
  }

  private async take(): Promise<VmSample> {
    let sample: VmSample;
    try {
      sample = await this.sampleFn();
    } catch (e) {
      const reason = `sampling failed: ${(e as Error).message}`;
      this.options.logger?.warn('health sample failed', { error: (e as Error).message });
      const sampledAtMs = Date.now();
      const health = { state: HealthState.HEALTH_STATE_NOT_SERVING, reasons: [reason], sampledAtMs: String(sampledAtMs) };
      const status = this.latestSample ? { ...this.latestSample.status, health } : VmStatus.fromPartial({ health });
      sample = { status, serving: false, reasons: [reason], sampledAtMs };
    }
    this.samples++;
    this.latestSample = sample;
    if (sample.serving !== this.lastVerdict) {
      this.lastVerdict = sample.serving;
      this.options.logger?.info(`health ${sample.serving ? 'SERVING' : 'NOT_SERVING'}`, { reasons: sample.reasons });
      this.options.onChange?.(sample.serving, sample.reasons);
    }
    return sample;
  }
}
