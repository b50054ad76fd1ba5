/**
 * A sample of something expensive to read (commands, files), taken in the background on an
 * interval and cached, so that callers (health checks, Status) read the cache instead of
 * starting processes. A refresh while a sample is being taken joins it rather than starting
 * another. What a sample is, how a failure counts and when the cache is fresh enough are the
 * caller's.
 */
export interface BackgroundSamplerOptions<T> {
  intervalMs: number;
  /** Called with each sample once it is the latest, before refresh() resolves. */
  onSample?: (sample: T) => void;
}

export class BackgroundSampler<T> {
  private latestSample: T | undefined;
  private inFlight: Promise<T> | undefined;
  private pendingAfterChange: Promise<T> | undefined;
  /** The sample after a change while it waits to begin (refreshAfterChange with a delay). */
  private deferral: { timer: NodeJS.Timeout; begin: () => void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private taken = 0;

  constructor(
    private readonly take: () => Promise<T>,
    private readonly options: BackgroundSamplerOptions<T>,
  ) {}

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  /** The last sample, or undefined before the first one came. No I/O. */
  get latest(): T | undefined {
    return this.latestSample;
  }

  /** Samples taken so far (tests check that reads do not add any). */
  get samples(): number {
    return this.taken;
  }

  /** Samples now and then every intervalMs; the timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * After a change (an Up, a Down): a sample that STARTS after this call. One being taken may
   * have read the state before the change, so this waits for it and then samples again (or
   * joins a sample started since). Until it is in, `afterChange` is that promise.
   *
   * `delayMs`: the sample begins that much later (the caller expects another change soon and
   * its processes would compete with it); a reader that needs it (beginAfterChange) begins it
   * at once, and another change meanwhile is covered by the same sample (its own delay then).
   */
  refreshAfterChange(delayMs = 0): Promise<T> {
    const waiting = this.deferral;
    if (waiting && this.pendingAfterChange) {
      // Not begun yet, so it begins after this change too.
      clearTimeout(waiting.timer);
      if (delayMs > 0) waiting.timer = unrefTimer(setTimeout(waiting.begin, delayMs));
      else waiting.begin();
      return this.pendingAfterChange;
    }
    const maybeStale = this.inFlight?.catch(() => undefined) ?? Promise.resolve(undefined);
    const ready = delayMs > 0 ? Promise.all([maybeStale, this.deferFor(delayMs)]) : maybeStale;
    const fresh = ready.then(() => this.refresh());
    this.pendingAfterChange = fresh;
    fresh
      .finally(() => {
        if (this.pendingAfterChange === fresh) this.pendingAfterChange = undefined;
      })
      .catch(() => undefined);
    return fresh;
  }

  /** The sample asked for after the latest change, begun now if it was waiting (see refreshAfterChange); undefined when none is pending. */
  beginAfterChange(): Promise<T> | undefined {
    this.deferral?.begin();
    return this.pendingAfterChange;
  }

  private deferFor(delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const deferral = {
        timer: undefined as unknown as NodeJS.Timeout,
        begin: () => {
          clearTimeout(deferral.timer);
          if (this.deferral === deferral) this.deferral = undefined;
          resolve();
        },
      };
      deferral.timer = unrefTimer(setTimeout(deferral.begin, delayMs));
      this.deferral = deferral;
    });
  }

  /** The sample asked for by the latest refreshAfterChange() while it is not in yet. */
  get afterChange(): Promise<T> | undefined {
    return this.pendingAfterChange;
  }

  /** Takes a sample now, or joins the one being taken. Rejects when `take` does (the cache keeps the last sample). */
  refresh(): Promise<T> {
    if (this.inFlight) return this.inFlight;
    const sample = new Promise<T>((resolve) => resolve(this.take()))
      .then((value) => {
        this.taken++;
        this.latestSample = value;
        this.options.onSample?.(value);
        return value;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    this.inFlight = sample;
    // The interval's refreshes are not awaited: a failure is the caller's to report, not an unhandled rejection.
    sample.catch(() => undefined);
    return sample;
  }
}

/** A timer that does not keep the process alive. */
function unrefTimer(timer: NodeJS.Timeout): NodeJS.Timeout {
  timer.unref();
  return timer;
}
