/**
 * Up: a list of named steps over one context, the way wg-quick's cmd_up reads (Down: ./down).
 * Every step streams the argv it ran; every change is journaled before it is made.
 *
 * Up, in order:
 *   discover      uplink (default route), the vnic facing the VM, the IPv6 decision — after a
 *                 kill-switch-only Up, taken from it while the routing table is unchanged (its
 *                 DNS read too, while DNS's files are): unread when that Up's verify read the
 *                 whole table back moments ago (verify then checks it again); after a Describe,
 *                 taken from it likewise
 *   kill-switch   load the uplink block (fail-closed from here on)
 *   pin-endpoint  each WireGuard server /32 (/128) via the original gateway — before the /1s
 *   exclude       each excluded CIDR via the original gateway, like a pin (full Up only)
 *   split-routes  0.0.0.0/1 and 128.0.0.0/1 via the VM (added side by side)
 *   ipv6          ::/1 and 8000::/1 via the VM, or IPv6 left blocked on the uplink
 *   dns           resolvers through the tunnel (the previous DNS is journaled first)
 *                 — these three run side by side, once the kill switch and the pins are in:
 *                 a query to the tunnel's resolvers sent before the split routes are in takes
 *                 the uplink, where the kill switch drops it (it is retried, never leaked). What
 *                 they change is journaled before they start when discover knows it (the table
 *                 read, DNS taken: journalAhead), else each journals its change before making it.
 *   remove-stale  routes of an earlier Up that are no longer wanted (changed endpoints…)
 *   verify        routes and kill switch read back and matched — with nothing stale, beside the
 *                 three above: the kill switch read at once (nothing after its step changes it),
 *                 the routes once the route steps have ended
 *
 * A kill-switch-only Up (the controller's, while the VM's tunnel comes up) stops after
 * pin-endpoint and verifies just that: the host is fail-closed and lets the VM's WireGuard UDP
 * out; the journal stays up-in-progress until the full Up that follows the handshake. Its verify
 * also reads DNS for that Up (readDnsForFullUp).
 *
 * A requested Up that fails after its first change is rolled back by a Down (`rollback-*`
 * steps); a re-assert (reconcile) that fails keeps the kill switch and is retried. An Up or
 * Down that has to end early — SIGTERM, or the caller cancelled — ends between two steps with
 * no rollback: whatever the host holds is listed in the journal (up-in-progress,
 * down-in-progress), the kill switch stays as that step left it (fail-closed), and the next
 * Up, Down or start (reconcile) takes it from there.
 */
import type { OperationOutcome } from '@wgctl/agent-kit';
import { mapTogether, readTogether, StepFailedError, type Runner, type StepBody, type StepListener } from '@wgctl/runner';
import { isIpAddressOrZoned } from '@wgctl/config';
import { PORTAL_WEB_PORTS, type DnsContext, type DnsSnapshot, type HostNetworkDriver, type KillSwitchPolicy, type PortalWindow, type RouteReadback, type RouteSpec, type RoutingTable } from '../host/driver';
import { describeDns, ensureKillSwitch, excludeRoutesFor, holdKillSwitch, IPV4_SPLIT, IPV6_SPLIT, messageOf, pinsFor, sameRoute, servicesOffTunnel } from './core';
import type { JournalRoute, MacJournal, UpIntent } from './journal';
import { endedBetweenSteps, type RequestOptions, type StepResult, type UpDownDeps } from './operation';
import { runDown } from './down';
import { UpContext, type UpMode } from './up-context';
import { discover, justAfterFailClosedUp, ownDestinations } from './up-discovery';
import { dnsFilesForFullUp, readDnsForFullUp, removeDnsWrittenAhead } from './up-dns-ahead';

export type { UpMode } from './up-context';

// ------------------------------------------------------------------------------------- Up

