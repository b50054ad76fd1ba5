/**
 * The VM side, exact and idempotent: Up (up.ts), Down (down.ts), Describe (describe.ts), the
 * status sample (sample.ts) and the reconcile at start-up. Each is a list of named steps over
 * one context (context.ts); this shell checks requests and runs one operation at a time.
 *
 * Every change is written to the journal before it is made, so a new process (after kill -9
 * or a reboot) knows what is its own. Up and Down are serialized (the kit's OperationGate): a
 * second one while another runs is refused at once with BusyError (ABORTED at the RPC layer).
 * Transport-free: ../server.ts maps what it returns to wgctl.v1.VmAgent.
 */
import { BACKGROUND_AFTER_OPERATION_MS, OperationGate, type OperationContext, type OperationOutcome } from '@wgctl/agent-kit';
import { silentLogger, type Logger } from '@wgctl/logging';
import { normalizeMacSource, normalizeMacSource6, validateHandshakeTimeout, validateInterfaceName } from '../validation';
import { handshakeThresholdS, type DownRequest, type EngineScope, type UpRequest, type VmEngineOptions } from './context';
import { describe, type TunnelDescription, type UpFollows } from './describe';
import { runDown } from './down';
import { DEFAULT_LIVENESS_TIMINGS, type LivenessReport } from './liveness';
import { LivenessMonitor, tunnelWhileUp } from './liveness-monitor';
import { sample, type VmSample } from './sample';
import { SelfHeal, type HealsSoFar } from './self-heal';
import { runUp } from './up';

export { DEFAULT_HANDSHAKE_THRESHOLD_S, DEFAULT_HANDSHAKE_TIMEOUT_MS, type DownRequest, type UpRequest, type VmEngineOptions } from './context';
export type { TunnelDescription } from './describe';
export type { HealReport, HealsSoFar } from './self-heal';
export type { PeerStatus, VmSample, VmStatusReport } from './sample';
export { withLivenessNow } from './sample';

export class VmEngine {
  private readonly scope: EngineScope;
  private readonly gate: OperationGate;
  private readonly logger: Logger;
  /** While up: what Up applied is put back when removed (paused around every Up and Down). */
  private readonly selfHeal: SelfHeal | undefined;

  constructor(private readonly options: VmEngineOptions) {
    this.logger = options.logger ?? silentLogger();
    const now = options.now ?? Date.now;
    this.gate = new OperationGate('vm-agent', now);
    this.scope = { options, gate: this.gate, logger: this.logger, now, backend: undefined };
    this.scope.liveness = new LivenessMonitor({
      runner: options.runner,
      now,
      timings: options.livenessTimings ?? DEFAULT_LIVENESS_TIMINGS,
      target: tunnelWhileUp(options.journal),
      logger: this.logger,
    });
    this.selfHeal = options.selfHeal ? new SelfHeal(this.scope, options.selfHeal) : undefined;
  }

  /** Heals made while up since the agent started, and the last one (Status); undefined: not healing. */
  get heals(): HealsSoFar | undefined {
    return this.selfHeal && { count: this.selfHeal.heals, last: this.selfHeal.lastHeal };
  }

  /** Up and Down never run beside a heal: the watcher pauses (a heal in flight ends) first, and resumes when the journal says up. */
  private async withWatcherPaused(run: () => Promise<OperationOutcome>): Promise<OperationOutcome> {
    await this.selfHeal?.pause();
    try {
      return await run();
    } finally {
      // Once the caller's next steps have had the CPU (BACKGROUND_AFTER_OPERATION_MS).
      setTimeout(() => void this.selfHeal?.resume(), BACKGROUND_AFTER_OPERATION_MS).unref();
    }
  }

  /**
   * Stops taking work (SIGTERM): the Up or Down in flight finishes the step it is in, then
   * ends without a rollback (the journal keeps what it applied; the next start reconciles).
   * Resolves once nothing runs.
   */
  stop(reason: string): Promise<void> {
    void this.selfHeal?.close();
    return this.gate.stop(reason);
  }

  get stopping(): boolean {
    return this.gate.stopping;
  }

  /** Replies through the tunnel: started by the running agent (run.ts), not by tests of the engine. */
  get liveness(): LivenessMonitor {
    return this.scope.liveness!;
  }

  get configPath(): string {
    return this.options.configPath;
  }

  /** The liveness monitor's report as it is now; undefined while it does not run (see withLivenessNow). */
  livenessNow(): LivenessReport | undefined {
    const monitor = this.scope.liveness;
    return monitor?.started ? monitor.report() : undefined;
  }

  get handshakeThresholdS(): number {
    return handshakeThresholdS(this.scope);
  }

  /** Who is busy, for messages; null when idle. */
  get running(): { op: string; sinceMs: number } | null {
    return this.gate.running;
  }

  /** The iptables backend, once known ('' before): AgentInfo's driver. */
  get driverName(): string {
    return this.scope.backend ? `iptables-${this.scope.backend.kind}` : '';
  }

  /** `upFollows`: the caller (its address) sends an Up next: that Up's first reads start now. */
  describe(upFollows?: UpFollows): Promise<TunnelDescription> {
    return describe(this.scope, upFollows);
  }

  /**
   * Rejects before anything runs: InvalidRequestError (a bad argument), StoppingError, BusyError.
   * `ctx.signal`: the caller went away — the Up ends before its next step and is rolled back.
   */
  async up(request: UpRequest, ctx: OperationContext = {}): Promise<OperationOutcome> {
    const macSource = normalizeMacSource(request.macSource);
    const macSource6 = request.macSource6 ? normalizeMacSource6(request.macSource6) : undefined;
    if (request.lanInterface) validateInterfaceName('lan_interface', request.lanInterface);
    if (request.handshakeTimeoutMs) validateHandshakeTimeout(request.handshakeTimeoutMs);
    return this.withWatcherPaused(() => this.gate.run('Up', () => runUp(this.scope, { ...request, macSource, macSource6 }, ctx)));
  }

  /**
   * Rejects before anything runs when stopping or busy (see up()). Ended early (agent stopping,
   * caller gone), the journal says down-in-progress: the next Down or start finishes it.
   */
  async down(request: DownRequest, ctx: OperationContext = {}): Promise<OperationOutcome> {
    return this.withWatcherPaused(() => this.gate.run('Down', () => runDown(this.scope, request, ctx)));
  }

  /**
   * After a crash, a stop or a reboot: a journal in phase up-in-progress/down-in-progress means
   * the previous process ended mid-operation — everything it lists is removed (fail closed; the
   * controller runs Up again). Phase up means the tunnel should be up: Up runs again with the
   * recorded Mac source (a no-op when all is in place, a repair after a reboot).
   */
  async reconcile(ctx: OperationContext = {}): Promise<OperationOutcome | null> {
    const record = await this.options.journal.read();
    if (!record) return null;
    if (record.phase === 'up') {
      this.logger.info('reconcile: journal says up; re-applying', { mac: record.macSource, interface: record.interface });
      return this.up({ macSource: record.macSource, lanInterface: record.lanInterface, macSource6: record.v6?.macSource }, ctx);
    }
    this.logger.warn(`reconcile: the previous process stopped during ${record.phase === 'up-in-progress' ? 'Up' : 'Down'}; removing what it applied`);
    return this.down({}, ctx);
  }

  /** Read-only; the health sampler calls it in the background. */
  sample(): Promise<VmSample> {
    return sample(this.scope);
  }
}
