/**
 * Link events of the tunnel interface (`ip -o monitor link`, streamed): wireguard-go killed or
 * `ip link del` remove the interface, `ip link set down` changes its flags — each makes the
 * agent sample its health at once instead of at the next interval (up to 15 s later). The
 * monitor is restarted a second after it exits; nothing is read from it but event lines.
 */
import type { Logger } from '@wgctl/logging';
import { parseIpMonitorLine } from '@wgctl/parsers';
import { SupervisedMonitor, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';

export const LINK_MONITOR_ARGV = ['ip', '-o', 'monitor', 'link'] as const;

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
  private readonly monitor: SupervisedMonitor;

  constructor(options: LinkWatchOptions) {
    this.monitor = new SupervisedMonitor({
      spawn: options.spawn,
      argv: LINK_MONITOR_ARGV,
      onLine: (line) => {
        const event = linkEventOf(line);
        if (event && event.ifname === options.interfaceName) options.onEvent(event);
      },
      onExit: (exit, stderr) => {
        options.logger.warn('link monitor exited; restarting', { code: exit.code, signal: exit.signal, error: exit.error, stderr: stderr.join(' | ') });
      },
    });
  }

  start(): void {
    this.monitor.start();
  }

  stop(): Promise<void> {
    return this.monitor.stop();
  }
}
