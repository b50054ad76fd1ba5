/**
 * The agents' health sampler: the live system is read in the background on an interval and
 * cached (@wgctl/state's BackgroundSampler), so grpc.health.v1 checks never spawn a process,
 * and Status answers from the cache while it is young enough. What a sample is and what makes
 * it healthy are the agent's; when to sample and what a failed sample means are here.
 *
 * A failed sample is NOT_SERVING (logged, told to onVerdict) and is not cached over the last
 * good one: the next current() samples again rather than answer from before the failure.
 */
import type { Logger } from '@wgctl/logging';
import { BackgroundSampler } from '@wgctl/state';

/**
 * A sample reads a handful of commands (routes, links, rules, `wg show`) and parses them:
 * every 5 s that was ~0.5-1% of a CPU at idle, every 15 s a third of that — still far inside
 * the 180 s handshake threshold. Up and Down sample again at once; routing changes reach the
 * mac-agent's engine through its monitor, not through this.
 */
export const DEFAULT_HEALTH_INTERVAL_MS = 15_000;

/**
 * How long the sample after an Up or Down waits to begin (refreshAfterChange's delay): past the
 * end of the reply. The Up/Down stream's `afterwards` runs on the stream's `finish`, before
 * grpc-js has handed the trailers over (http2's wantTrailers, two turns of the event loop
 * later), and the sample's processes, spawned synchronously, held the caller's end of the call
 * back ~20 ms per Up. It is pending at once all the same: a Status meanwhile begins it. Not
 * longer: grpc.health.v1 answers from the samples, and `wgctl up && wgctl health` must see the
 * Up (250 ms failed exactly that, apps/wgctl/src/__tests__/wgctl.netns.test.ts).
 */
export const SAMPLE_AFTER_REPLY_MS = 20;

/**
 * How long the watchers an Up starts wait once it has ended (the vm-agent's self-heal monitor;
 * the mac-agent's kill-switch watch, routing monitor and DNS watch), each then making its first
 * check. Past what `wgctl up` does next: the Mac's kill-switch-only Up ends while the VM's
 * `wg-quick` runs, and the Mac's full Up while the CLI exits and the first packets leave; the
 * watchers' spawns (synchronous forks) and first reads competed with both — 16 ms of `wgctl up`
 * with the sample delayed too, ~13 of it the routing monitor's (24 alternated pairs,
 * docs/BENCHMARKS.md #1). Each first check sees any change made before its watcher started.
 */
export const BACKGROUND_AFTER_OPERATION_MS = 250;

export interface HealthVerdict {
  serving: boolean;
  /** Why not serving; empty when serving. */
  reasons: string[];
}

export interface HealthSamplerOptions<T> {
  /** One read of the live system (spawns processes). */
  sample: () => Promise<T>;
  /** Whether a sample is healthy and, if not, why. */
  verdict: (sample: T) => HealthVerdict;
  intervalMs?: number;
  /** Told the verdict after the first sample and whenever it changes (wire it to AgentServer.setHealth). */
  onVerdict?: (serving: boolean, reasons: string[]) => void;
  logger?: Logger;
  now?: () => number;
}

export class HealthSampler<T extends { sampledAtMs: number }> {
  private readonly sampler: BackgroundSampler<T>;
  private readonly now: () => number;
  private lastServing: boolean | undefined;
  /** The latest sample attempt failed: the cache is from before that. */
  private failing = false;

  constructor(private readonly options: HealthSamplerOptions<T>) {
    this.now = options.now ?? Date.now;
    this.sampler = new BackgroundSampler(() => this.take(), {
      intervalMs: options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      onSample: (sample) => this.judge(options.verdict(sample)),
    });
  }

  get intervalMs(): number {
    return this.sampler.intervalMs;
  }

  /** The last sample, or undefined before the first one. No I/O. */
  get latest(): T | undefined {
    return this.sampler.latest;
  }

  /** Samples taken (tests check that health checks and cached reads add none). */
  get samples(): number {
    return this.sampler.samples;
  }

  start(): void {
    this.sampler.start();
  }

  stop(): void {
    this.sampler.stop();
  }

  /** Takes a sample now, or joins the one being taken. Rejects when sampling fails. */
  refresh(): Promise<T> {
    return this.sampler.refresh();
  }

  /**
   * After an Up/Down: a sample that starts after it (never one begun before the change).
   * `delayMs`: begun that much later — unless Status asks for it first (current() begins it).
   */
  refreshAfterChange(delayMs = 0): Promise<T> {
    return this.sampler.refreshAfterChange(delayMs);
  }

  /**
   * What Status answers with: the sample asked for after an Up/Down while it is not in (never
   * the state from before the change), else the cached one if younger than maxAgeMs, else a
   * new one (shared with any being taken).
   */
  async current(maxAgeMs = Infinity): Promise<T> {
    const afterChange = this.sampler.beginAfterChange();
    if (afterChange) return afterChange;
    const cached = this.sampler.latest;
    if (cached && !this.failing && this.now() - cached.sampledAtMs <= maxAgeMs) return cached;
    return this.refresh();
  }

  private async take(): Promise<T> {
    try {
      const sample = await this.options.sample();
      this.failing = false;
      return sample;
    } catch (e) {
      const reason = `status sampling failed: ${e instanceof Error ? e.message : String(e)}`;
      this.options.logger?.warn(reason);
      this.failing = true;
      this.judge({ serving: false, reasons: [reason] });
      throw e;
    }
  }

  private judge({ serving, reasons }: HealthVerdict): void {
    if (serving === this.lastServing) return;
    this.lastServing = serving;
    this.options.logger?.log(serving ? 'info' : 'warn', serving ? 'health: serving' : 'health: not serving', { reasons });
    this.options.onVerdict?.(serving, reasons);
  }
}
