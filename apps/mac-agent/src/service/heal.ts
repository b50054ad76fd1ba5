/**
 * Self-healing while up: what the agent applied is put back when something else undoes it —
 * within 2 s, logged with what changed and, where the OS tells, who changed it; counted.
 *
 * - Routes (split routes, IPv6 split routes, server pins) and DNS: the routing monitor's path
 *   (roam.ts) puts them back; it reports each heal here (HealLog). DNS changed without a routing
 *   event is heard through the driver's DNS watch (host/dns-watch.ts: inotify on the managed
 *   resolv.conf's directory, `scutil` on configd's DNS keys) and put back the same way.
 * - The kill switch: SelfHealing below. Events where the driver has them (`nft monitor`), a
 *   periodic cheap look (PF has no events: every second), see host/kill-switch-watch.ts. Also
 *   while a kill-switch-only Up holds the host fail-closed (journal up-in-progress).
 *
 * Never beside an Up or Down: every check runs in the engine's queue, none is started while a
 * requested operation runs, and a Down stops the watch before it changes anything (beforeDown).
 */
import { BACKGROUND_AFTER_OPERATION_MS } from '@wgctl/agent-kit';
import type { Logger } from '@wgctl/logging';
import { formatArgv, ObservedRunner, SupervisedMonitor } from '@wgctl/runner';
import type { HostNetworkDriver } from '../host/driver';
import type { KillSwitchWatch } from '../host/kill-switch-watch';
import { ensureKillSwitch, messageOf, type EngineCore, type Exclusive } from './core';
import type { MacJournal } from './journal';
import type { SpawnStreaming } from './roam';

/** One thing put back. */
export interface Heal {
  atMs: number;
  what: 'kill-switch' | 'route' | 'dns';
  /** What was found changed. */
  detail: string;
  /** Who changed it, when the OS says (`pid 312`, `process 3176 (nft)`), else ''. */
  by: string;
  /** What found it (`nft monitor: delete table inet wgctl`, `periodic look`, `file event: rename /etc/resolv.conf`), '' when not told. */
  trigger?: string;
}

export interface HealSummary {
  count: number;
  last: Heal | null;
}

/** The heals since start: counted, the last one kept, each logged. */
export class HealLog {
  private count = 0;
  private last: Heal | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    /** Told of each heal (the agent re-samples its health: the host changed). */
    private readonly onHeal?: (heal: Heal) => void,
  ) {}

  /** Counts a heal and logs it (`message`, default `self-heal: <what> put back`) with what was found and who did it. */
  record(heal: Omit<Heal, 'atMs'>, fields: Record<string, unknown> = {}, message = `self-heal: ${heal.what} put back`): void {
    this.count++;
    this.last = { ...heal, atMs: this.now() };
    this.logger.warn(message, { found: heal.detail, by: heal.by || 'unknown (not reported by the OS)', heals: this.count, ...fields });
    this.onHeal?.(this.last);
  }

  summary(): HealSummary {
    return { count: this.count, last: this.last };
  }
}

export interface SelfHealingOptions {
  core: EngineCore;
  exclusive: Exclusive;
  /** Whether a requested Up or Down runs: no check is started beside it. */
  operationRunning: () => boolean;
  spawnMonitor: SpawnStreaming;
  log: HealLog;
  /** The periodic look's interval (undefined: the driver's default; 0: none). */
  checkMs?: number;
  /** After a failed re-load, the next try waits this long (default 5000). */
  retryMs?: number;
}

/** A watch for drivers without one of their own: the full read-back, periodically. */
function readBackWatch(driver: HostNetworkDriver): KillSwitchWatch {
  return {
    defaultCheckMs: 1_000,
    async quickCheck(run, policy, handle) {
      const live = await driver.readKillSwitch(run, policy, handle ?? undefined);
      return live.loaded && live.enabled && live.problems.length === 0 ? '' : live.problems.join('; ') || 'not in force';
    },
  };
}

/** Whether the journal holds a kill switch the watch must keep: up, or a kill-switch-only Up that succeeded. */
function killSwitchWatched(j: MacJournal): j is MacJournal & { killSwitch: NonNullable<MacJournal['killSwitch']> } {
  if (!j.killSwitch) return false;
  return j.phase === 'up' || (j.phase === 'up-in-progress' && j.intent?.killSwitchOnly === true && !j.lastError);
}

/** Keeps the kill switch in force while up: events, a periodic look, a re-load when it drifted. */
export class SelfHealing {
  private readonly core: EngineCore;
  private readonly watch: KillSwitchWatch;
  private readonly checkMs: number;
  private wanted = false;
  private closed = false;
  private timer?: NodeJS.Timeout;
  /** The driver's event source, when it has one (`nft monitor`; PF has none). */
  private readonly monitor: SupervisedMonitor | undefined;
  /** A check is queued and has not started: another trigger adds nothing. */
  private checkQueued = false;
  /** Who changed the rules, from the events since the last check started. */
  private reportedBy: string[] = [];
  /** What asked for the queued check (monitor lines, the periodic look). */
  private triggeredBy: string[] = [];
  /** A finding a re-load did not clear (e.g. `com.apple/*` gone from the main ruleset): not re-loaded again every tick. */
  private lastUnhealed = '';
  private retryNotBefore = 0;

