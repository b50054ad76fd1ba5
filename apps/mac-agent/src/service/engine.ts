/**
 * The mac-agent's engine: Up/Down as named steps over a HostNetworkDriver (up.ts, down.ts, operation.ts), the
 * journal that makes Down work after a crash (journal.ts), the roaming loop (roam.ts), and
 * status read-back (status.ts). Transport-free (the gRPC layer in server.ts maps it to
 * wgctl.v1.MacAgent), so tests drive it in-process.
 *
 * This class holds them together: its options, the queue and the gate, reconcile at start,
 * stop and close. All operations (Up, Down, roaming, reconcile, status) run one at a time; a
 * requested Up or Down is refused while another runs (the kit's OperationGate). An Up or Down
 * that has to end early (SIGTERM, the caller cancelled) ends between two steps with no
 * rollback: see up.ts.
 */
import { BACKGROUND_AFTER_OPERATION_MS, OperationGate, type OperationOutcome, type StatusCheck } from '@wgctl/agent-kit';
import type { Logger } from '@wgctl/logging';
import { formatArgv, readTogether, SharedReadRunner, spawnStreaming, type Runner, type StepListener } from '@wgctl/runner';
import type { HostNetworkDriver, Uplink, Vnic } from '../host/driver';
import { EngineCore, messageOf } from './core';
import { HealLog, SelfHealing, type Heal, type HealSummary } from './heal';
import type { JournalStore, MacJournal, UpIntent } from './journal';
import { closePortalWindow, scheduleWindowClose } from './portal';
import { Roaming, type Roam, type RoamSummary, type SpawnStreaming } from './roam';
import { collectStatus, type EngineStatus } from './status';
import { runDown } from './down';
import type { RequestOptions, UpDownDeps } from './operation';
import { runUp } from './up';
import { validateIntent } from './validation';

export type { EngineStatus } from './status';
export type { RequestOptions } from './operation';
export type { SpawnStreaming } from './roam';
export type { Heal, HealSummary } from './heal';

export interface EngineOptions {
  driver: HostNetworkDriver;
  runner: Runner;
  journal: JournalStore;
  logger: Logger;
  /** Starts the routing monitor (tests prefix it with `ip netns exec`). */
  spawnMonitor?: SpawnStreaming;
  now?: () => number;
  /** Quiet time after the last routing event before re-reading the table. */
  roamDebounceMs?: number;
  /**
   * How long after an Up its routing monitor and DNS watch start (default
   * BACKGROUND_AFTER_OPERATION_MS: off `wgctl up`'s path; the monitor's start re-checks). 0: as
   * soon as the reply is out (tests that script the monitor).
   */
  roamWatchAfterUpMs?: number;
  /** Upper bound on that wait while events keep coming. */
  roamMaxWaitMs?: number;
  /**
   * While up, the uplink and our routes are read this often (default 5000, 0: never) and a
   * difference from the journal is handled as an event would be: `route -n monitor` may hold
   * back an event (see Roaming's lookForMissedRoutingChange).
   */
  roamBackstopMs?: number;
  /**
   * After a routing-event burst DNS is checked at once and again this much later (default
   * 2000, 0: not again): configd rewrites DNS after a network change, possibly after our
   * first look (wg-quick waits 2 s too).
   */
  dnsRecheckMs?: number;
  /**
   * While up, the kill switch is looked at this often (default: the driver's — 1000 for PF,
   * which has no events; 10000 with `nft monitor`'s events; 0: never) and re-loaded when it
   * drifted (see heal.ts).
   */
  healCheckMs?: number;
  /** Told of each thing the self-healing put back (run.ts re-samples health). */
  onHeal?: (heal: Heal) => void;
  /** Retry interval of a re-assert that failed (journal says up, host not yet ready). */
  reassertRetryMs?: number;
  /** Test hook: hang after this Up step until the agent is stopped or killed (SIGTERM / kill -9 tests). */
  stallAfterStep?: string;
  /** Checks added to every status that do not decide health (e.g. certificate expiry). */
  advisoryChecks?: () => StatusCheck[];
}

