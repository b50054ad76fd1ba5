/**
 * Self-healing while up: what Up applied on the VM (the own iptables chains and their jumps —
 * forwarding, kill switch, SNAT, MSS clamp — for both families, and the forwarding sysctls) is
 * watched and put back when someone removes it, through the same idempotent functions Up uses.
 *
 * - The firewall: `nft monitor` reports every nf_tables change, iptables-nft's included, with the
 *   pid and name of the process that committed it; a change to an ip/ip6 filter/nat/mangle table
 *   triggers a check (debounced). A periodic read of the rules is the insurance (and the only
 *   way with iptables-legacy, whose changes raise no event).
 * - The sysctls: Linux has no event for them (and does not say who wrote one); /proc/sys is read
 *   on every tick (no process).
 *
 * Never beside an Up or Down: a heal runs through the engine's OperationGate (as 'Heal') only
 * when nothing else runs and the journal says `up`; Up and Down pause the watcher — and wait for
 * a heal in flight — before they start, and resume it when the journal says up again.
 * A missing WireGuard interface is not healed here (health reports it; re-running wg-quick is Up's).
 */
import { BusyError, StoppingError } from '@wgctl/agent-kit';
import { spawnStreaming, SupervisedMonitor, type Runner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { chainState, desiredRules, ensureChains, ip6Tools, ownChainsAgainst, readRuleset, type ForwardingPlan, type IptablesTools } from '../../host/firewall';
import { IP_FORWARD, IPV6_FORWARDING, acceptRaName, type Sysctl } from '../../host/sysctl';
import type { JournalRecord } from '../journal';
import type { EngineScope } from './context';
import { parseNftMonitorLine } from './nft-monitor';

export const DEFAULT_HEAL_CHECK_INTERVAL_MS = 1_000;
export const DEFAULT_HEAL_FIREWALL_BACKSTOP_MS = 30_000;

export interface SelfHealOptions {
  /** How often the sysctls are read (and, without events, the firewall); 0: no self-healing. */
  checkIntervalMs?: number;
  /** With `nft monitor` running: how often the firewall is read anyway. */
  firewallBackstopMs?: number;
  /** Events of one burst are handled together. */
  debounceMs?: number;
  /** After each heal (the agent samples health again: it changed). */
  onHeal?: () => void;
  /** Starts `nft monitor` (tests: inside a namespace). */
  spawnMonitor?: (argv: readonly string[], options: StreamingOptions) => StreamingProcess;
}

/** The last heal, for Status. */
export interface HealReport {
  atMs: number;
  /** What was put back. */
  changes: string[];
  /** Who had changed it, as far as Linux tells. */
  by: string;
  /** What found it: an nft event, the sysctl tick, the periodic firewall check. */
  trigger: string;
}

/** Status: heals since the agent started, and the last one. */
export interface HealsSoFar {
  count: number;
  last: HealReport | null;
}

export const NFT_MONITOR_ARGV = ['nft', 'monitor'] as const;
const UNKNOWN_SYSCTL_WRITER = 'unknown: Linux reports no writer of a sysctl';

/** The plan Up applied, from its journal record (both families). */
function plansOf(record: JournalRecord): { plan: ForwardingPlan; plan6?: ForwardingPlan } {
  const plan = { macSource: record.macSource, lanInterface: record.lanInterface, wgInterface: record.interface, tunnelAddress: record.tunnelAddress };
  const plan6 = record.v6?.macSource ? { ...plan, macSource: record.v6.macSource, tunnelAddress: record.v6.tunnelAddress } : undefined;
  return { plan, plan6 };
}

/** The own chains of one family back as `plan` wants them (one restore batch); '' when all were in place. */
async function reassertChains(runner: Runner, tools: IptablesTools, plan: ForwardingPlan, family: 4 | 6): Promise<string> {
  const tables = await readRuleset(runner, tools);
  const desired = desiredRules(plan, family);
  const missing = ownChainsAgainst(tables, desired).filter((c) => !c.inPlace);
  if (missing.length === 0) return '';
  const done = await ensureChains(
    runner,
    tools,
    missing.map(({ state }) => ({ state: chainState(tables, state.own), desired: desired[state.own.table] })),
  );
  return typeof done === 'string' ? done : '';
}

/** The sysctls Up set that no longer hold their value (read only). */
export async function sysctlsOff(sysctl: Sysctl, runner: Runner, record: JournalRecord): Promise<string[]> {
  const read = (name: string): Promise<string> | string => (sysctl.readNow ? sysctl.readNow(name) : sysctl.read(name, runner));
  const off: string[] = [];
  if ((await read(IP_FORWARD)) !== '1') off.push(IP_FORWARD);
  if (record.v6?.macSource) {
    if ((await read(IPV6_FORWARDING)) !== '1') off.push(IPV6_FORWARDING);
    const ra = record.v6.acceptRa;
    if (ra && (await read(acceptRaName(ra.interface))) !== ra.applied) off.push(acceptRaName(ra.interface));
  }
  return off;
}

/**
 * Puts back what `record` (phase up) says Up applied: the firewall first, then the sysctls (so
 * forwarding is never back on before the kill switch). The journal's previous values are left as
 * they are: Down restores what was there before Up, not what someone set while up.
 */
export async function reassert(sysctl: Sysctl, runner: Runner, record: JournalRecord): Promise<{ firewall: string[]; sysctls: string[] }> {
  const tools = record.backend;
  if (!tools) throw new Error('the journal names no iptables backend');
  const { plan, plan6 } = plansOf(record);
  const firewall = [await reassertChains(runner, tools, plan, 4)];
  if (plan6) firewall.push(await reassertChains(runner, ip6Tools(tools), plan6, 6));
  const sysctls: string[] = [];
  const ra = record.v6?.acceptRa;
  // accept_ra before IPv6 forwarding (as Up): the VM keeps its RA-learnt route.
  if (ra && record.v6?.macSource) {
    const name = acceptRaName(ra.interface);
    const now = await sysctl.read(name, runner);
    if (now !== ra.applied) {
      await sysctl.write(name, ra.applied, runner);
      sysctls.push(`${name}: ${now} → ${ra.applied}`);
    }
  }
  const wanted = [IP_FORWARD, ...(record.v6?.macSource ? [IPV6_FORWARDING] : [])];
  for (const name of wanted) {
    const now = await sysctl.read(name, runner);
    if (now === '1') continue;
    await sysctl.write(name, '1', runner);
    sysctls.push(`${name}: ${now} → 1`);
  }
  return { firewall: firewall.filter((f) => f !== ''), sysctls };
}

/** The watcher: nft monitor, the tick, and the heals (one at a time, through the gate). */
export class SelfHeal {
  private readonly monitor: SupervisedMonitor;
  private monitorUnavailable = false;
  private tick?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private pendingTrigger = '';
  /** Who committed nf_tables transactions since the last check (from `# new generation` lines). */
  private writers = new Set<string>();
  private lastFirewallCheckMs = 0;
  /** The record the watcher was started for: the tick compares the sysctls against it. */
  private record: JournalRecord | null = null;
  private healing: Promise<void> | null = null;
  /** Bumped by every pause: a resume that was reading the journal meanwhile does not start. */
  private epoch = 0;
  private tickBusy = false;
  private triggerDuringHeal = '';
  private lastError = '';
  private closed = false;
  heals = 0;
  lastHeal: HealReport | null = null;

  constructor(
    private readonly engine: EngineScope,
    private readonly options: SelfHealOptions = {},
  ) {
    this.monitor = new SupervisedMonitor({
      spawn: options.spawnMonitor ?? spawnStreaming,
      argv: NFT_MONITOR_ARGV,
      onLine: (line) => this.onMonitorLine(line),
      // A change made before the monitor listened would go unseen: one check once it runs.
      onStart: () => this.schedule('monitor started'),
      onExit: (exit, stderr) => {
        if (exit.code === 127) this.monitorUnavailable = true;
        this.engine.logger.warn(`self-heal: ${NFT_MONITOR_ARGV.join(' ')} exited; ${this.monitorUnavailable ? 'the rules are read every check instead' : 'restarting'}`, {
          code: exit.code,
          signal: exit.signal,
          error: exit.error,
          stderr: stderr.join(' | '),
        });
        return !this.monitorUnavailable;
      },
    });
  }

  private get intervalMs(): number {
    return this.options.checkIntervalMs ?? DEFAULT_HEAL_CHECK_INTERVAL_MS;
  }

  get watching(): boolean {
    return this.record !== null;
  }

  /** After an Up or Down (or at start): watches when the journal says up and nothing else runs. */
  async resume(): Promise<void> {
    if (this.closed || this.intervalMs <= 0 || this.engine.gate.running || this.engine.gate.stopping) return;
    const epoch = this.epoch;
    const record = await this.engine.options.journal.read().catch(() => null);
    if (!record || record.phase !== 'up' || !record.backend || this.engine.gate.running || this.closed) return;
    if (this.record || epoch !== this.epoch) return;
    this.record = record;
    this.lastFirewallCheckMs = this.engine.now();
    this.engine.logger.info('self-heal: watching what Up applied', { intervalMs: this.intervalMs, events: record.backend.kind === 'nft' ? NFT_MONITOR_ARGV.join(' ') : 'none (iptables-legacy): the rules are read every check' });
    if (record.backend.kind === 'nft' && !this.monitorUnavailable) this.monitor.start();
    this.tick = setInterval(() => this.onTick(), this.intervalMs);
    this.tick.unref();
  }

  /** Before an Up or Down: no more watching, and the heal in flight (if any) has ended. */
  async pause(): Promise<void> {
    this.epoch++;
    this.record = null;
    if (this.tick) clearInterval(this.tick);
    if (this.debounce) clearTimeout(this.debounce);
    this.tick = this.debounce = undefined;
    this.pendingTrigger = this.triggerDuringHeal = '';
    await Promise.all([this.monitor.stop(), this.healing]);
  }

  /** The agent stops: paused for good. */
  close(): Promise<void> {
    this.closed = true;
    return this.pause();
  }

  private onMonitorLine(line: string): void {
    const event = parseNftMonitorLine(line);
    if (event.kind === 'generation') this.writers.add(`${event.comm} (pid ${event.pid})`);
    else if (event.kind === 'change') this.schedule(`nft monitor: ${line}`);
  }

  private schedule(trigger: string): void {
    if (!this.record) return;
    this.pendingTrigger ||= trigger;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const why = this.pendingTrigger;
      this.pendingTrigger = '';
      void this.heal(why, true);
    }, this.options.debounceMs ?? 100);
    this.debounce.unref();
  }

  /** Reads /proc/sys (no process); the firewall too when no event can be relied on or the backstop is due. */
  private onTick(): void {
    const record = this.record;
    if (!record || this.tickBusy || this.healing || this.engine.gate.running) return;
    const firewallDue = !this.monitor.running || this.engine.now() - this.lastFirewallCheckMs >= (this.options.firewallBackstopMs ?? DEFAULT_HEAL_FIREWALL_BACKSTOP_MS);
    if (firewallDue) {
      void this.heal(this.monitor.running ? 'periodic firewall check' : 'check (no firewall events)', true);
      return;
    }
    this.tickBusy = true;
    sysctlsOff(this.engine.options.sysctl, this.engine.options.runner, record)
      .then((off) => (off.length ? this.heal(`sysctl check: ${off.join(', ')}`, false) : undefined))
      .catch((e) => this.failed(e))
      .finally(() => (this.tickBusy = false));
  }

  /**
   * One heal through the gate; skipped while an Up or Down runs (it decides) or the journal is not
   * `up`. A trigger during a heal is looked at again once it ends (it may be someone else's change).
   */
  private heal(trigger: string, firewallChecked: boolean): Promise<void> {
    if (this.healing) {
      this.triggerDuringHeal ||= trigger;
      return this.healing;
    }
    if (!this.record || this.engine.gate.running || this.engine.gate.stopping) return Promise.resolve();
    const writers = [...this.writers];
    this.writers.clear();
    if (firewallChecked) this.lastFirewallCheckMs = this.engine.now();
    // gate.run throws at once when busy or stopping: then nothing ran, and the next trigger retries.
    const healing = Promise.resolve()
      .then(() => this.engine.gate.run('Heal', () => this.healNow(trigger, writers)))
      .catch((e) => this.failed(e))
      .finally(() => {
        if (this.healing === healing) this.healing = null;
        const again = this.triggerDuringHeal;
        this.triggerDuringHeal = '';
        if (again) this.schedule(again);
      });
    this.healing = healing;
    return healing;
  }

  private async healNow(trigger: string, writers: string[]): Promise<void> {
    const record = await this.engine.options.journal.read();
    if (!this.record || !record || record.phase !== 'up') return;
    const { firewall, sysctls } = await reassert(this.engine.options.sysctl, this.engine.options.runner, record);
    this.lastError = '';
    if (firewall.length === 0 && sysctls.length === 0) return;
    const by = [
      ...(firewall.length ? [writers.length ? `firewall: ${writers.join(', ')}` : 'firewall: unknown (no nft event named the writer)'] : []),
      ...(sysctls.length ? [`sysctls: ${UNKNOWN_SYSCTL_WRITER}`] : []),
    ].join('; ');
    this.heals++;
    this.lastHeal = { atMs: this.engine.now(), changes: [...firewall, ...sysctls], by, trigger };
    this.engine.logger.warn('self-heal: put back what was removed while up', { changes: this.lastHeal.changes, by, trigger, heals: this.heals });
    this.options.onHeal?.();
  }

  private failed(e: unknown): void {
    // An Up or Down (or the agent's stop) took the gate first: theirs to decide, nothing failed.
    if (e instanceof BusyError || e instanceof StoppingError) return;
    const message = e instanceof Error ? e.message : String(e);
    // The next tick tries again: the same failure is logged once.
    if (message !== this.lastError) this.engine.logger.error('self-heal failed', { error: message });
    this.lastError = message;
  }
}