  constructor(private readonly options: SelfHealingOptions) {
    this.core = options.core;
    this.watch = this.core.driver.killSwitchWatch?.() ?? readBackWatch(this.core.driver);
    this.checkMs = options.checkMs ?? this.watch.defaultCheckMs;
    const watch = this.watch;
    if (!watch.monitorArgv || !watch.classifyMonitorLine) return;
    const argv = watch.monitorArgv();
    this.monitor = new SupervisedMonitor({
      spawn: options.spawnMonitor,
      argv,
      onLine: (line) => {
        const change = watch.classifyMonitorLine?.(line);
        if (!change) return;
        this.core.logger.debug('kill switch changed', { change: change.what, by: change.by });
        if (change.by) this.reportedBy.push(change.by);
        this.trigger(`monitor: ${change.what}`);
      },
      onStart: (proc) => {
        this.core.logger.info('watching the kill switch', { argv: formatArgv(argv), pid: proc.pid, checkMs: this.checkMs });
        // A change between the Up's verify and the monitor listening would go unseen: one look now.
        this.trigger('monitor started');
      },
      onExit: (exit, stderr) => {
        this.core.logger.warn('kill switch monitor exited; restarting', { argv: formatArgv(argv), code: exit.code, signal: exit.signal, stderr: stderr.join(' | ') });
      },
    });
  }

  /** Whether the kill switch is being watched. */
  get watching(): boolean {
    return this.wanted;
  }

  /** After an Up (full, or kill-switch-only): watch from now on; a second call changes nothing. */
  start(): void {
    if (this.closed || this.wanted) return;
    this.wanted = true;
    this.lastUnhealed = '';
    this.retryNotBefore = 0;
    if (this.checkMs > 0) {
      this.timer = setInterval(() => this.trigger('periodic look'), this.checkMs);
      this.timer.unref();
    }
    // The monitor is spawned off the Up's path (BACKGROUND_AFTER_OPERATION_MS); its first check
    // sees a change made meanwhile.
    setTimeout(() => {
      if (this.wanted && !this.closed) this.monitor?.start();
    }, BACKGROUND_AFTER_OPERATION_MS).unref();
  }

  /** Down: no more checks, no monitor. A check already queued finds the watch stopped. */
  async stop(): Promise<void> {
    this.wanted = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.monitor?.stop();
  }

  close(): Promise<void> {
    this.closed = true;
    return this.stop();
  }

  /** Queues one check, unless one is queued already, an Up or Down runs, or the watch is off. */
  private trigger(source: string): void {
    if (this.triggeredBy.length < 8 && !this.triggeredBy.includes(source)) this.triggeredBy.push(source);
    if (this.checkQueued || !this.wanted || this.closed || this.options.operationRunning()) return;
    this.checkQueued = true;
    void this.options
      .exclusive(() => {
        this.checkQueued = false;
        return this.check();
      })
      .catch((e) => {
        // A look that cannot be taken (pfctl/nft failing) is not retried every second.
        this.retryNotBefore = this.core.now() + (this.options.retryMs ?? 5_000);
        this.core.logger.error('self-heal check failed', { error: messageOf(e) });
      });
  }

  /** The cheap look; when something is amiss, the kill switch re-loaded from the journal and read back. */
  private async check(): Promise<void> {
    const { core } = this;
    const by = [...new Set(this.reportedBy)].join(', ');
    const trigger = this.triggeredBy.join(', ');
    this.reportedBy = [];
    this.triggeredBy = [];
    const j = core.loadJournal();
    if (!this.wanted || !killSwitchWatched(j) || core.now() < this.retryNotBefore) return;
    const { policy, handle } = j.killSwitch;
    const finding = await this.watch.quickCheck(core.runner, policy, handle);
    if (!finding) {
      this.lastUnhealed = '';
      return;
    }
    if (finding === this.lastUnhealed) return;
    await this.reload(j, finding, by, trigger);
  }

  private async reload(j: MacJournal & { killSwitch: NonNullable<MacJournal['killSwitch']> }, finding: string, by: string, trigger: string): Promise<void> {
    const { core } = this;
    const started = core.now();
    const commands: string[] = [];
    const run = new ObservedRunner(core.runner, (r) => commands.push(formatArgv(r.argv)));
    const { policy } = j.killSwitch;
    try {
      // Loaded without a look at the live one: the look just found it wrong. A token still held is reused.
      await ensureKillSwitch(core.driver, run, j, policy, { readFirst: false, persist: () => core.persist(j) });
    } catch (e) {
      this.retryNotBefore = core.now() + (this.options.retryMs ?? 5_000);
      core.logger.error('self-heal: re-loading the kill switch failed; retrying', { found: finding, by, error: messageOf(e), commands });
      return;
    }
    const after = await core.driver.readKillSwitch(core.runner, policy, j.killSwitch.handle ?? undefined);
    this.options.log.record({ what: 'kill-switch', detail: finding, by, trigger }, { commands, tookMs: core.now() - started, stillWrong: after.problems });
    if (after.problems.length > 0) {
      this.lastUnhealed = finding;
      core.logger.error('self-heal: the kill switch was re-loaded but is still not as wanted (not re-loaded again until that changes)', { problems: after.problems });
    }
  }
}
