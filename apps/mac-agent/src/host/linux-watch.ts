/**
 * Watching the Linux kill switch (`table inet wgctl`) while up: `nft monitor` reports every
 * ruleset change as it is committed, e.g. (nft 1.0.6)
 *
 *   delete rule inet wgctl output handle 2
 *   delete chain inet wgctl output
 *   delete table inet wgctl
 *   # new generation 5 by process 3176 (nft)
 *
 * The change lines come first; the `# new generation` line that closes the transaction names the
 * process that committed it (pid and comm) — the only place Linux says who changed the
 * firewall. Our own loads show up too: the check they trigger finds the table as wanted.
 */
import type { Runner } from '@wgctl/runner';
import type { KillSwitchHandle, KillSwitchPolicy } from './driver';
import type { KillSwitchChange, KillSwitchWatch } from './kill-switch-watch';

const GENERATION = /^# new generation \d+ by process (\d+) \((.*)\)$/;
const CHANGE_VERBS = /^(?:add|insert|replace|delete|create|flush|destroy|update)\s/;

/** One `nft monitor` line: a change of table `inet <table>` (or of the whole ruleset), the end of a transaction, or neither. Pure. */
export function classifyNftMonitorLine(line: string, table: string): { kind: 'ours'; line: string } | { kind: 'commit'; by: string } | { kind: 'other' } {
  const commit = GENERATION.exec(line.trim());
  if (commit) return { kind: 'commit', by: `process ${commit[1]} (${commit[2]})` };
  if (/^flush ruleset\b/.test(line)) return { kind: 'ours', line };
  const words = line.trim().split(/\s+/);
  // `<verb> <object> inet <table> …`
  if (CHANGE_VERBS.test(line) && words[2] === 'inet' && words[3] === table) return { kind: 'ours', line: line.trim() };
  return { kind: 'other' };
}

/** nft monitor events, and the table read back as the periodic look. */
export class LinuxKillSwitchWatch implements KillSwitchWatch {
  /** With events, the periodic look is only a backstop (a monitor restarting, a missed line). */
  readonly defaultCheckMs = 10_000;
  /** Change lines of the transaction being read. */
  private pending: string[] = [];

  constructor(
    private readonly table: string,
    private readonly read: (run: Runner, policy: KillSwitchPolicy) => Promise<{ loaded: boolean; enabled: boolean; problems: string[] }>,
  ) {}

  monitorArgv(): string[] {
    return ['nft', 'monitor'];
  }

  classifyMonitorLine(line: string): KillSwitchChange | null {
    const event = classifyNftMonitorLine(line, this.table);
    if (event.kind === 'ours') {
      if (this.pending.length < 8) this.pending.push(event.line);
      return null;
    }
    if (event.kind !== 'commit' || this.pending.length === 0) return null;
    const change = { by: event.by, what: this.pending.join('; ') };
    this.pending = [];
    return change;
  }

  async quickCheck(run: Runner, policy: KillSwitchPolicy, _handle: KillSwitchHandle | null): Promise<string> {
    // One `nft -j list table`: as cheap as a look gets, so the full read is the quick one.
    const live = await this.read(run, policy);
    if (!live.loaded) return `nftables table inet ${this.table} is not loaded`;
    return live.problems.join('; ');
  }
}
