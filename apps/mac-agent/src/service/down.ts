/**
 * Down: restore-dns, remove-routes, unload-kill-switch, verify-clean — also an Up's rollback
 * (its steps then streamed as `rollback-*`). Every step streams the argv it ran; every change
 * is journaled as it is undone. Without a usable journal, what is ours is found by its marks
 * (./down-by-marks) and what cannot be put back is named.
 */
import type { OperationOutcome } from '@wgctl/agent-kit';
import { readTogether, StepFailedError, type Runner, type StepListener } from '@wgctl/runner';
import { StateFileError } from '@wgctl/state';
import type { RouteSpec, ServerEndpoint } from '../host/driver';
import { describeDns, messageOf, sameRoute } from './core';
import { notRestoredWithoutJournal, pinRoutesInTable, splitRoutesInTable, type VmAddresses } from './down-by-marks';
import { emptyJournal, type JournalRoute, type MacJournal } from './journal';
import { endedBetweenSteps, Operation, type RequestOptions, type StepResult, type UpDownDeps } from './operation';

// ----------------------------------------------------------------------------------- Down

/** One Down: the journal it empties, and the routes it removed (verify-clean reads them back). */
class DownContext extends Operation {
  readonly journal: MacJournal;
  readonly removed: RouteSpec[] = [];
  readonly vmAddresses: VmAddresses;
  readonly servers: ServerEndpoint[];
  readonly excluded: string[];
  /** Why the journal could not be used (corrupt, its previous copy too): Down goes by marks. */
  readonly journalUnusable: string | null = null;
  /** Something of ours was found that the journal did not list (it was lost or removed by hand). */
  foundUnlisted = false;

  constructor(deps: UpDownDeps, options: RequestOptions, listener: StepListener) {
    super(deps, options, listener);
    this.vmAddresses = options.vmAddresses ?? {};
    this.servers = options.servers ?? [];
    this.excluded = options.excluded ?? [];
    try {
      this.journal = this.core.loadJournal();
    } catch (e) {
      if (!(e instanceof StateFileError)) throw e;
      this.journalUnusable = e.message;
      this.core.logger.warn('the journal is unusable: Down removes what is ours by its marks', { error: e.message });
      this.journal = emptyJournal(this.driver.name, this.core.now());
    }
  }

  /** Without a usable journal, what could not be put back (empty when the journal was used). */
  notRestored(): string[] {
    return this.journalUnusable || this.foundUnlisted ? notRestoredWithoutJournal(this.driver.name, this.vmAddresses, this.servers) : [];
  }
}

/** Also an Up's rollback (its steps then streamed as `rollback-*`). */
export async function runDown(deps: UpDownDeps, options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
  const down = new DownContext(deps, options, listener);
  const step = (name: string, body: (down: DownContext, r: Runner) => Promise<StepResult>) => down.steps.step(name, (r) => body(down, r));
  if (!down.dryRun) {
    await deps.beforeDown();
    down.journal.phase = 'down-in-progress';
    down.persist();
  }
  try {
    await step('restore-dns', restoreDns);
    await step('remove-routes', removeRoutes);
    await step('unload-kill-switch', unloadKillSwitch);
    await step('verify-clean', verifyClean);
    const fresh = emptyJournal(down.driver.name, down.core.now());
    fresh.lastRoamMs = down.journal.lastRoamMs;
    Object.assign(down.journal, fresh);
    down.persist();
    const notRestored = down.dryRun ? [] : down.notRestored();
    return { ...down.succeeded(), ...(notRestored.length ? { notRestored } : {}) };
  } catch (e) {
    return downFailed(down, e);
  }
}

async function restoreDns(down: DownContext, r: Runner): Promise<StepResult> {
  const j = down.journal;
  // DNS a kill-switch-only Up wrote ahead for a full Up that did not take it (the flag goes with Down's next write).
  const prepared = j.dnsPrepared;
  if (prepared) {
    await down.driver.discardPreparedDns?.(r);
    delete j.dnsPrepared;
  }
  if (!j.dns) return prepared ? 'DNS was not changed; removed what was written ahead for it' : { skipped: 'DNS was not changed' };
  await down.driver.restoreDns(r, j.dns.snapshot);
  const was = describeDns(j.dns.snapshot);
  j.dns = null;
  down.persist();
  return `restored DNS (${was})`;
}

