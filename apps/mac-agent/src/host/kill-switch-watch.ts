/**
 * How the self-healing (service/heal.ts) watches a driver's kill switch while up: events where
 * the OS gives them (nftables: `nft monitor`), and a cheap periodic look (PF has no events).
 * A driver without a watch of its own is looked at with its full readKillSwitch.
 */
import type { Runner } from '@wgctl/runner';
import type { KillSwitchHandle, KillSwitchPolicy } from './driver';

/** A change of our rules reported by the monitor. */
export interface KillSwitchChange {
  /** Who made it, when the monitor says (`process 3176 (nft)`), else ''. */
  by: string;
  /** What changed, as the monitor printed it (first lines). */
  what: string;
}

export interface KillSwitchWatch {
  /** How often to look by default (ms): often when there are no events, rarely as a backstop. */
  readonly defaultCheckMs: number;
  /** argv of a process that reports ruleset changes as they happen; absent when the OS has none. */
  monitorArgv?(): string[];
  /**
   * Feeds one line of that process's output (events span lines: stateful); returns a change of
   * our rules once the event that holds it is complete, else null.
   */
  classifyMonitorLine?(line: string): KillSwitchChange | null;
  /** A cheap look at the live kill switch: '' when it looks in force, else what is wrong. */
  quickCheck(run: Runner, policy: KillSwitchPolicy, handle: KillSwitchHandle | null): Promise<string>;
}