/** `intent` is checked already (validateIntent). */
export async function runUp(deps: UpDownDeps, intent: UpIntent, options: RequestOptions, listener: StepListener, mode: UpMode): Promise<OperationOutcome> {
  const up = new UpContext(deps, intent, options, listener, mode);
  const step = (name: string, body: (up: UpContext, r: Runner) => Promise<StepResult>) => up.steps.step(name, (r) => body(up, r));
  try {
    await step('discover', discover);
    planUp(up);
    writeAhead(up);
    await step('kill-switch', killSwitch);
    await step('pin-endpoint', pinEndpoints);
    if (intent.killSwitchOnly) {
      await step('verify', verifyFailClosed);
      return up.succeeded();
    }
    if (up.excluded.length) await step('exclude', excludeRoutes);
    const stale = up.journal.routes.filter((x) => !up.wanted.some((w) => sameRoute(w, x)));
    await routesDnsAndVerify(up, stale);
    // The steps side by side end together: an Up asked to end meanwhile ends here, not marked up.
    up.steps.checkpoint();
    up.journal.phase = 'up';
    // DNS written ahead is gone now: the dns step took it or removed it.
    delete up.journal.dnsPrepared;
    up.persist();
    if (!up.dryRun) deps.afterUp();
    return up.succeeded();
  } catch (e) {
    return upFailed(up, e);
  }
}

/** What this Up wants, from what discover found: the kill-switch policy, the pins for this uplink, the split routes. */
function planUp(up: UpContext): void {
  const { intent, uplink, vnic, ipv6 } = up;
  up.policy = {
    uplink: uplink.interface,
    endpoints: intent.endpoints.map(({ ip, port }) => ({ ip, port })),
    vnic: vnic.interface,
    vmAddress: intent.vmAddress,
    allowDhcp6: Boolean(uplink.gateway6),
    blockIpv6: ipv6 === 'block',
    ...(intent.exclude?.length ? { exclude: intent.exclude } : {}),
    ...(intent.allowLan ? { allowLan: true } : {}),
  };
  up.policy.portalWindow = portalWindowFor(up);
  up.pins = pinsFor(intent.endpoints, uplink);
  // Excluded routes come with the full Up: a kill-switch-only Up only makes the host fail-closed.
  up.excluded = intent.killSwitchOnly ? [] : excludeRoutesFor(intent.exclude, uplink);
  up.split = IPV4_SPLIT.map((destination) => ({ destination, gateway: intent.vmAddress, interface: vnic.interface }));
  up.split6 = ipv6 === 'route' ? IPV6_SPLIT.map((destination) => ({ destination, gateway: intent.vmAddress6 as string, interface: vnic.interface })) : [];
  up.wanted = [...up.pins, ...up.excluded, ...up.split, ...up.split6];
}

/**
 * `wgctl portal`: the sign-in window this Up opens (its resolvers are read by the kill-switch
 * step). Only on request: a re-assert at start never re-opens one (a crash ends it, fail-closed).
 * Not over a full Up: its routes send everything to the VM, where the browser finds no portal.
 */
function portalWindowFor(up: UpContext): PortalWindow | undefined {
  if (!up.intent.portalWindowMs || up.mode !== 'request') return undefined;
  if (up.previous.routes.some((r) => r.role === 'split' || r.role === 'split6')) {
    throw new Error('the Mac is up (all traffic via the VM): a sign-in window needs `wgctl down` first');
  }
  return { untilMs: up.core.now() + up.intent.portalWindowMs, resolvers: [] };
}

async function uplinkResolvers(up: UpContext, r: Runner): Promise<string[]> {
  return portalResolvers(up.driver, r, { uplink: up.uplink.interface, vnic: up.vnic.interface }, up.previous.dns?.snapshot);
}

/**
 * A sign-in window's resolvers: those of `snapshot` (DNS before our first change of it) if
 * given, else of DNS as it is now; IP literals only. When that lists none (on darwin,
 * networksetup shows hand-set resolvers only), the uplink's DHCP lease's, if the driver reads it.
 */
