/**
 * Down, as a list of steps:
 *   read-journal → detect-backend → ip-forward → [ip6-forward → firewall6] → firewall (filter,
 *   nat, mangle: one batch) → firewall-tables → wg-quick-down → clean-stale → verify
 * Everything between read-journal and verify is the teardown, which also rolls back a failed
 * Up (its steps then named rollback-*): forwarding off first (fail closed), then the rules, then
 * the interface. It restores ip_forward only if it still holds the value the agent wrote,
 * removes the agent's own chains (found by name and tag), and takes the interface down only
 * when the agent brought it up (or when asked to). Without a usable journal (corrupt, its
 * previous copy too, or removed by hand) it goes by marks — see ownedByMarks — and its outcome
 * names the sysctls it could not put back (notRestored) instead of claiming a clean host.
 */
import type { OperationContext, OperationOutcome } from '@wgctl/agent-kit';
import type { IptablesSaveTable } from '@wgctl/parsers';
import { readTogether, type Runner } from '@wgctl/runner';
import { StateFileError } from '@wgctl/state';
import { loadTunnelConfig } from '../../host/config';
import {
  OWN_CHAINS,
  TABLES,
  chainState,
  deleteNftTables,
  detectBackend as detectIptables,
  ip6Tools,
  readRuleset,
  removeChains,
  tableIsPristine,
  type FirewallTable,
  type IptablesTools,
} from '../../host/firewall';
import { IP_FORWARD, IPV6_FORWARDING, SRC_VALID_MARK, acceptRaName, restoreJournaledSysctl } from '../../host/sysctl';
import { cleanWgQuickLeftovers, downArgvs, linkState, wgQuickTable } from '../../host/wireguard';
import type { JournalRecord } from '../journal';
import { Operation, causeMessage, type DownRequest, type EngineScope, type StepBody, type StepResult } from './context';
import { restoreIpv6Forwarding } from './ipv6-forwarding';

/** One teardown: Down's, or the rollback of a failed Up. Its steps fill in what the next ones need. */
export class Teardown {
  /** Set by detect-backend. */
  tools: IptablesTools;
  /** Set by wg-quick-down: clean-stale leaves a live interface's wg-quick state alone. */
  linkExists = false;
  /**
   * Down with no journal to go by: why it was unusable ('' when there was none at all). Null
   * when `record` is the journal's (or a failed Up's own).
   */
  withoutJournal: { unusable: string } | null = null;
  /** Without a journal, a chain of ours was found by name: an Up whose journal was lost. */
  foundUnlisted = false;

  constructor(
    readonly op: Operation,
    /** What to remove: the journal's record, or what Down finds by name without one. */
    readonly record: JournalRecord,
    readonly forceInterfaceDown: boolean,
    /** Runs one step under the name its caller gives it (Down's own, or rollback-*). */
    readonly step: (name: string, body: StepBody) => Promise<void>,
  ) {
    this.tools = record.backend ?? (undefined as unknown as IptablesTools);
  }

  /**
   * A journal that names no backend lists no firewall change: Up journals the backend before
   * its first batch, so its Up ended before the firewall (wg-quick may be up). Nothing to
   * detect then — an Up that failed because detection did must still be rolled back.
   */
  get firewallUntouched(): boolean {
    return this.record.backend === null && this.withoutJournal === null;
  }
}

const FIREWALL_UNTOUCHED = { skipped: 'the journal names no iptables backend: its Up made no firewall change' };

type TeardownStep = (down: Teardown, r: Runner) => Promise<StepResult>;

/** Removes what `down.record` lists, in the fail-closed order. */
export async function teardown(down: Teardown): Promise<void> {
  const step = (name: string, body: TeardownStep): Promise<void> => down.step(name, (r) => body(down, r));
  await step('detect-backend', detectBackend);
  await step('ip-forward', restoreIpForward);
  if (down.record.v6) {
    // Forwarding off first (fail closed), then accept_ra back: the reverse of Up.
    await step('ip6-forward', restoreIp6Forward);
    await step('firewall6', removeFirewall6);
  }
  await step('firewall', removeFirewall);
  await step('firewall-tables', deleteCreatedTables);
  await step('wg-quick-down', wgQuickDown);
  await step('clean-stale', cleanStale);
}

