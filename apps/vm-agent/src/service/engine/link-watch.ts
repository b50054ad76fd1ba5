/**
 * Link events of the tunnel interface (`ip -o monitor link`, streamed): wireguard-go killed or
 * `ip link del` remove the interface, `ip link set down` changes its flags — each makes the
 * agent sample its health at once instead of at the next interval (up to 15 s later). The
 * monitor is restarted a second after it exits; nothing is read from it but event lines.
 */
import type { Logger } from '@wgctl/logging';
import { parseIpMonitorLine } from '@wgctl/parsers';
import type { StreamingOptions, StreamingProcess } from '@wgctl/runner';

export const LINK_MONITOR_ARGV = ['ip', '-o', 'monitor', 'link'] as const;
const RESTART_DELAY_MS = 1_000;

export interface LinkEvent {
  ifname: string;
  deleted: boolean;
  flags: string[];
}

/** The link event on one `ip -o monitor link` line; null for anything else (or unreadable). */
export function linkEventOf(line: string): LinkEvent | null {
  try {
    const event = parseIpMonitorLine(line);
    return event.object === 'link' ? { ifname: event.link.ifname, deleted: event.deleted, flags: event.link.flags } : null;
  } catch {
    return null;
  }
}

export interface LinkWatchOptions {
  spawn: (argv: readonly string[], options: StreamingOptions) => StreamingProcess;
  /** The tunnel interface (wg-quick names it after the config file). */
  interfaceName: string;
  onEvent: (event: LinkEvent) => void;
  logger: Logger;
}

export class LinkWatch {
  private proc: StreamingProcess | undefined;
  private restart: NodeJS.Timeout | undefined;
  private wanted = false;

  constructor(private readonly options: LinkWatchOptions) {}

  start(): void {
    this.wanted = true;
    if (this.proc) return;
    const proc = this.options.spawn(LINK_MONITOR_ARGV, {
      onLine: (line) => {
        const event = linkEventOf(line);
        if (event && event.ifname === this.options.interfaceName) this.options.onEvent(event);
      },
      onExit: (exit) => {
        if (this.proc === proc) this.proc = undefined;
        if (!this.wanted) return;
        this.options.logger.warn('link monitor exited; restarting', { code: exit.code, signal: exit.signal, error: exit.error, stderr: proc.stderrTail().join(' | ') });
        this.restart = setTimeout(() => this.start(), RESTART_DELAY_MS);
        this.restart.unref();
      },
    });
    this.proc = proc;
  }

  async stop(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restart);
    const proc = this.proc;
    this.proc = undefined;
    if (proc) await proc.stop(500);
  }
}