/**
 * The journal's routes, then the split routes via the VM's addresses and the pins of the
 * request's servers that it does not list: ours all the same (a journal lost, or its previous
 * copy one write behind; see down-by-marks). Split routes first, pins last.
 */
async function removeRoutes(down: DownContext, r: Runner): Promise<StepResult> {
  const listed = await removeJournaledRoutes(down, r);
  const unlisted = [
    ...(await removeByMarks(down, r, () => splitRoutesInTable(down.driver, r, down.vmAddresses))),
  ];
  // The pins by marks cost a look at the uplink: only when the journal could not be trusted
  // with them (unusable, listing nothing, or missing a split route found above).
  if (down.journalUnusable || down.foundUnlisted || listed.length === 0) unlisted.push(...(await removeByMarks(down, r, () => pinRoutesInTable(down.driver, r, down.servers, down.excluded))));
  const said = [
    ...(listed.length ? [`removed ${listed.map((x) => x.destination).join(', ')}`] : []),
    ...(unlisted.length ? [`removed by their marks (not in the journal): ${unlisted.map((x) => `${x.destination} via ${x.gateway}`).join(', ')}`] : []),
  ];
  return said.length ? said.join('; ') : { skipped: 'no routes of ours in the journal or via the VM' };
}

async function removeJournaledRoutes(down: DownContext, r: Runner): Promise<RouteSpec[]> {
  const j = down.journal;
  // Excluded ranges first (back into the tunnel), split routes next, pins last: traffic never
  // falls back to the uplink unblocked.
  const order: JournalRoute['role'][] = ['exclude', 'split6', 'split', 'pin'];
  const routes = [...j.routes].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role));
  for (const route of routes) {
    const spec: RouteSpec = { destination: route.destination, gateway: route.gateway, interface: route.interface };
    await down.driver.deleteRoute(r, spec);
    down.removed.push(spec);
    j.routes = j.routes.filter((x) => !sameRoute(x, spec));
    down.persist();
  }
  return routes;
}

async function removeByMarks(down: DownContext, r: Runner, inTable: () => Promise<RouteSpec[]>): Promise<RouteSpec[]> {
  const found = (await inTable()).filter((x) => !down.removed.some((y) => y.destination === x.destination && y.gateway === x.gateway));
  if (found.length > 0) down.foundUnlisted = true;
  for (const route of found) {
    await down.driver.deleteRoute(r, route);
    down.removed.push(route);
  }
  return found;
}

async function unloadKillSwitch(down: DownContext, r: Runner): Promise<StepResult> {
  const j = down.journal;
  const live = await down.driver.readKillSwitch(r, undefined, j.killSwitch?.handle ?? undefined);
  if (!live.loaded && !j.killSwitch) return { skipped: 'kill switch not loaded' };
  const unlisted = !j.killSwitch;
  if (unlisted) down.foundUnlisted = true;
  await down.driver.unloadKillSwitch(r, j.killSwitch?.handle ?? {});
  j.killSwitch = null;
  down.persist();
  return unlisted ? 'kill switch unloaded (found by its name: not in the journal)' : 'kill switch unloaded';
}

async function verifyClean(down: DownContext, r: Runner): Promise<StepResult> {
  if (down.dryRun) return { skipped: 'dry run: nothing to verify' };
  const { driver, removed } = down;
  const [readback, ks] = await readTogether([removed.length ? driver.readRoutes(r, removed) : Promise.resolve([]), driver.readKillSwitch(r)]);
  const left = readback.filter((x) => x.present);
  const problems = [...left.map((x) => `route still present: ${x.evidence}`), ...(ks.loaded ? ['kill switch still loaded'] : [])];
  if (problems.length) throw new Error(problems.join('; '));
  return 'nothing of ours left';
}

/** A failed Down: the journal keeps what is left (and says why); the next Down or start finishes it. */
function downFailed(down: DownContext, e: unknown): OperationOutcome {
  const ended = endedBetweenSteps(down, 'Down', e, true);
  if (ended) return ended;
  const failedStep = e instanceof StepFailedError ? e.step : '';
  const error = messageOf(e);
  if (!down.dryRun) {
    down.journal.lastError = `${failedStep}: ${error}`;
    down.persist();
  }
  return down.failed(failedStep, error);
}
