/**
 * The full Up's split routes, IPv6 routes and DNS go in side by side (up.ts): what still holds
 * while they do — the kill switch and the pins before any of them, each change journaled before
 * it is made, verify's route read after the route steps (its kill-switch read beside them), their
 * events listed in order — and a failure of one leg rolls back what the other did.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type Runner, type StepRecord, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import type { RouteSpec } from '../../host/driver';
import { ConcurrencyGate } from '../../testing/concurrency-gate';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const intent: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'block' };
/** The routing monitor a full Up starts: never says anything. */
const idleMonitor = (argv: readonly string[], _options: StreamingOptions): StreamingProcess => ({
  argv: [...argv],
  pid: 1,
  exited: new Promise(() => undefined),
  stderrTail: () => [],
  stop: async () => ({ code: null, signal: 'SIGTERM' }),
});
const SPLIT_ADDS = ['addRoute 0.0.0.0/1 via 192.0.2.130', 'addRoute 128.0.0.0/1 via 192.0.2.130'];

/** A FakeDriver whose route adds, DNS writes and reads wait at the gate, and note what the journal held as each change began. */
class GatedChangesDriver extends FakeDriver {
  readonly journaledWhenMade: Record<string, boolean> = {};

  constructor(
    host: FakeHostState,
    private readonly store: JournalStore,
    private readonly changes: ConcurrencyGate,
  ) {
    super(host);
    this.gate = changes; // the reads too (the kill switch's)
  }

  override async addRoute(run: Runner, route: RouteSpec): Promise<void> {
    const call = `addRoute ${route.destination} via ${route.gateway}`;
    this.journaledWhenMade[call] = this.store.load()!.routes.some((r) => r.destination === route.destination && r.gateway === route.gateway);
    await this.changes.pass(call);
    return super.addRoute(run, route);
  }

  override async setDns(run: Runner, servers: string[]): Promise<void> {
    this.journaledWhenMade.setDns = this.store.load()!.dns?.snapshot.services[0]?.servers.join(' ') === '192.0.2.1';
    await this.changes.pass('setDns');
    return super.setDns(run, servers);
  }
}

describe('the full Up: split routes, IPv6 and DNS side by side', () => {
  let dir: string;
  let host: FakeHostState;
  let store: JournalStore;
  let gate: ConcurrencyGate;
  let driver: GatedChangesDriver;
  let engine: MacAgentEngine;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-beside-'));
    host = fakeHost();
    store = new JournalStore(dir);
    gate = new ConcurrencyGate(1_000);
    driver = new GatedChangesDriver(host, store, gate);
    engine = new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: idleMonitor, roamBackstopMs: 0, healCheckMs: 0 });
  });

  afterEach(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sets DNS while the split routes go in, after the kill switch and the pin, each journaled first; verify reads the routes back once they are in', async () => {
    // All of these must be in flight together, or the first fails after a second: the kill
    // switch's read-back (verify's) goes beside the changes, nothing among them changes it.
    gate.expect([...SPLIT_ADDS, 'setDns', 'readKillSwitch']);
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent, {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: true });
    expect(gate.released).toEqual([[...SPLIT_ADDS, 'setDns', 'readKillSwitch']]);
    expect(driver.journaledWhenMade).toEqual({ 'addRoute 203.0.113.10/32 via 192.0.2.1': true, [SPLIT_ADDS[0]]: true, [SPLIT_ADDS[1]]: true, setDns: true });

    const at = (call: string) => driver.calls.indexOf(call);
    for (const change of [...SPLIT_ADDS, 'setDns 198.51.100.53', 'readKillSwitch']) {
      expect(at(change)).toBeGreaterThan(at('loadKillSwitch en0'));
      expect(at(change)).toBeGreaterThan(at('addRoute 203.0.113.10/32 via 192.0.2.1'));
    }
    // verify's read of the routes comes after both are in.
    expect(driver.calls.lastIndexOf('readRoutes')).toBeGreaterThan(Math.max(...SPLIT_ADDS.map(at)));

    // Started together, reported in order once all have ended.
    const events = steps.map((s) => `${s.step}:${s.state}`).filter((e) => /^(split-routes|ipv6|dns|verify):/.test(e));
    expect(events).toEqual(['split-routes:started', 'ipv6:started', 'dns:started', 'verify:started', 'split-routes:done', 'ipv6:done', 'dns:done', 'verify:done']);
    expect(host.dns).toEqual(['198.51.100.53']);
  });

  it('a split route that fails: the DNS set beside it is restored by the rollback, with the routes and the kill switch', async () => {
    driver.failures.set('addRoute:128.0.0.0/1', 'RTNETLINK answers: Network is unreachable');
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent, {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: false, failedStep: 'split-routes' });
    expect(outcome.error).toMatch(/Network is unreachable \(rolled back\)/);
    // DNS was set beside the failing route (no command outlives its step), then put back.
    expect(driver.calls).toContain('setDns 198.51.100.53');
    expect(steps.find((s) => s.step === 'dns' && s.state !== 'started')).toMatchObject({ state: 'done' });
    // verify, beside them, reads no routes back when one failed.
    expect(steps.find((s) => s.step === 'verify' && s.state !== 'started')).toMatchObject({ state: 'skipped', message: expect.stringMatching(/a route step failed/) });
    expect(steps.filter((s) => s.state === 'done').map((s) => s.step)).toContain('rollback-restore-dns');
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null, dns: ['192.0.2.1'] });
    expect(store.load()).toMatchObject({ phase: 'down', dns: null, routes: [] });
  });

  it('an Up cancelled while they run ends once they have ended, not marked up: nothing rolled back, the next Up completes it', async () => {
    const cancel = new AbortController();
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent, { signal: cancel.signal }, (s) => {
      steps.push(s);
      if (s.step === 'dns' && s.state === 'started') cancel.abort();
    });
    expect(outcome).toMatchObject({ ok: false });
    expect(outcome.error).toMatch(/^cancelled.*nothing was rolled back/);
    expect(steps.filter((s) => s.state !== 'started' && s.step.startsWith('rollback-'))).toEqual([]);
    expect(host.routes.map((r) => r.destination)).toEqual(expect.arrayContaining(['0.0.0.0/1', '128.0.0.0/1']));
    expect(host.dns).toEqual(['198.51.100.53']);
    expect(store.load()).toMatchObject({ phase: 'up-in-progress', dns: { snapshot: { services: [{ servers: ['192.0.2.1'] }] } } });
    expect(engine.watching).toBe(false);

    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    expect(store.load()).toMatchObject({ phase: 'up', lastError: '' });
  });
});
