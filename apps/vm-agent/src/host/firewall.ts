/**
 * The agent's iptables rules: three chains of its own, each jumped to once from a built-in
 * chain by a rule tagged `-m comment --comment wgctl`:
 *
 *   filter  FORWARD     → WGCTL-FWD   accept Mac → tunnel, replies back, drop unsolicited
 *                                     tunnel → Mac, and the kill switch: anything else the
 *                                     Mac sends that would leave by another interface is rejected
 *   nat     POSTROUTING → WGCTL-POST  SNAT of the Mac's source to the tunnel address
 *   mangle  FORWARD     → WGCTL-MSS   TCP MSS clamped to the path MTU, into and out of the tunnel
 *
 * So its rules are found and removed exactly (by chain name and tag), and the user's own rules
 * are never touched. Rules are built in the canonical form `iptables -S` prints, so the live
 * chain can be compared token-for-token with the desired one: a second Up changes nothing.
 */
import {
  parseIptablesSave,
  parseIptablesVersion,
  type IptablesBackend,
  type IptablesRule,
  type IptablesSaveTable,
} from '@wgctl/parsers';
import { CommandError, type Runner, readTogether } from '@wgctl/runner';
export const RULE_TAG = 'wgctl';

/** The tables the agent has a chain of its own in, in the order Up fills them. */
export const TABLES = ['filter', 'nat', 'mangle'] as const;
export type FirewallTable = (typeof TABLES)[number];

export interface OwnChain {
  table: FirewallTable;
  chain: string;
  /** The built-in chain that jumps to it. */
  hook: string;
  purpose: string;
}

export const OWN_CHAINS: readonly OwnChain[] = [
  { table: 'filter', chain: 'WGCTL-FWD', hook: 'FORWARD', purpose: 'forwarding + kill switch' },
  { table: 'nat', chain: 'WGCTL-POST', hook: 'POSTROUTING', purpose: 'SNAT to the tunnel address' },
  { table: 'mangle', chain: 'WGCTL-MSS', hook: 'FORWARD', purpose: 'TCP MSS clamping' },
];

export function ownChain(table: FirewallTable): OwnChain {
  return OWN_CHAINS.find((c) => c.table === table)!;
}

export interface ForwardingPlan {
  /** Canonical CIDR (`198.51.100.2/32`), as iptables prints it. */
  macSource: string;
  lanInterface: string;
  wgInterface: string;
  /** Address the Mac's traffic is SNATed to (no prefix). */
  tunnelAddress: string;
}

export interface IptablesTools {
  kind: IptablesBackend;
  /** Binary for changes and -S (`iptables-nft`, `iptables-legacy` or plain `iptables`). */
  iptables: string;
  save: string;
  version: string;
}

/**
 * The same backend's IPv6 tools: `iptables-nft` → `ip6tables-nft` (-save, -restore), legacy
 * likewise, plain `iptables` → `ip6tables`. The IPv6 chains always live where the IPv4 ones do.
 */
export function ip6Tools(tools: IptablesTools): IptablesTools {
  const six = (name: string): string => name.replace(/^iptables/, 'ip6tables');
  return { ...tools, iptables: six(tools.iptables), save: six(tools.save) };
}

/**
 * The rules each own chain must contain, in order, as `iptables -S` (family 4) or
 * `ip6tables -S` (family 6, plan with IPv6 source and tunnel address) prints them.
 */
