/**
 * Log lines a stranger can cause (rejected TLS handshakes, refused calls) are rate-limited: a
 * flood must not fill the disk, yet the operator must learn that it happened and from where.
 * At most `maxPerWindow` lines per window; then one summary line when the window ends, with
 * the count of the lines not written and the peers they came from.
 */
import type winston from 'winston';

export interface RateLimitedLogOptions {
  logger: winston.Logger;
  /** What is counted, for the summary: 'rejected connections or calls'. */
  what: string;
  /** Default 20. */
  maxPerWindow?: number;
  /** Default 60 000 (one minute). */
  windowMs?: number;
  /** Default 'warn'. */
  level?: 'error' | 'warn' | 'info';
}

/** Distinct peers a summary counts one by one; the rest are counted together. */
const MAX_SUMMARY_PEERS = 16;

export class RateLimitedLog {
  readonly maxPerWindow: number;
  readonly windowMs: number;
  private readonly level: 'error' | 'warn' | 'info';
  private written = 0;
  private suppressed = 0;
  private readonly suppressedByPeer = new Map<string, number>();
  private otherPeers = 0;
  private windowTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RateLimitedLogOptions) {
    this.maxPerWindow = options.maxPerWindow ?? 20;
    this.windowMs = options.windowMs ?? 60_000;
    this.level = options.level ?? 'warn';
  }

  /** Writes the line if the window has room; else counts it (by `peer`) for the summary. */
  log(message: string, meta: Record<string, unknown>, peer = 'unknown'): void {
    this.windowTimer ??= setTimeout(() => this.endWindow(), this.windowMs).unref();
    if (this.written < this.maxPerWindow) {
      this.written += 1;
      this.options.logger.log(this.level, message, meta);
      return;
    }
    this.suppressed += 1;
    if (this.suppressedByPeer.has(peer) || this.suppressedByPeer.size < MAX_SUMMARY_PEERS) {
      this.suppressedByPeer.set(peer, (this.suppressedByPeer.get(peer) ?? 0) + 1);
    } else {
      this.otherPeers += 1;
    }
  }

  /** Writes the summary of the lines held back so far (at shutdown: nothing is lost). */
  flush(): void {
    if (this.suppressed === 0) return;
    const seconds = Math.round(this.windowMs / 1000);
    this.options.logger.log(this.level, `${this.suppressed} more ${this.options.what} in the last ${seconds} s (rate limit: ${this.maxPerWindow} lines)`, {
      suppressed: this.suppressed,
      windowMs: this.windowMs,
      peers: Object.fromEntries(this.suppressedByPeer),
      ...(this.otherPeers ? { otherPeers: this.otherPeers } : {}),
    });
    this.suppressed = 0;
    this.otherPeers = 0;
    this.suppressedByPeer.clear();
  }

  /** Flushes and stops the window timer. */
  close(): void {
    this.flush();
    clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    this.written = 0;
  }

  private endWindow(): void {
    this.windowTimer = undefined;
    this.flush();
    this.written = 0;
  }
}