export async function portalResolvers(driver: HostNetworkDriver, r: Runner, context: { uplink: string; vnic: string }, snapshot?: DnsSnapshot): Promise<string[]> {
  const dns = snapshot ?? (await driver.readDns(r, context));
  const listed = [...new Set(dns.services.flatMap((s) => s.servers))].filter((s) => isIpAddressOrZoned(s) && !s.includes('%'));
  if (listed.length || !driver.readDhcpResolvers) return listed;
  return driver.readDhcpResolvers(r, context.uplink);
}

/** The journal says up-in-progress, with the plan, before the first change: from here on every change is covered. */
function writeAhead(up: UpContext): void {
  const j = up.journal;
  j.phase = 'up-in-progress';
  j.intent = up.intent;
  j.uplink = up.uplink;
  j.vnic = up.vnic;
  j.ipv6 = up.ipv6;
  j.lastError = '';
  j.killSwitch = { policy: up.policy, handle: up.previous.killSwitch?.handle ?? null };
  // What the full Up that follows compares the routing table with (reuseDiscovery).
  if (up.intent.killSwitchOnly && up.table) j.routingFingerprint = up.table.fingerprint(ownDestinations(up.intent));
  else delete j.routingFingerprint;
  // The DNS this Up writes ahead for the full Up (readDnsForFullUp), journaled before it is.
  if (up.driver.prepareDns && dnsFilesForFullUp(up)) j.dnsPrepared = true;
  journalAhead(up);
  up.persist();
  up.changedAnything = true;
}

/**
 * What the route steps and the dns step will change, journaled with the write ahead when
 * discover already knows it — the routes this Up adds (discover read the table), DNS as it is
 * (discover took it) — so that those steps, side by side after the handshake, write the journal
 * no more. Journaled and not yet made is what Down undoes anyway: deleting a route that is not
 * in the table succeeds, and restoring DNS to the snapshot when it was never changed rewrites
 * what is there.
 */
function journalAhead(up: UpContext): void {
  const { journal: j, intent } = up;
  if (up.table) {
    const roles: [JournalRoute['role'], RouteSpec[]][] = [['pin', up.pins], ['exclude', up.excluded], ['split', up.split], ['split6', up.split6]];
    // A kill-switch-only Up adds the pins alone.
    const added = intent.killSwitchOnly ? roles.slice(0, 1) : roles;
    const before = settledReadback(up.table, up.wanted);
    if (before) {
      up.routesBefore = before;
      for (const [role, specs] of added) {
        for (const spec of specs) if (!before.find((x) => sameRoute(x, spec))?.present) journalRoute(j, role, spec);
      }
    }
  }
  if (up.dnsNow && intent.dnsServers.length && !intent.killSwitchOnly) journalDns(j, up.dnsNow, intent.dnsServers);
}

/** Lists `route` in the journal (once). Returns whether it was not listed yet. */
function journalRoute(j: MacJournal, role: JournalRoute['role'], route: RouteSpec): boolean {
  if (j.routes.some((x) => sameRoute(x, route))) return false;
  j.routes.push({ role, destination: route.destination, gateway: route.gateway, interface: route.interface });
  return true;
}

/** The DNS the dns step sets, journaled: the snapshot once (a re-Up must not mistake our own DNS for the user's), the servers each time. */
function journalDns(j: MacJournal, current: DnsSnapshot, servers: string[]): NonNullable<MacJournal['dns']> {
  if (!j.dns) j.dns = { snapshot: current, servers };
  else j.dns.servers = servers;
  return j.dns;
}

/**
 * Whether this is the full Up that follows a kill-switch-only Up of the same run: the journal
 * is that Up's (up-in-progress, killSwitchOnly, no error since, written moments ago) and it
 * loaded the very policy this Up wants. Its verify read the kill switch back a moment ago, and
 * this Up's verify reads it again (and fails the Up on any drift), so the pre-read is skipped.
 */