export function desiredRules(plan: ForwardingPlan, family: 4 | 6 = 4): Record<FirewallTable, string[][]> {
  const rejectWith = family === 6 ? 'icmp6-adm-prohibited' : 'icmp-admin-prohibited';
  const { macSource: mac, lanInterface: lan, wgInterface: wg, tunnelAddress } = plan;
  const clamp = ['-p', 'tcp', '-m', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu'];
  return {
    filter: [
      ['-s', mac, '-i', lan, '-o', wg, '-j', 'ACCEPT'],
      ['-d', mac, '-i', wg, '-o', lan, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-d', mac, '-i', wg, '-j', 'DROP'],
      // Kill switch: whatever the Mac sends that would not leave through the tunnel.
      ['-s', mac, '!', '-o', wg, '-j', 'REJECT', '--reject-with', rejectWith],
    ],
    nat: [['-s', mac, '-o', wg, '-j', 'SNAT', '--to-source', tunnelAddress]],
    mangle: [
      ['-o', wg, ...clamp],
      ['-i', wg, ...clamp],
    ],
  };
}

function jumpArgs(own: OwnChain): string[] {
  return ['-m', 'comment', '--comment', RULE_TAG, '-j', own.chain];
}

// ---------------------------------------------------------------------------------------------
// Reading

export async function readRuleset(runner: Runner, tools: IptablesTools): Promise<IptablesSaveTable[]> {
  const result = await runner.run([tools.save], { readOnly: true });
  return parseIptablesSave(result.stdout);
}

export interface ChainState {
  own: OwnChain;
  tableExists: boolean;
  chainExists: boolean;
  rules: string[][];
  /** Tagged jumps from the hook to the own chain. */
  jumps: number;
  /** Other rules anywhere in the table that jump to the own chain (would block its removal). */
  foreignReferences: IptablesRule[];
}

function isOwnJump(rule: IptablesRule, own: OwnChain): boolean {
  return rule.chain === own.hook && rule.target === own.chain && rule.comment === RULE_TAG;
}

export function chainState(tables: IptablesSaveTable[], own: OwnChain): ChainState {
  const table = tables.find((t) => t.name === own.table);
  const rules = table?.rules ?? [];
  return {
    own,
    tableExists: table !== undefined,
    chainExists: table?.chains.some((c) => c.name === own.chain) ?? false,
    rules: rules.filter((r) => r.chain === own.chain).map((r) => r.args),
    jumps: rules.filter((r) => isOwnJump(r, own)).length,
    foreignReferences: rules.filter((r) => r.target === own.chain && !isOwnJump(r, own)),
  };
}

function sameRules(a: string[][], b: string[][]): boolean {
  return a.length === b.length && a.every((rule, i) => rule.length === b[i].length && rule.every((t, j) => t === b[i][j]));
}

/** True when the chain holds exactly `desired` and is jumped to exactly once. */
export function chainInPlace(state: ChainState, desired: string[][]): boolean {
  return state.chainExists && state.jumps === 1 && sameRules(state.rules, desired);
}

/** Every own chain's live state, and whether it is exactly the desired one (verify, Status). */
export function ownChainsAgainst(tables: IptablesSaveTable[], desired: Record<FirewallTable, string[][]>): { state: ChainState; inPlace: boolean }[] {
  return OWN_CHAINS.map((own) => {
    const state = chainState(tables, own);
    return { state, inPlace: chainInPlace(state, desired[own.table]) };
  });
}

/** Tables that exist in an iptables-save listing. */
export function existingTables(tables: IptablesSaveTable[]): Set<string> {
  return new Set(tables.map((t) => t.name));
}

/** Counts `-A` rules that are not the agent's own (its chains and tagged jumps). */
function foreignRuleCount(tables: IptablesSaveTable[]): number {
  const ownNames = new Set(OWN_CHAINS.map((c) => c.chain));
  let n = 0;
  for (const t of tables) for (const r of t.rules) if (!ownNames.has(r.chain) && !(r.target && ownNames.has(r.target) && r.comment === RULE_TAG)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Backend detection

/**
 * Which iptables is live. `iptables --version` says which backend the `iptables` command
 * uses; the rule counts say where the system's rules actually are (legacy and nft do not see
 * each other's rules): when only the other backend holds rules, that one is live.
 */
export async function detectBackend(
  runner: Runner,
): Promise<{ tools: IptablesTools; evidence: string; /** The chosen backend's rules, as read to decide (saves a read). */ ruleset?: IptablesSaveTable[] }> {
  // The three reads do not depend on each other: side by side (started in this order).
  const read = { readOnly: true, allowFailure: true };
  const [version, nftSave, legacySave] = await readTogether([
    runner.run(['iptables', '--version'], read),
    runner.run(['iptables-nft-save'], read),
    runner.run(['iptables-legacy-save'], read),
  ]);
  if (version.exitCode === 127) throw new Error('iptables is not installed (apt install iptables)');
  if (version.exitCode !== 0) throw new Error(`iptables --version failed with exit code ${version.exitCode}`);
  const { backend: defaultKind, version: ver } = parseIptablesVersion(version.stdout);
  const counts: Partial<Record<IptablesBackend, number>> = {};
  const rulesets: Partial<Record<IptablesBackend, IptablesSaveTable[]>> = {};
  for (const [kind, save] of [['nft', nftSave], ['legacy', legacySave]] as const) {
    if (save.exitCode === 0) {
      rulesets[kind] = parseIptablesSave(save.stdout);
      counts[kind] = foreignRuleCount(rulesets[kind]);
    }
  }
  const other: IptablesBackend = defaultKind === 'nft' ? 'legacy' : 'nft';
  const kind = (counts[other] ?? 0) > 0 && (counts[defaultKind] ?? 0) === 0 ? other : defaultKind;
  const haveVariant = counts[kind] !== undefined;
  const tools: IptablesTools = {
    kind,
    iptables: haveVariant ? `iptables-${kind}` : 'iptables',
    save: haveVariant ? `iptables-${kind}-save` : 'iptables-save',
    version: ver,
  };
  const countText = (['nft', 'legacy'] as const).map((k) => `${k} ${counts[k] ?? 'n/a'}`).join(', ');
  const why = kind === defaultKind ? `\`iptables\` is ${defaultKind}` : `\`iptables\` is ${defaultKind} but only ${kind} holds rules`;
  return { tools, evidence: `${tools.iptables} (${why}; existing rules: ${countText})`, ruleset: rulesets[kind] };
}

// ---------------------------------------------------------------------------------------------
// Changing
//
// The own chains of every table are written in ONE `iptables-restore --noflush` batch of the
// detected backend (iptables-nft-restore / iptables-legacy-restore): one process instead of
// one per table, chain, rule and jump (each spawn blocks the agent ~2 ms). --noflush keeps
// every other rule of the table; the batch names only the own chains and the tagged jumps.
// The batch is atomic per table, not across tables: both backends commit each `*table …
// COMMIT` block at its COMMIT (xtables-restore.c: "Commit per table, although we support
// global commit at once"), so a rejected line leaves its table as it was, the tables after
// it untouched and those before it applied (firewall.netns.test.ts shows it). Hence the
// order of TABLES (the kill switch first), and the journal listing every table beforehand.

/** `iptables-nft` → `iptables-nft-restore` (same backend as the rules were read with). */
function restoreArgv(tools: IptablesTools): string[] {
  return [`${tools.iptables}-restore`, '-w', '5', '--noflush'];
}

function restoreBatch(table: FirewallTable, lines: string[][]): string {
  return `*${table}\n${lines.map((l) => l.join(' ')).join('\n')}\nCOMMIT\n`;
}

export interface BatchOptions {
  /** Append the batch to the message: a plan (dry-run) shows only argv, not what goes to stdin. */
  showBatch?: boolean;
}

function withBatch(message: string, batch: string, options: BatchOptions): string {
  return options.showBatch ? `${message}; batch: ${batch.trim().split('\n').join(' ; ')}` : message;
}

/**
 * The batch that makes the own chain hold exactly `desired`, jumped to once, or undefined
 * when it already does. Declaring the chain creates it if missing (and, with --noflush,
 * flushes it if present; the explicit -F says so for every backend).
 */
function ensureChainBatch(state: ChainState, desired: string[][]): { batch: string; done: string[] } | undefined {
  const { own } = state;
  if (chainInPlace(state, desired)) return undefined;
  const lines: string[][] = [];
  const done: string[] = [];
  if (!sameRules(state.rules, desired) || !state.chainExists) {
    lines.push([`:${own.chain}`, '-', '[0:0]'], ['-F', own.chain], ...desired.map((rule) => ['-A', own.chain, ...rule]));
    if (!state.chainExists) done.push('created');
    done.push(`${desired.length} rules written`);
  }
  if (state.jumps === 0) {
    lines.push(['-I', own.hook, '1', ...jumpArgs(own)]);
    done.push(`jump from ${own.hook}`);
  }
  for (let extra = state.jumps; extra > 1; extra--) {
    lines.push(['-D', own.hook, ...jumpArgs(own)]);
    done.push('duplicate jump removed');
  }
  return { batch: restoreBatch(own.table, lines), done };
}

/** The batch that removes the tagged jumps and the own chain (undefined: nothing of it). */
function removeChainBatch(state: ChainState): string | undefined {
  const { own } = state;
  if (!state.chainExists && state.jumps === 0) return undefined;
  if (state.foreignReferences.length > 0) {
    const rule = state.foreignReferences[0];
    throw new Error(
      `${own.table} ${own.chain} is also jumped to by a rule wgctl did not add (chain ${rule.chain}: ${rule.args.join(' ')}); remove that rule first`,
    );
  }
  const lines: string[][] = [];
  for (let i = 0; i < state.jumps; i++) lines.push(['-D', own.hook, ...jumpArgs(own)]);
  if (state.chainExists) lines.push(['-F', own.chain], ['-X', own.chain]);
  return restoreBatch(own.table, lines);
}

/** One table's part of a restore batch. */
interface TableBatch {
  own: OwnChain;
  batch: string;
}

/** The 1-based batch line a rejecting ip(6)tables-restore names (`Error occurred at line: N`, or `line N failed` at commit). */
function rejectedLine(e: unknown): number | undefined {
  const match = /(?:at line: |line )(\d+)/.exec(e instanceof CommandError ? e.stderr : '');
  return match ? Number(match[1]) : undefined;
}

/**
 * Runs the tables' parts as one batch. A rejection names its table and what the per-table
 * commits (see above) left applied: the tables before it.
 */
async function runBatch(runner: Runner, tools: IptablesTools, parts: TableBatch[]): Promise<string> {
  const batch = parts.map((p) => p.batch).join('');
  try {
    await runner.run(restoreArgv(tools), { input: batch });
  } catch (e) {
    const line = rejectedLine(e);
    if (line === undefined || parts.length < 2) throw e;
    let end = 0;
    const at = parts.findIndex((p) => line <= (end += p.batch.split('\n').length - 1));
    if (at < 0) throw e;
    const applied = parts.slice(0, at).map((p) => `${p.own.table} ${p.own.chain}`);
    const before = applied.length ? `; applied before it (each table commits on its own): ${applied.join(', ')}` : '; nothing applied';
    throw new Error(`${(e as Error).message} [the ${parts[at].own.table} part of the batch was rejected${before}]`, { cause: e });
  }
  return batch;
}

/** Every own chain (in the order of TABLES) as `ruleset` has it, with the rules it must hold: ensureChains' input. */
export function ownChainsWanted(ruleset: IptablesSaveTable[], desired: Record<FirewallTable, string[][]>): { state: ChainState; desired: string[][] }[] {
  return OWN_CHAINS.map((own) => ({ state: chainState(ruleset, own), desired: desired[own.table] }));
}

/**
 * Makes each own chain hold exactly its `desired` rules, jumped to once, in ONE restore batch
 * (one `*table … COMMIT` block per table that needs a change). `{ skipped }` when every chain
 * is already in place (no command run).
 */
export async function ensureChains(
  runner: Runner,
  tools: IptablesTools,
  wanted: { state: ChainState; desired: string[][] }[],
  options: BatchOptions = {},
): Promise<string | { skipped: string }> {
  const changes = wanted.map(({ state, desired }) => ({ own: state.own, change: ensureChainBatch(state, desired) }));
  const todo = changes.flatMap(({ own, change }) => (change ? [{ own, ...change }] : []));
  if (todo.length === 0) return { skipped: `${wanted.map((w) => `${w.state.own.table} ${w.state.own.chain}`).join(', ')}: already in place` };
  const batch = await runBatch(runner, tools, todo);
  return withBatch(`${tools.iptables}: ${todo.map((c) => `${c.own.table} ${c.own.chain} (${c.own.purpose}): ${c.done.join(', ')}`).join('; ')}`, batch, options);
}

/** Removes the own chains (and their jumps) in ONE restore batch. `{ skipped }` when none is there. */
export async function removeChains(
  runner: Runner,
  tools: IptablesTools,
  states: ChainState[],
  options: BatchOptions = {},
): Promise<string | { skipped: string }> {
  const present = states.flatMap((state) => {
    const batch = removeChainBatch(state);
    return batch === undefined ? [] : [{ own: state.own, batch, jumps: state.jumps }];
  });
  if (present.length === 0) return { skipped: `${tools.iptables}: no wgctl chain present` };
  const batch = await runBatch(runner, tools, present);
  return withBatch(`${tools.iptables}: ${present.map((x) => `${x.own.table} ${x.own.chain}: ${x.jumps} jump(s) and the chain removed`).join('; ')}`, batch, options);
}

/**
 * An iptables-nft table the agent caused to exist is deleted again when it is back to its
 * pristine state (built-in chains with ACCEPT policy, no rules, no user chains).
 */
export function tableIsPristine(tables: IptablesSaveTable[], table: FirewallTable): boolean {
  const t = tables.find((x) => x.name === table);
  if (!t) return false;
  return t.rules.length === 0 && t.chains.every((c) => c.builtin && c.policy === 'ACCEPT');
}

/**
 * Deletes the given `ip` tables in ONE nft transaction (nft -f is all or nothing): one process
 * instead of one per table (each 15-25 ms, most of it nft building its cache).
 */
export function deleteNftTables(tables: readonly FirewallTable[], family: 'ip' | 'ip6' = 'ip'): { argv: string[]; input: string } {
  return { argv: ['nft', '-f', '-'], input: tables.map((table) => `delete table ${family} ${table}\n`).join('') };
}