/**
 * Rejects before anything runs when stopping or busy (see VmEngine.up). Ended early (agent
 * stopping, caller gone), the journal says down-in-progress: the next Down or start finishes it.
 */
export async function runDown(engine: EngineScope, request: DownRequest, ctx: OperationContext): Promise<OperationOutcome> {
  const op = new Operation(engine, ctx, { dryRun: request.dryRun, firstStep: 'read-journal' });
  try {
    let read: JournalRead = { record: null };
    await op.step('read-journal', async () => {
      read = await readJournal(engine);
      return journalSummary(op, read);
    });
    const down = new Teardown(op, await downRecord(op, read.record), request.forceInterfaceDown === true, (name, body) => op.step(name, body));
    if (!read.record) down.withoutJournal = { unusable: read.unusable ?? '' };
    await teardown(down);
    await op.step('verify', (r) => verify(down, r));
    if (!op.dryRun) await engine.options.journal.remove();
    const notRestored = await notRestoredWithoutJournal(down);
    return { ok: true, failedStep: '', error: '', totalMs: op.elapsedMs(), ...(notRestored.length ? { notRestored } : {}) };
  } catch (e) {
    const error = causeMessage(e);
    engine.logger.warn('Down failed', { step: op.failedStep, error });
    return { ok: false, failedStep: op.failedStep, error, totalMs: op.elapsedMs() };
  }
}

// ---------------------------------------------------------------------------------------------
// Down's own steps and records

/** The journal (or its previous copy), none, or why it is unusable (corrupt, its copy too). */
interface JournalRead {
  record: JournalRecord | null;
  fellBackBecause?: string;
  unusable?: string;
}

async function readJournal(engine: EngineScope): Promise<JournalRead> {
  try {
    const { value, fellBackBecause } = await engine.options.journal.readDetailed();
    return { record: value, fellBackBecause };
  } catch (e) {
    if (!(e instanceof StateFileError)) throw e;
    engine.logger.warn('the journal is unusable: Down removes what is ours by name', { error: e.message });
    return { record: null, unusable: e.message };
  }
}

function journalSummary(op: Operation, read: JournalRead): StepResult {
  const { record } = read;
  if (read.unusable) return `journal unusable (${read.unusable}): wgctl's own chains are removed by name, the interface of ${op.engine.options.configPath} taken down`;
  if (!record) return { skipped: `no journal in ${op.engine.options.journal.path}: only wgctl's own chains are removed, if any` };
  const from = read.fellBackBecause ? `previous copy of the journal (${read.fellBackBecause})` : 'journal';
  return `${from} (${record.phase}): Mac ${record.macSource} on ${record.lanInterface}, ${record.interface}${
    record.wgInterface ? ` brought up by wgctl (${record.wgInterface.method})` : ''
  }${record.ipForward ? `, ${IP_FORWARD} was ${record.ipForward.previous}` : ''}`;
}

/** The journal's record, marked down-in-progress (write-ahead); without a journal, what to look for by name. */
async function downRecord(op: Operation, journaled: JournalRecord | null): Promise<JournalRecord> {
  if (!journaled) return unjournaledRecord(op.engine);
  if (op.dryRun) return journaled;
  const record: JournalRecord = { ...journaled, phase: 'down-in-progress', updatedAtMs: op.engine.now() };
  await op.persist(record);
  return record;
}

