/**
 * Roaming on macOS: `route -n monitor`, whose messages span several lines, classified into
 * the RouteChange the service acts on.
 */
import { classifyRouteMonitorMessage, parseRouteMonitor, routeMonitorDestination, type RouteMonitorMessage } from '@wgctl/parsers';
import type { RouteChange } from '../driver';

export function darwinMonitorArgv(): string[] {
  return ['route', '-n', 'monitor'];
}

/**
 * Classifies `route -n monitor` output: a whole message (several lines) at once, or — as the
 * service streams it — one line at a time, in which case the lines are gathered here and the
 * line that completes a message (its sockaddr values) carries the verdict; the others are
 * `other`. RTM_IFINFO is reported on its own header line (it usually has no more lines).
 */
export class DarwinRouteMonitor {
  /** Lines of a message fed one at a time. */
  private lines: string[] = [];

  classify(block: string): RouteChange {
    if (block.includes('\n')) return classifyRouteMonitorMessages(block);
    const line = block.replace(/\r$/, '');
    if (line.trim() === '') return { kind: 'other', line };
    if (/^got message of size /.test(line.trim())) {
      this.lines = [line];
      return { kind: 'other', line };
    }
    if (/RTM_[A-Z0-9_]+: /.test(line)) {
      this.lines = this.lines.length === 1 && /^got message/.test(this.lines[0].trim()) ? [...this.lines, line] : [line];
      if (/RTM_IFINFO: /.test(line)) {
        const text = this.lines.join('\n');
        this.lines = []; // its sockaddr lines, if any, add nothing
        return classifyRouteMonitorMessages(text);
      }
      return { kind: 'other', line };
    }
    if (this.lines.length === 0) return { kind: 'other', line };
    this.lines.push(line);
    if (line.startsWith(' ') && this.lines.some((l) => /^sockaddrs: /.test(l.trim()))) {
      const text = this.lines.join('\n');
      this.lines = [];
      return classifyRouteMonitorMessages(text);
    }
    if (this.lines.length > 16) this.lines = []; // not a message we understand
    return { kind: 'other', line };
  }
}

/** The verdict on whole messages: the weightiest change among them, one with a destination preferred. */
function classifyRouteMonitorMessages(text: string): RouteChange {
  let messages: RouteMonitorMessage[];
  try {
    messages = parseRouteMonitor(text);
  } catch {
    // Unreadable: let the service re-read the routing table rather than miss a change.
    return { kind: 'link-changed', line: text.trim() };
  }
  const rank = { 'default-changed': 2, 'link-changed': 1, other: 0 } as const;
  let best: RouteChange = { kind: 'other', line: text.trim() };
  for (const message of messages) {
    const verdict = classifyRouteMonitorMessage(message);
    const summary = [message.type, ...message.sockaddrs.map((name) => message.addresses[name] ?? '')].join(' ').trim();
    const change: RouteChange = { kind: verdict.kind, line: `${summary} (${verdict.reason})` };
    const destination = routeMonitorDestination(message);
    if (destination !== undefined) change.destination = destination;
    if (message.type === 'RTM_DELETE' || message.type === 'RTM_OLDDEL') change.deleted = true;
    if (message.pid !== undefined) change.pid = message.pid;
    if (rank[change.kind] > rank[best.kind] || (best.destination === undefined && change.destination !== undefined && rank[change.kind] === rank[best.kind])) {
      best = change;
    }
  }
  return best;
}