function followsFailClosedUp(up: UpContext): boolean {
  return justAfterFailClosedUp(up) && samePolicyButLeaseServer(up.previous.killSwitch!.policy, up.policy);
}

/** The lease server and LAN subnets are read when the kill switch is loaded, so a fresh plan has none yet. */
function samePolicyButLeaseServer(loaded: KillSwitchPolicy, planned: KillSwitchPolicy): boolean {
  const { dhcpServer: _loadedServer, lanSubnets: _loadedLan, ...loadedRest } = loaded;
  const { dhcpServer: _plannedServer, lanSubnets: _plannedLan, ...plannedRest } = planned;
  return JSON.stringify(loadedRest) === JSON.stringify(plannedRest);
}

/** What a sign-in window lets through, for the kill-switch step. */
function portalSummary(policy: KillSwitchPolicy): string {
  const w = policy.portalWindow;
  if (!w) return '';
  return `; SIGN-IN WINDOW until ${new Date(w.untilMs).toISOString()}: this host's DNS to ${w.resolvers.join(', ') || 'no resolver'} and TCP ${PORTAL_WEB_PORTS.join('/')} anywhere`;
}

/** What --allow-lan lets through, for the kill-switch step (and so `wgctl plan`). */
function lanSummary(policy: KillSwitchPolicy): string {
  if (!policy.allowLan) return '';
  const subnets = policy.lanSubnets ?? [];
  return `; LAN allowed on ${policy.uplink}: ${subnets.length ? subnets.join(', ') : 'no private subnet'} both ways, and mDNS (DNS to the LAN blocked)`;
}

async function killSwitch(up: UpContext, r: Runner): Promise<StepResult> {
  const { policy } = up;
  if (followsFailClosedUp(up)) {
    // What was loaded, lease server included, is what verify and the journal must compare with.
    if (up.previous.killSwitch?.policy.dhcpServer) policy.dhcpServer = up.previous.killSwitch.policy.dhcpServer;
    if (up.previous.killSwitch?.policy.lanSubnets) policy.lanSubnets = up.previous.killSwitch.policy.lanSubnets;
    return { skipped: 'loaded by the kill-switch-only Up of this run (same policy); verify reads it back' };
  }
  if (policy.portalWindow) policy.portalWindow.resolvers = await uplinkResolvers(up, r);
  // Reading the live kill switch only serves to skip re-loading one of ours that is in force
  // and matching (a re-Up, a reconcile). With none in the journal (a first Up) it is loaded
  // straight away.
  const done = await ensureKillSwitch(up.driver, r, up.journal, policy, { readFirst: Boolean(up.previous.killSwitch), persist: () => up.persist() });
  if (done === 'kept') {
    // What ensureKillSwitch read into the policy (lease server, LAN subnets) is what is loaded:
    // journal it, so the full Up after a kill-switch-only one compares with it (followsFailClosedUp).
    up.persist();
    return { skipped: `already loaded and matching${lanSummary(policy)}` };
  }
  return `loaded on every interface but lo and ${policy.vnic}: only UDP to ${policy.endpoints.map((e) => `${e.ip}:${e.port}`).join(', ')} and DHCP may pass (uplink ${policy.uplink})${lanSummary(policy)}${portalSummary(policy)}`;
}

/**
 * Adds those of `specs` the routing table lacks, all journaled before the first is added (a
 * crash right after still gets them removed), then added side by side: they are independent
 * (0/1 and 128/1), and a failed add waits for the others, so nothing is added after the step
 * ends. The table is read once per Up — by discover where the driver reads it whole, else by the
 * first route step — for every route it wants: adding a pin does not change whether a split
 * route is there, and vice versa. Returns how many it added.
 */
