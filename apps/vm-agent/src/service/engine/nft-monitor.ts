/**
 * `nft monitor` lines, as far as self-healing needs them (pure). iptables-nft writes through
 * nf_tables, so its changes appear here too, e.g.
 *
 *   delete rule ip filter WGCTL-FWD handle 2
 *   # new generation 6 by process 2306 (iptables-nft)
 *
 * The change lines come first; the `# new generation` line that closes the transaction names the
 * process that committed it (pid and comm, 15 characters at most) — the only place Linux says who
 * changed the firewall. iptables-legacy changes go through setsockopt and never appear here.
 */
import { TABLES } from '../../host/firewall';

export type NftMonitorEvent =
  /** A change to an ip/ip6 table the agent has a chain in. */
  | { kind: 'change'; line: string }
  /** The end of a transaction: who committed it. */
  | { kind: 'generation'; generation: number; pid: number; comm: string }
  | { kind: 'other' };

const GENERATION = /^# new generation (\d+) by process (\d+) \((.*)\)$/;
/** `<verb> <object> <family> <table> …`, e.g. `delete rule ip filter WGCTL-FWD handle 2`. */
const CHANGE = /^(?:add|insert|replace|delete|create|flush|destroy|update)\s+(?:table|chain|rule)\s+(ip|ip6)\s+(\S+)/;

export function parseNftMonitorLine(line: string): NftMonitorEvent {
  const generation = GENERATION.exec(line);
  if (generation) return { kind: 'generation', generation: Number(generation[1]), pid: Number(generation[2]), comm: generation[3] };
  const change = CHANGE.exec(line);
  if (change && (TABLES as readonly string[]).includes(change[2])) return { kind: 'change', line };
  if (/^flush ruleset/.test(line)) return { kind: 'change', line };
  return { kind: 'other' };
}
