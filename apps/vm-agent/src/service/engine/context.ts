/**
 * What every step of the engine works with, written once:
 * - EngineScope: the engine's lasting parts — its options, the operation gate, logger, clock,
 *   and the iptables backend once known;
 * - Operation: one Up or Down — its runner (a DryRunRunner for a dry run), the guarded step
 *   runner, the step it is at (what a failed Outcome names) and the journal's write-ahead.
 * up.ts and down.ts carry what their steps find out, one step after another, on top of it.
 */
import { existsSync } from 'node:fs';
import { GuardedStepRunner, stepCause, type OperationContext, type OperationGate, type StatusCheck } from '@wgctl/agent-kit';
import { redactText, type Logger } from '@wgctl/logging';
import { DryRunRunner, type Runner, type StepRecord } from '@wgctl/runner';
import type { HostResolver, TunnelConfig } from '../../host/config';
import type { IptablesTools } from '../../host/firewall';
import type { Sysctl } from '../../host/sysctl';
import { systemdMethodFor, type InterfaceMethod } from '../../host/wireguard';
import type { JournalRecord, JournalStore } from '../journal';
import type { LivenessTimings } from './liveness';
import type { LivenessMonitor } from './liveness-monitor';
import type { ReadsAhead } from './read-ahead';
import type { SelfHealOptions } from './self-heal';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000;
export const DEFAULT_HANDSHAKE_THRESHOLD_S = 180;

export interface VmEngineOptions {
  configPath: string;
  runner: Runner;
  sysctl: Sysctl;
  journal: JournalStore;
  logger?: Logger;
  /** auto: through systemd when it runs the system (wireguard-go must not live in the agent's cgroup), else wg-quick. */
  interfaceMethod?: 'auto' | 'wg-quick' | 'systemd';
  handshakeTimeoutMs?: number;
  handshakeThresholdS?: number;
  pollIntervalMs?: number;
  /**
   * Where wireguard-go keeps its control sockets (WG_SOCKET_DIR): the handshake is read there
   * when it serves the interface, instead of a `wg show` process. Unset: always `wg show`.
   */
  wgSocketDir?: string;
  resolver?: HostResolver;
  now?: () => number;
  /** sd_booted(3): /run/systemd/system exists. */
  systemdRunning?: () => boolean;
  /** Test hook (WGCTL_TEST_STALL_AFTER_STEP): after this Up step, wait until the agent stops or the caller goes away. */
  stallAfterStep?: string;
  /** Checks added to every Status sample that do not decide health (e.g. certificate expiry). */
  advisoryChecks?: () => StatusCheck[];
  /** The liveness probe's timings (liveness.ts; default DEFAULT_LIVENESS_TIMINGS). */
  livenessTimings?: LivenessTimings;
  /** While up, put back what was removed (self-heal.ts); undefined: not watched. */
  selfHeal?: SelfHealOptions;
}

export interface UpRequest {
  macSource: string;
  /** The Mac's IPv6 source to forward and SNAT too (NAT66); empty/undefined: IPv4 only. */
  macSource6?: string;
  lanInterface?: string;
  dryRun?: boolean;
  handshakeTimeoutMs?: number;
}

export interface DownRequest {
  dryRun?: boolean;
  forceInterfaceDown?: boolean;
}

/** The engine's lasting parts, shared by every operation and sample. */
export interface EngineScope {
  readonly options: VmEngineOptions;
  /** Up and Down: one at a time, none once stopping. */
  readonly gate: OperationGate;
  readonly logger: Logger;
  readonly now: () => number;
  /** The iptables backend once an Up or a sample found it: AgentInfo's driver. */
  backend: IptablesTools | undefined;
  /** Replies through the tunnel (liveness-monitor.ts); Status shows it once started. */
  liveness?: LivenessMonitor;
  /** A Describe's reads for the Up announced to follow (read-ahead.ts). */
  readsAhead?: ReadsAhead;
}

export function handshakeThresholdS(engine: EngineScope): number {
  return engine.options.handshakeThresholdS ?? DEFAULT_HANDSHAKE_THRESHOLD_S;
}

/** How `config`'s interface is brought up: through systemd when it runs the system (or asked), else wg-quick. */
export function interfaceMethod(engine: EngineScope, config: TunnelConfig): InterfaceMethod {
  const wanted = engine.options.interfaceMethod ?? 'auto';
  const systemd = wanted === 'systemd' || (wanted === 'auto' && (engine.options.systemdRunning ?? (() => existsSync('/run/systemd/system')))());
  return systemd ? systemdMethodFor(config.path, config.interface) : 'wg-quick';
}

/** Names the step's failure cause without the StepFailedError wrapper. */
export function causeMessage(e: unknown): string {
  const cause = stepCause(e);
  return redactText(cause instanceof Error ? cause.message : String(cause));
}

/** What a step returns: its message, or why it had nothing to do. */
export type StepResult = string | { skipped: string };
export type StepBody = (runner: Runner) => Promise<StepResult>;

/** One Up or Down. */
export class Operation {
  readonly dryRun: boolean;
  /** The system's runner, or a DryRunRunner over it (reads run, changes are shown only). */
  readonly runner: Runner;
  /** Steps logged and handed to the caller; each ends the operation first if the agent stops or the caller went away. */
  readonly steps: GuardedStepRunner;
  readonly started: number;
  /** The step a failed Outcome names: the last one begun. */
  failedStep: string;

  constructor(
    readonly engine: EngineScope,
    readonly ctx: OperationContext,
    options: { dryRun?: boolean; firstStep: string; stallAfterStep?: string; /** Under the dry-run layer; default the engine's runner. */ system?: Runner },
  ) {
    this.dryRun = options.dryRun === true;
    const system = options.system ?? engine.options.runner;
    this.runner = this.dryRun ? new DryRunRunner(system) : system;
    const listener = (record: StepRecord): void => {
      engine.logger.info(`step ${record.step} ${record.state}`, {
        step: record.step,
        state: record.state,
        message: record.message,
        commands: record.commands.map((c) => c.argv.join(' ')),
      });
      ctx.onStep?.(record);
    };
    this.steps = new GuardedStepRunner(this.runner, listener, { gate: engine.gate, signal: ctx.signal, stallAfterStep: options.stallAfterStep, logger: engine.logger });
    this.started = engine.now();
    this.failedStep = options.firstStep;
  }

  get sysctl(): Sysctl {
    return this.engine.options.sysctl;
  }

  /** Runs one step of the operation: from here on a failure names it. */
  step(name: string, body: StepBody): Promise<void> {
    this.failedStep = name;
    return this.steps.step(name, body);
  }

  /** Writes the journal (write-ahead: before the change it lists is made). */
  async persist(record: JournalRecord): Promise<void> {
    record.updatedAtMs = this.engine.now();
    await this.engine.options.journal.write(record);
  }

  elapsedMs(): number {
    return this.engine.now() - this.started;
  }
}