async function ensureRoutes(up: UpContext, r: Runner, role: JournalRoute['role'], specs: RouteSpec[]): Promise<number> {
  const j = up.journal;
  // Route steps running side by side share the one read; from discover's table, the adds start at once.
  const before = (up.routesBefore ??= (up.table && settledReadback(up.table, up.wanted)) || up.driver.readRoutes(r, up.wanted));
  const routesBefore = Array.isArray(before) ? before : await before;
  const readback = specs.map((spec) => routesBefore.find((x) => sameRoute(x, spec))!);
  const missing: RouteSpec[] = readback.filter((x) => !x.present).map((x) => ({ destination: x.destination, gateway: x.gateway, interface: x.interface }));
  if (missing.length === 0) return 0;
  // Unless writeAhead journaled them all already (journalAhead).
  const journaled = missing.map((route) => journalRoute(j, role, route));
  if (journaled.some(Boolean)) up.persist();
  await mapTogether(missing, (route) => up.driver.addRoute(r, route));
  return missing.length;
}

async function pinEndpoints(up: UpContext, r: Runner): Promise<StepResult> {
  const { pins, uplink } = up;
  const added = await ensureRoutes(up, r, 'pin', pins);
  const what = pins.map((p) => p.destination).join(', ');
  return added ? `pinned ${what} via ${uplink.gateway} dev ${uplink.interface}` : { skipped: `${what} already pinned via ${uplink.gateway}` };
}

async function excludeRoutes(up: UpContext, r: Runner): Promise<StepResult> {
  const { excluded, uplink } = up;
  const added = await ensureRoutes(up, r, 'exclude', excluded);
  const what = excluded.map((x) => x.destination).join(', ');
  return added ? `excluded ${what}: via ${uplink.gateway} dev ${uplink.interface}, outside the tunnel` : { skipped: `${what} already routed via ${uplink.gateway}` };
}

async function splitRoutes(up: UpContext, r: Runner): Promise<StepResult> {
  const added = await ensureRoutes(up, r, 'split', up.split);
  return added ? `0.0.0.0/1 and 128.0.0.0/1 via ${up.intent.vmAddress} dev ${up.vnic.interface}` : { skipped: 'split routes already in place' };
}

async function ipv6Routes(up: UpContext, r: Runner): Promise<StepResult> {
  if (up.ipv6 === 'block') return 'no IPv6 route via the VM: the kill switch drops IPv6 on every interface but the VM\'s';
  const added = await ensureRoutes(up, r, 'split6', up.split6);
  return added ? `::/1 and 8000::/1 via ${up.intent.vmAddress6} dev ${up.vnic.interface}` : { skipped: 'IPv6 split routes already in place' };
}

async function dnsThroughTunnel(up: UpContext, r: Runner): Promise<StepResult> {
  const { intent, driver, journal: j } = up;
  const context: DnsContext = { uplink: up.uplink.interface, vnic: up.vnic.interface };
  if (intent.dnsServers.length === 0) {
    await removeDnsWrittenAhead(up, r);
    if (!j.dns) return { skipped: 'no DNS servers requested: DNS left as it is' };
    await driver.restoreDns(r, j.dns.snapshot);
    const was = describeDns(j.dns.snapshot);
    j.dns = null;
    up.persist();
    return `no DNS servers requested: restored the previous DNS (${was})`;
  }
  const current = up.dnsNow ?? (await driver.readDns(r, context));
  const journaled = JSON.stringify(j.dns);
  const dns = journalDns(j, current, intent.dnsServers);
  // Unless writeAhead journaled it already (journalAhead).
  if (JSON.stringify(dns) !== journaled) up.persist();
  const wanted = intent.dnsServers.join(' ');
  const { offTunnel, unknown } = servicesOffTunnel(dns, current);
  if (current.services.length > 0 && offTunnel.length === 0) {
    await removeDnsWrittenAhead(up, r);
    return { skipped: `DNS already ${wanted}` };
  }
  if (unknown.length > 0) {
    // A service that appeared since the snapshot (e.g. while the agent was down): journaled first.
    dns.snapshot.services.push(...unknown);
    up.persist();
  }
  // Only what is off the tunnel is set (all of the snapshot's when nothing could be listed).
  const services = current.services.length > 0 ? offTunnel : dns.snapshot.services;
  // Setting DNS takes what a kill-switch-only Up wrote ahead (or writes it anew where it differs).
  await driver.setDns(r, intent.dnsServers, { ...dns.snapshot, services }, context, up.dnsReadAhead?.prepared);
  return `DNS → ${wanted} (previous: ${describeDns(dns.snapshot)})`;
}