/** Without a journal: the config says which interface; own chains are found by name. */
async function unjournaledRecord(engine: EngineScope): Promise<JournalRecord> {
  const config = await loadTunnelConfig(engine.options.configPath).catch(() => null);
  return {
    version: 1,
    phase: 'down-in-progress',
    interface: config?.interface ?? '',
    configPath: engine.options.configPath,
    macSource: '',
    lanInterface: '',
    tunnelAddress: '',
    backend: null,
    chains: [...TABLES],
    createdTables: [],
    ipForward: null,
    wgInterface: null,
    // An IPv6 Up may have left its ip6tables chains too: found by name as well. The
    // sysctls' previous values are unknown without the journal: left as they are.
    v6: { macSource: '', tunnelAddress: '', chains: [...TABLES], createdTables: [], forwarding: null, acceptRa: null },
    updatedAtMs: engine.now(),
  };
}

async function verify(down: Teardown, r: Runner): Promise<StepResult> {
  if (down.op.dryRun) return { skipped: 'dry-run: nothing was changed' };
  const left = await leftAfterDown(down, r);
  if (left.length) throw new Error(`still present after Down: ${left.join('; ')}`);
  return 'no wgctl chain or jump left; ip_forward as before';
}

/** What of the record is still in place: own chains or jumps, sysctls still at the value wgctl wrote. */
async function leftAfterDown(down: Teardown, runner: Runner): Promise<string[]> {
  const { record, tools } = down;
  const sysctl = down.op.sysctl;
  const left: string[] = [];
  const rules = (family: 4 | 6): Promise<IptablesSaveTable[]> =>
    down.firewallUntouched ? Promise.resolve([]) : readRuleset(runner, family === 6 ? ip6Tools(tools) : tools);
  const [tables, current] = await readTogether([rules(4), record.ipForward ? sysctl.read(IP_FORWARD, runner) : undefined]);
  for (const own of OWN_CHAINS) {
    const state = chainState(tables, own);
    if (state.chainExists || state.jumps > 0) left.push(`${own.table} ${own.chain}`);
  }
  if (record.ipForward) {
    if (current === record.ipForward.applied && current !== record.ipForward.previous) left.push(`${IP_FORWARD}=${current}`);
  }
  if (record.v6) {
    const v6 = record.v6;
    const raName = v6.acceptRa ? acceptRaName(v6.acceptRa.interface) : undefined;
    const [tables6, forwarding, acceptRa] = await readTogether([
      rules(6),
      v6.forwarding ? sysctl.read(IPV6_FORWARDING, runner) : undefined,
      raName ? sysctl.read(raName, runner) : undefined,
    ]);
    for (const own of OWN_CHAINS) {
      const state = chainState(tables6, own);
      if (state.chainExists || state.jumps > 0) left.push(`ip6 ${own.table} ${own.chain}`);
    }
    if (v6.forwarding && forwarding === v6.forwarding.applied && forwarding !== v6.forwarding.previous) left.push(`${IPV6_FORWARDING}=${forwarding}`);
    if (v6.acceptRa && acceptRa === v6.acceptRa.applied && acceptRa !== v6.acceptRa.previous) left.push(`${raName}=${acceptRa}`);
  }
  return left;
}

// ---------------------------------------------------------------------------------------------
// The teardown's steps

async function detectBackend(down: Teardown, r: Runner): Promise<StepResult> {
  const { record } = down;
  if (record.backend) return { skipped: `${record.backend.iptables} (recorded in the journal)` };
  if (down.firewallUntouched) return FIREWALL_UNTOUCHED;
  const detected = await detectIptables(r);
  down.tools = detected.tools;
  return detected.evidence;
}

async function restoreIpForward(down: Teardown, r: Runner): Promise<StepResult> {
  const { record, op } = down;
  if (!record.ipForward) return { skipped: `${IP_FORWARD} was not changed by wgctl` };
  const restored = await restoreJournaledSysctl(op.sysctl, r, IP_FORWARD, record.ipForward, op.dryRun);
  return restored.outcome === 'restored' ? restored.message : { skipped: restored.message };
}

async function restoreIp6Forward(down: Teardown, r: Runner): Promise<StepResult> {
  return restoreIpv6Forwarding(r, down.op.sysctl, down.record.v6!, { dryRun: down.op.dryRun });
}