export class MacAgentEngine {
  private readonly core: EngineCore;
  /** The requested Up/Down: one at a time, none once stopping. */
  private readonly gate: OperationGate;
  private readonly roaming: Roaming;
  private readonly heals: HealLog;
  private readonly healing: SelfHealing;
  private readonly upDown: UpDownDeps;
  private readonly reassertRetryMs: number;
  private readonly advisoryChecks?: () => StatusCheck[];
  private queue: Promise<unknown> = Promise.resolve();
  private retryTimer?: NodeJS.Timeout;
  /** Closes an open captive-portal sign-in window at its deadline (portal.ts). */
  private portalTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(options: EngineOptions) {
    const now = options.now ?? Date.now;
    const core = (this.core = new EngineCore(options.driver, options.runner, options.journal, options.logger, now));
    this.gate = new OperationGate('mac-agent', now);
    this.reassertRetryMs = options.reassertRetryMs ?? 5_000;
    this.advisoryChecks = options.advisoryChecks;
    const heals = (this.heals = new HealLog(options.logger, now, options.onHeal));
    const operationRunning = () => this.gate.running !== null;
    this.healing = new SelfHealing({
      core,
      exclusive: (fn) => this.exclusive(fn),
      operationRunning,
      spawnMonitor: options.spawnMonitor ?? spawnStreaming,
      log: heals,
      checkMs: options.healCheckMs,
    });
    this.roaming = new Roaming({
      core,
      exclusive: (fn) => this.exclusive(fn),
      operationRunning,
      spawnMonitor: options.spawnMonitor ?? spawnStreaming,
      debounceMs: options.roamDebounceMs ?? 100,
      watchAfterUpMs: options.roamWatchAfterUpMs ?? BACKGROUND_AFTER_OPERATION_MS,
      maxWaitMs: options.roamMaxWaitMs ?? 300,
      backstopMs: options.roamBackstopMs ?? 5_000,
      dnsRecheckMs: options.dnsRecheckMs ?? 2_000,
      heals,
    });
    this.upDown = {
      core,
      gate: this.gate,
      stallAfterStep: options.stallAfterStep,
      afterUp: () => {
        this.roaming.startSoon();
        this.healing.start();
      },
      beforeDown: async () => {
        if (this.retryTimer) clearTimeout(this.retryTimer);
        await this.healing.stop();
        await this.roaming.stop();
      },
    };
  }

  /**
   * SIGTERM: an Up or Down in flight finishes the step it is in and ends there (no rollback:
   * the journal keeps it for the next start); new operations are refused; then close().
   */
  async stop(reason: string): Promise<void> {
    if (!this.gate.stopping) this.core.logger.info('stopping: an Up or Down in flight finishes its current step', { reason });
    const idle = this.gate.stop(reason);
    await this.close();
    await idle;
  }

  get stopping(): boolean {
    return this.gate.stopping;
  }

  get driverName(): string {
    return this.core.driver.name;
  }

  /** Whether the routing monitor is running (tests). */
  get watching(): boolean {
    return this.roaming.watching;
  }

  /** Roams handled since start, the last KEPT_ROAMS of them (tests and status). */
  get roams(): Roam[] {
    return this.roaming.roams;
  }

  /** Roams since start: how many, the last (Status). */
  get roamSummary(): RoamSummary {
    return this.roaming.summary;
  }

  /** Whether the kill switch is watched (tests). */
  get watchingKillSwitch(): boolean {
    return this.healing.watching;
  }

  /** What was put back since start: how many, the last (tests and status). */
  healSummary(): HealSummary {
    return this.heals.summary();
  }

  journal(): MacJournal {
    return this.core.loadJournal();
  }

  /** Runs operations one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn, fn);
    this.queue = result.catch(() => undefined);
    return result;
  }

  // -------------------------------------------------------------------- reconcile (at start)

  /**
   * On start: if the journal says up (or an Up was interrupted), re-assert it; if a Down was
   * interrupted, finish it. Never throws: failures are logged and retried.
   */
  async reconcile(): Promise<void> {
    const { logger } = this.core;
    let journal: MacJournal;
    try {
      journal = this.core.loadJournal();
    } catch (e) {
      logger.error('cannot read the journal; not reconciling', { error: messageOf(e) });
      return;
    }
    if (journal.phase === 'down-in-progress') {
      logger.warn('journal says a Down was interrupted: finishing it');
      const outcome = await this.down({ dryRun: false }, (s) => this.logStep('reconcile-down', s));
      if (!outcome.ok) logger.error('finishing the interrupted Down failed', { error: outcome.error, step: outcome.failedStep });
    } else if ((journal.phase === 'up' || journal.phase === 'up-in-progress') && journal.intent) {
      logger.info('journal says up: re-asserting', { phase: journal.phase });
      await this.reassert();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.portalTimer) clearTimeout(this.portalTimer);
    this.core.takeDnsReadAhead();
    await this.healing.close();
    await this.roaming.close();
    await this.exclusive(async () => undefined);
  }