async function removeStale(up: UpContext, r: Runner, stale: JournalRoute[]): Promise<StepResult> {
  for (const route of stale) {
    await up.driver.deleteRoute(r, route);
    up.journal.routes = up.journal.routes.filter((x) => !sameRoute(x, route));
    up.persist();
  }
  return `removed routes of an earlier Up: ${stale.map((s) => `${s.destination} via ${s.gateway}`).join(', ')}`;
}

/**
 * split-routes, ipv6 and dns side by side, and verify with them when no stale route is left to
 * remove (see the header); else remove-stale, then verify.
 */
async function routesDnsAndVerify(up: UpContext, stale: JournalRoute[]): Promise<void> {
  const routeSteps: Promise<StepResult>[] = [];
  const routeStep = (body: (up: UpContext, r: Runner) => Promise<StepResult>) => (r: Runner) => {
    const running = body(up, r);
    routeSteps.push(running);
    return running;
  };
  const together: [string, StepBody][] = [
    ['split-routes', routeStep(splitRoutes)],
    ['ipv6', routeStep(ipv6Routes)],
    ['dns', (r) => dnsThroughTunnel(up, r)],
  ];
  // The steps' bodies are called in this order, so the route steps are running when verify's is.
  const routesIn = () => Promise.allSettled(routeSteps).then((ended) => ended.every((x) => x.status === 'fulfilled'));
  if (stale.length === 0) together.push(['verify', (r) => verifyRoutesAndKillSwitch(up, r, up.wanted, routesIn())]);
  await up.steps.stepsTogether(together);
  if (stale.length === 0) return;
  await up.steps.step('remove-stale', (r) => removeStale(up, r, stale));
  await up.steps.step('verify', (r) => verifyRoutesAndKillSwitch(up, r, up.wanted));
}

/** A kill-switch-only Up: the kill switch and the pins read back (the split routes come later). */
async function verifyFailClosed(up: UpContext, r: Runner): Promise<StepResult> {
  const [result, dnsRead] = await readTogether([verifyRoutesAndKillSwitch(up, r, up.pins), readDnsForFullUp(up, r)]);
  return typeof result === 'string' ? `fail-closed: ${result}; routes via the VM and DNS follow the full Up${dnsRead}` : result;
}