async function removeFirewall6(down: Teardown, r: Runner): Promise<StepResult> {
  if (down.firewallUntouched) return FIREWALL_UNTOUCHED;
  const removed = await removeIpv6Chains(r, down.tools, down.record.v6!, down.op.dryRun);
  if (!down.withoutJournal || typeof removed !== 'string') return removed;
  // Ours were there, so were the ip6 tables they needed: deleted when back to pristine (see unlistedTables).
  down.foundUnlisted = true;
  const tables = await removeIpv6Chains(r, down.tools, { ...down.record.v6!, createdTables: [...TABLES] }, down.op.dryRun);
  return typeof tables === 'string' ? `${removed}; then ${tables}` : removed;
}

/** The three IPv4 chains and their jumps, in one restore batch (one process). */
async function removeFirewall(down: Teardown, r: Runner): Promise<StepResult> {
  if (down.firewallUntouched) return FIREWALL_UNTOUCHED;
  const ruleset = await readRuleset(r, down.tools);
  return notingUnlisted(down, await removeChains(r, down.tools, OWN_CHAINS.map((own) => chainState(ruleset, own)), { showBatch: down.op.dryRun }));
}

/** Without a journal, a chain removed by name is the mark of an Up whose journal was lost. */
function notingUnlisted(down: Teardown, removed: StepResult): StepResult {
  if (down.withoutJournal && typeof removed === 'string') down.foundUnlisted = true;
  return removed;
}

/**
 * Without a journal, once our chains were found: every iptables-nft table, deleted only when
 * back to pristine (built-in chains, ACCEPT, no rule) — then it filters nothing and iptables
 * makes it again when needed, so whether wgctl or someone else made it no longer matters.
 * Undefined otherwise: the journal's createdTables decide.
 */
function unlistedTables(down: Teardown): FirewallTable[] | undefined {
  return down.withoutJournal && down.foundUnlisted ? [...TABLES] : undefined;
}

/** The nft tables wgctl caused to exist, deleted when nothing but wgctl's chains was ever in them. */
async function deleteCreatedTables(down: Teardown, r: Runner): Promise<StepResult> {
  const { tools, op } = down;
  if (down.firewallUntouched) return FIREWALL_UNTOUCHED;
  const created = unlistedTables(down) ?? down.record.createdTables;
  if (tools.kind !== 'nft' || created.length === 0) return { skipped: 'no table was created by wgctl' };
  const tables = await readRuleset(r, tools);
  const done: FirewallTable[] = [];
  const kept: string[] = [];
  for (const table of created) {
    if (!tables.some((t) => t.name === table)) continue;
    if (op.dryRun || tableIsPristine(tables, table)) done.push(table);
    else kept.push(table);
  }
  if (done.length > 0) {
    const batch = deleteNftTables(done);
    await r.run(batch.argv, { input: batch.input });
  }
  if (done.length === 0) return { skipped: kept.length ? `kept ${kept.join(', ')}: they hold other rules now` : 'nothing to delete' };
  return `deleted the empty tables wgctl caused to exist: ${done.join(', ')}${kept.length ? `; kept ${kept.join(', ')} (other rules)` : ''}`;
}