  private logStep(operation: string, step: Parameters<StepListener>[0]): void {
    if (step.state === 'started') return;
    const level = step.state === 'failed' ? 'warn' : 'info';
    this.core.logger.log(level, `${operation}: ${step.step} ${step.state}`, {
      message: step.message,
      commands: step.commands.map((c) => formatArgv(c.argv)),
    });
  }

  private async reassert(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const journal = this.core.loadJournal();
    if (!journal.intent || (journal.phase !== 'up' && journal.phase !== 'up-in-progress')) return;
    const intent = journal.intent;
    const outcome = await this.exclusive(() => runUp(this.upDown, intent, { dryRun: false }, (s) => this.logStep('reconcile', s), 'reconcile'));
    if (outcome.ok && intent.killSwitchOnly) this.healing.start();
    if (!outcome.ok && !this.closed) {
      this.core.logger.warn('re-assert failed; the kill switch stays as it is; retrying', { step: outcome.failedStep, error: outcome.error, retryMs: this.reassertRetryMs });
      this.retryTimer = setTimeout(() => void this.reassert(), this.reassertRetryMs);
      this.retryTimer.unref();
    }
  }

  /** `wgctl portal --end`: closes the open sign-in window now; false when none is open. */
  endPortalWindow(): Promise<boolean> {
    return this.exclusive(async () => {
      const window = this.core.loadJournal().killSwitch?.policy.portalWindow;
      return window ? closePortalWindow(this.core, window.untilMs, 'ended by wgctl portal --end') : false;
    });
  }

  private schedulePortalWindowClose(): void {
    if (this.portalTimer) clearTimeout(this.portalTimer);
    scheduleWindowClose(this.core, (fn) => this.exclusive(fn), (timer) => (this.portalTimer = timer));
  }

  // ------------------------------------------------------------------------------ Up, Down

  /**
   * Throws at once, before anything runs: InvalidRequestError, StoppingError, BusyError (another
   * Up or Down runs). `signal`: the caller went away — the Up ends before its next step.
   */
  up(request: UpIntent, options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
    const intent = validateIntent(request);
    return this.gate.run('Up', () =>
      this.exclusive(async () => {
        const outcome = await runUp(this.upDown, intent, options, listener, 'request');
        // A full Up starts the watch itself (afterUp); the fail-closed state of a kill-switch-only Up is watched too.
        if (outcome.ok && intent.killSwitchOnly && !options.dryRun) this.healing.start();
        if (outcome.ok && intent.portalWindowMs && !options.dryRun) this.schedulePortalWindowClose();
        return outcome;
      }),
    );
  }

  /** Throws at once when stopping or busy (see up()); `signal`: the Down ends before its next step. */
  down(options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
    return this.gate.run('Down', () => this.exclusive(() => runDown(this.upDown, options, listener)));
  }

  // ------------------------------------------------------------------------ status, describe

  /** Reads the live state back and judges it. Spawns commands: call from the sampler or Status. */
  status(): Promise<EngineStatus> {
    return this.exclusive(() => collectStatus(this.core, this.advisoryChecks, this.heals.summary()));
  }

  /**
   * Uplink and (when known) the vnic facing the VM, read live. With the routing table they came
   * from (the very commands discoverUplink runs, read once), kept for the Up that follows.
   */
  describe(vmAddress?: string): Promise<{ uplink: Uplink | null; vnic: Vnic | null }> {
    return this.exclusive(async () => {
      const { driver } = this.core;
      const runner = new SharedReadRunner(this.core.runner);
      const address = vmAddress || this.core.loadJournal().intent?.vmAddress;
      // Independent reads, run side by side (wgctl up starts with a Describe).
      const [uplink, vnic] = await readTogether([
        driver.discoverUplink(runner),
        address ? driver.discoverVnic(runner, address).catch(() => null) : Promise.resolve(null),
      ]);
      const table = await driver.readRoutingTable?.(runner).catch(() => undefined);
      this.core.lastDescription = address && uplink && vnic && table ? { vmAddress: address, uplink, vnic, table, atMs: this.core.now() } : undefined;
      return { uplink, vnic };
    });
  }
}