/** `routesIn`: the routes are read once it says the route steps all succeeded (else verify is skipped: they failed). */
async function verifyRoutesAndKillSwitch(up: UpContext, r: Runner, wanted: RouteSpec[], routesIn?: Promise<boolean>): Promise<StepResult> {
  if (up.dryRun) return { skipped: 'dry run: nothing to verify' };
  const { driver } = up;
  // The whole table (both families) where the read serves more than the read-back: a
  // kill-switch-only Up keeps it for the full Up that follows, which checks it again here
  // (up-discovery.ts, takeTableAhead).
  const whole = driver.readRoutingTable && (up.intent.killSwitchOnly || up.unreadFingerprint !== undefined) ? driver.readRoutingTable.bind(driver) : undefined;
  const readRoutes = async (): Promise<{ routes: RouteReadback[]; table?: RoutingTable }> => {
    if (!whole) return { routes: await driver.readRoutes(r, wanted) };
    const table = await whole(r);
    return { routes: settledReadback(table, wanted) ?? (await driver.readRoutes(r, wanted)), table };
  };
  const routesRead = routesIn ? routesIn.then((allIn) => (allIn ? readRoutes() : null)) : readRoutes();
  const [read, ks] = await readTogether([routesRead, driver.readKillSwitch(r, up.policy, up.journal.killSwitch?.handle ?? undefined)]);
  if (!read) return { skipped: 'a route step failed: nothing to read back' };
  const { routes, table } = read;
  const missing = routes.filter((x) => !x.present);
  const problems = [
    ...missing.map((m) => `route ${m.destination} via ${m.gateway} missing${m.evidence ? ` (table has: ${m.evidence})` : ''}`),
    ...ks.problems.map((p) => `kill switch: ${p}`),
  ];
  if (problems.length) throw new Error(problems.join('; '));
  return `${routes.length} routes and ${ks.rules.length} kill-switch rules read back${table ? tableAheadNote(up, table) : ''}`;
}

/** The table's read-back of `wanted`; undefined when the one read cannot settle a row (RouteReadback.unsure): readRoutes answers then. */
function settledReadback(table: RoutingTable, wanted: RouteSpec[]): RouteReadback[] | undefined {
  const routes = table.readback(wanted);
  return routes.some((x) => x.unsure) ? undefined : routes;
}

/** A kill-switch-only Up keeps its read-back; the full Up that took it unread checks it (see verifyRoutesAndKillSwitch). */
function tableAheadNote(up: UpContext, table: RoutingTable): string {
  const fingerprint = table.fingerprint(ownDestinations(up.intent));
  if (up.intent.killSwitchOnly) {
    if (!up.dryRun && up.mode === 'request') up.core.keepTableAhead({ table, fingerprint, atMs: up.core.now() });
    return '';
  }
  if (fingerprint === up.unreadFingerprint) return '';
  return '; the routing table changed since the kill-switch-only Up read it (not by this Up): the roam check that starts after the Up takes it from there, fail-closed meanwhile';
}

/**
 * A failed Up. Ended between steps (stop, cancel): nothing undone (endedBetweenSteps). A dry
 * run, or nothing changed yet: nothing to undo. Re-asserting: stay fail-closed (the kill switch
 * held) and be retried, never fall open. Requested: rolled back by a Down (`rollback-*`).
 */
async function upFailed(up: UpContext, e: unknown): Promise<OperationOutcome> {
  const ended = endedBetweenSteps(up, 'Up', e, up.changedAnything);
  if (ended) return ended;
  const failedStep = e instanceof StepFailedError ? e.step : '';
  const error = messageOf(e);
  if (up.dryRun) return up.failed(failedStep, error);
  if (up.mode === 'reconcile' && !up.changedAnything) {
    // E.g. at boot before the VM is up: keep (or put back) the last kill switch.
    up.previous.lastError = `${failedStep}: ${error}`;
    up.core.persist(up.previous);
    await holdKillSwitch(up.core, up.previous);
    return up.failed(failedStep, error);
  }
  if (!up.changedAnything) return up.failed(failedStep, error);
  if (up.mode === 'reconcile') {
    // The user asked for up: stay fail-closed and retry, never fall open.
    up.journal.lastError = `${failedStep}: ${error}`;
    up.persist();
    await holdKillSwitch(up.core, up.journal);
    return up.failed(failedStep, error);
  }
  // An Up the caller asked for leaves nothing half-applied: undo everything.
  up.core.logger.warn('up failed: rolling back', { step: failedStep, error });
  const rollback = await runDown(up.deps, { dryRun: false }, (s) => up.listener({ ...s, step: `rollback-${s.step}` }));
  const suffix = rollback.ok ? ' (rolled back)' : ` (rollback failed at ${rollback.failedStep}: ${rollback.error})`;
  return up.failed(failedStep, error + suffix);
}