async function wgQuickDown(down: Teardown, r: Runner): Promise<StepResult> {
  const { record, op } = down;
  if (!record.interface) return { skipped: 'no interface known (no journal, unreadable config)' };
  const link = await linkState(r, record.interface);
  down.linkExists = link.exists;
  const owned = record.wgInterface !== null || ownedByMarks(down);
  if (!owned && !down.forceInterfaceDown) {
    return { skipped: `${record.interface} was not brought up by wgctl: left ${link.exists ? 'up' : 'alone'} (force_interface_down to take it down)` };
  }
  if (!link.exists) return { skipped: `${record.interface} is already down` };
  const method = record.wgInterface?.method ?? 'wg-quick';
  for (const argv of downArgvs(method, record.configPath, record.interface)) await r.run(argv, { timeoutMs: 60_000 });
  down.linkExists = op.dryRun;
  let restored = '';
  const previous = record.wgInterface?.srcValidMarkPrevious;
  if (previous !== null && previous !== undefined && !op.dryRun) {
    const now = await op.sysctl.read(SRC_VALID_MARK, r).catch(() => previous);
    if (now !== previous) {
      await op.sysctl.write(SRC_VALID_MARK, previous, r);
      restored = `; ${SRC_VALID_MARK} ${now} → ${previous}`;
    }
  }
  return `${record.interface} taken down (${method})${restored}`;
}

/**
 * Without a usable journal the interface of the agent's config is taken as ours when the
 * journal was there but corrupt (it exists only from an Up to its Down), or when our chains
 * were found: an Up happened and its record was lost. With no journal and no chain it is left
 * as it is (it may be someone else's).
 */
function ownedByMarks(down: Teardown): boolean {
  return down.withoutJournal !== null && (down.withoutJournal.unusable !== '' || down.foundUnlisted);
}

/** The sysctls an Up sets whose previous values only the journal knew: named when they are still on. */
const SYSCTLS_ONLY_THE_JOURNAL_KNEW = [IP_FORWARD, IPV6_FORWARDING, SRC_VALID_MARK];

/** After a Down without a usable journal (see ownedByMarks): what was left as it is, for want of its previous value. */
async function notRestoredWithoutJournal(down: Teardown): Promise<string[]> {
  if (down.op.dryRun || !ownedByMarks(down)) return [];
  const { sysctl, runner } = down.op;
  const values = await Promise.all(SYSCTLS_ONLY_THE_JOURNAL_KNEW.map((name) => sysctl.read(name, runner).catch(() => null)));
  return SYSCTLS_ONLY_THE_JOURNAL_KNEW.flatMap((name, i) =>
    values[i] === '1' ? [`${name}=1 left as it is: its value before \`wgctl up\` was only in the journal (set it back by hand if it was 0)`] : [],
  );
}

async function cleanStale(down: Teardown, r: Runner): Promise<StepResult> {
  const { record } = down;
  if (!record.interface) return { skipped: 'no interface known' };
  if (down.linkExists) return { skipped: `${record.interface} is up: its wg-quick state is live` };
  const config = await loadTunnelConfig(record.configPath).catch(() => null);
  const removed = await cleanWgQuickLeftovers(r, record.interface, wgQuickTable(config?.parsed.interface.table));
  return removed.length ? `removed wg-quick leftovers: ${removed.join('; ')}` : { skipped: 'no wg-quick leftovers' };
}

/** The ip6tables chains and jumps (one batch), then the ip6 tables wgctl caused to exist when back to pristine. Down's firewall6, and Up's when IPv6 is no longer asked for. */
export async function removeIpv6Chains(r: Runner, tools: IptablesTools, v6: NonNullable<JournalRecord['v6']>, dryRun: boolean): Promise<StepResult> {
  const tools6 = ip6Tools(tools);
  const ruleset6 = await readRuleset(r, tools6);
  const removed = await removeChains(r, tools6, OWN_CHAINS.map((own) => chainState(ruleset6, own)), { showBatch: dryRun });
  if (tools.kind !== 'nft' || v6.createdTables.length === 0) return removed;
  const after = typeof removed === 'string' && !dryRun ? await readRuleset(r, tools6) : ruleset6;
  const gone = v6.createdTables.filter((t) => after.some((x) => x.name === t) && (dryRun || tableIsPristine(after, t)));
  if (gone.length === 0) return removed;
  const batch = deleteNftTables(gone, 'ip6');
  await r.run(batch.argv, { input: batch.input });
  return `${typeof removed === 'string' ? removed : removed.skipped}; deleted the empty ip6 tables wgctl caused to exist: ${gone.join(', ')}`;
}
