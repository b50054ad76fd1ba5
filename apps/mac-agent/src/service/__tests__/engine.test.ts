import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKGROUND_AFTER_OPERATION_MS, BusyError, InvalidRequestError } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type StepRecord, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';
import { validateIntent } from '../validation';

const intent = (overrides: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: '192.0.2.130',
  endpoints: [{ ip: '203.0.113.10', port: 51820 }],
  dnsServers: ['198.51.100.53'],
  ipv6: 'auto',
  ...overrides,
});

describe('MacAgentEngine (in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let driver: FakeDriver;
  let store: JournalStore;
  let engine: MacAgentEngine;
  let monitorLines: ((line: string) => void) | undefined;
  const spawned: string[][] = [];

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    spawned.push([...argv]);
    monitorLines = options.onLine;
    let exit!: (e: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (exit = r));
    return {
      argv: [...argv],
      pid: 1,
      exited,
      stderrTail: () => [],
      async stop() {
        monitorLines = undefined;
        exit({ code: null, signal: 'SIGTERM' });
        return exited;
      },
    };
  };

  const make = (extra: Partial<ConstructorParameters<typeof MacAgentEngine>[0]> = {}) =>
    new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: fakeSpawn, roamDebounceMs: 20, roamMaxWaitMs: 60, roamWatchAfterUpMs: 0, ...extra });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-engine-'));
    host = fakeHost();
    driver = new FakeDriver(host);
    store = new JournalStore(dir);
    engine = make();
    spawned.length = 0;
  });

  afterEach(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

  it('refuses an invalid request before touching anything', () => {
    expect(() => engine.up(intent({ vmAddress: 'vm.local', endpoints: [{ ip: '203.0.113.10', port: 70000 }], dnsServers: ['x'] }), {}, () => undefined)).toThrow(InvalidRequestError);
    expect(() => validateIntent(intent({ endpoints: [] }))).toThrow(/no WireGuard server endpoints/);
    expect(() => validateIntent(intent({ ipv6: 'route' }))).toThrow(/needs vm_address6/);
    expect(validateIntent(intent({ endpoints: [{ ip: '2001:0db8::0010', port: 1 }] })).endpoints[0].ip).toBe('2001:db8::10');
    expect(driver.calls).toEqual([]);
  });

  it('refuses a second Up or a Down while an Up runs (BusyError, as the vm-agent), and takes the next one after', async () => {
    const first = engine.up(intent(), {}, () => undefined);
    expect(() => engine.up(intent(), {}, () => undefined)).toThrow(BusyError);
    expect(() => engine.down({}, () => undefined)).toThrow(/another Up is in progress \(started .*\); wait for it to finish and retry/);
    expect(await first).toMatchObject({ ok: true });
    const down = await engine.down({}, () => undefined);
    expect(down).toMatchObject({ ok: true });
    expect(await engine.up(intent(), {}, () => undefined)).toMatchObject({ ok: true });
  });

  it('journals each route before adding it, in order: kill switch, pin, split routes, DNS', async () => {
    const listedWhenAdded: boolean[] = [];
    const addRoute = driver.addRoute.bind(driver);
    driver.addRoute = async (run, route) => {
      listedWhenAdded.push(store.load()!.routes.some((r) => r.destination === route.destination && r.gateway === route.gateway));
      return addRoute(run, route);
    };
    const outcome = await engine.up(intent(), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(listedWhenAdded).toEqual([true, true, true]);
    const mutations = driver.calls.filter((c) => /^(load|add|set)/.test(c));
    expect(mutations).toEqual(['loadKillSwitch en0', 'addRoute 203.0.113.10/32 via 192.0.2.1', 'addRoute 0.0.0.0/1 via 192.0.2.130', 'addRoute 128.0.0.0/1 via 192.0.2.130', 'setDns 198.51.100.53']);
    expect(store.load()).toMatchObject({ phase: 'up', uplink: { interface: 'en0' }, dns: { snapshot: { services: [{ servers: ['192.0.2.1'] }] } } });
    await settle();
    expect(spawned).toEqual([['fake-monitor']]);
  });

  it('is idempotent, keeps the first DNS snapshot across re-Ups, and removes routes an earlier Up no longer wants', async () => {
    await engine.up(intent(), {}, () => undefined);
    driver.calls.length = 0;
    const steps: StepRecord[] = [];
    await engine.up(intent(), {}, (s) => steps.push(s));
    expect(driver.calls.filter((c) => /^(load|add|set|delete)/.test(c))).toEqual([]);
    expect(steps.filter((s) => s.state === 'skipped').map((s) => s.step)).toEqual(['kill-switch', 'pin-endpoint', 'split-routes', 'dns']);

    // New server and new resolvers: the old pin goes, the DNS snapshot stays the user's.
    await engine.up(intent({ endpoints: [{ ip: '203.0.113.20', port: 443 }], dnsServers: ['198.51.100.54'] }), {}, () => undefined);
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '0.0.0.0/1', '128.0.0.0/1', '203.0.113.20/32']);
    expect(store.load()!.dns!.snapshot.services[0].servers).toEqual(['192.0.2.1']);
    expect(host.killSwitch?.endpoints).toEqual([{ ip: '203.0.113.20', port: 443 }]);

    await engine.down({}, () => undefined);
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null, dns: ['192.0.2.1'] });
    expect(store.load()).toMatchObject({ phase: 'down', routes: [], dns: null, killSwitch: null });
  });

  it('a kill-switch-only Up makes the host fail-closed and nothing more; a restart re-applies just that; the full Up completes it', async () => {
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent({ killSwitchOnly: true }), {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: true });
    expect(steps.filter((s) => s.state !== 'started').map((s) => s.step)).toEqual(['discover', 'kill-switch', 'pin-endpoint', 'verify']);
    // The kill switch (it lets the VM's WireGuard UDP out) and the pin; no split route, DNS untouched.
    expect(host.killSwitch).toMatchObject({ endpoints: [{ ip: '203.0.113.10', port: 51820 }] });
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '203.0.113.10/32']);
    expect(host.dns).toEqual(['192.0.2.1']);
    expect(store.load()).toMatchObject({ phase: 'up-in-progress', intent: { killSwitchOnly: true }, dns: null });
    expect(engine.watching).toBe(false); // roaming waits for the full Up

    // The agent restarts (the controller died in between): still fail-closed, still not routed.
    await engine.close();
    host.killSwitch = null;
    engine = make();
    await engine.reconcile();
    expect(host.killSwitch).not.toBeNull();
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '203.0.113.10/32']);
    expect(store.load()!.phase).toBe('up-in-progress');

    // The full Up after the handshake: the kill switch and the pin are found in place.
    steps.length = 0;
    expect(await engine.up(intent(), {}, (s) => steps.push(s))).toMatchObject({ ok: true });
    expect(steps.filter((s) => s.state === 'skipped').map((s) => s.step)).toEqual(['kill-switch', 'pin-endpoint']);
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '0.0.0.0/1', '128.0.0.0/1', '203.0.113.10/32']);
    expect(host.dns).toEqual(['198.51.100.53']);
    expect(store.load()).toMatchObject({ phase: 'up' });
    expect(store.load()!.intent!.killSwitchOnly).toBeUndefined();
  });

  it("the full Up right after a kill-switch-only Up of the same policy skips the kill switch's pre-read; its verify still reads it and fails on drift", async () => {
    expect(await engine.up(intent({ killSwitchOnly: true }), {}, () => undefined)).toMatchObject({ ok: true });
    driver.calls.length = 0;
    const steps: StepRecord[] = [];
    expect(await engine.up(intent(), {}, (s) => steps.push(s))).toMatchObject({ ok: true });
    expect(steps.find((s) => s.step === 'kill-switch' && s.state === 'skipped')?.message).toMatch(/kill-switch-only Up/);
    // Read once, by verify (beside the routes and DNS: nothing after the kill-switch step changes it); nothing re-loaded.
    expect(driver.calls.filter((c) => /KillSwitch/.test(c))).toEqual(['readKillSwitch']);
    expect(steps.find((s) => s.step === 'verify' && s.state === 'done')?.message).toMatch(/kill-switch rules read back/);

    // Another policy (a new server): read first as before and re-loaded.
    await engine.down({}, () => undefined);
    await engine.up(intent({ killSwitchOnly: true }), {}, () => undefined);
    driver.calls.length = 0;
    expect(await engine.up(intent({ endpoints: [{ ip: '203.0.113.20', port: 443 }] }), {}, () => undefined)).toMatchObject({ ok: true });
    expect(driver.calls.filter((c) => /KillSwitch/.test(c)).map((c) => c.split(' ')[0])).toEqual(['readKillSwitch', 'loadKillSwitch', 'readKillSwitch']);

    // Drift in between (the kill switch gone): the full Up fails at verify and is rolled back.
    await engine.down({}, () => undefined);
    await engine.up(intent({ killSwitchOnly: true }), {}, () => undefined);
    host.killSwitch = null;
    const outcome = await engine.up(intent(), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'verify' });
    expect(outcome.error).toMatch(/kill switch/);
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null });
    expect(store.load()!.phase).toBe('down');
  });

  it('with a DHCP lease server the full Up still follows the kill-switch-only Up without re-reading, and journals the server loaded', async () => {
    host.leaseServer = '192.0.2.1';
    expect(await engine.up(intent({ killSwitchOnly: true }), {}, () => undefined)).toMatchObject({ ok: true });
    expect(host.killSwitch).toMatchObject({ dhcpServer: '192.0.2.1' });
    driver.calls.length = 0;
    const steps: StepRecord[] = [];
    expect(await engine.up(intent(), {}, (s) => steps.push(s))).toMatchObject({ ok: true });
    expect(steps.find((s) => s.step === 'kill-switch' && s.state === 'skipped')?.message).toMatch(/kill-switch-only Up/);
    expect(driver.calls.filter((c) => /KillSwitch|DhcpServer/.test(c))).toEqual(['readKillSwitch']);
    expect(store.load()!.killSwitch!.policy).toMatchObject({ dhcpServer: '192.0.2.1' });
  });

  it('a kill-switch-only Up that fails is rolled back like any Up', async () => {
    driver.failures.set('addRoute:203.0.113.10/32', 'RTNETLINK answers: Network is unreachable');
    const outcome = await engine.up(intent({ killSwitchOnly: true }), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'pin-endpoint' });
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null });
    expect(store.load()!.phase).toBe('down');
  });

  it('rolls back everything when an Up fails half-way, and reports the step', async () => {
    driver.failures.set('addRoute:128.0.0.0/1', 'RTNETLINK answers: Network is unreachable');
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent(), {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: false, failedStep: 'split-routes' });
    expect(outcome.error).toMatch(/Network is unreachable \(rolled back\)/);
    expect(steps.filter((s) => s.state === 'done').map((s) => s.step)).toEqual(
      expect.arrayContaining(['rollback-remove-routes', 'rollback-unload-kill-switch']),
    );
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null, dns: ['192.0.2.1'] });
    expect(store.load()!.phase).toBe('down');
    expect(engine.watching).toBe(false);
  });

  it('a failure before any change leaves an existing Up alone', async () => {
    await engine.up(intent(), {}, () => undefined);
    driver.failures.set('discoverVnic', 'no route to the VM address');
    const outcome = await engine.up(intent({ vmAddress: '192.0.2.140' }), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'discover' });
    expect(store.load()!.phase).toBe('up');
    expect(host.killSwitch).not.toBeNull();
    expect(host.routes).toHaveLength(4);
  });

  it('Down without a journal still removes a kill switch left loaded, and never a default route', async () => {
    host.killSwitch = { uplink: 'en0', endpoints: [], allowDhcp6: false, blockIpv6: true };
    const outcome = await engine.down({}, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(host.killSwitch).toBeNull();
    expect(host.routes).toEqual([{ destination: '0.0.0.0/0', gateway: '192.0.2.1', interface: 'en0' }]);
  });

  it('on start re-asserts a journaled Up; while it cannot, it holds the kill switch (after a reboot) and retries', async () => {
    await engine.up(intent(), {}, () => undefined);
    await engine.close();
    // "Reboot": routes, kill switch and our DNS are gone; the VM is not up yet.
    host.routes = [{ destination: '0.0.0.0/0', gateway: '192.0.2.1', interface: 'en0' }];
    host.killSwitch = null;
    driver.failures.set('discoverVnic', 'no route to the VM address 192.0.2.130');
    engine = make({ reassertRetryMs: 30 });
    await engine.reconcile();
    expect(host.killSwitch).toMatchObject({ uplink: 'en0' }); // fail-closed while waiting
    expect(store.load()).toMatchObject({ phase: 'up', lastError: 'discover: no route to the VM address 192.0.2.130' });
    await settle(200);
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '0.0.0.0/1', '128.0.0.0/1', '203.0.113.10/32']);
    expect(store.load()).toMatchObject({ phase: 'up', lastError: '' });
    expect(engine.watching).toBe(true);
  });

  it('finishes an interrupted Down on start', async () => {
    await engine.up(intent(), {}, () => undefined);
    await engine.close();
    const journal = store.load()!;
    journal.phase = 'down-in-progress';
    store.save(journal);
    engine = make();
    await engine.reconcile();
    expect(host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null, dns: ['192.0.2.1'] });
  });

  it('roams: a new default route moves the kill switch and the pin; own route echoes are ignored, their deletion repaired', async () => {
    await engine.up(intent(), {}, () => undefined);
    await settle();
    expect(monitorLines).toBeDefined();
    driver.calls.length = 0;
    monitorLines!('added 0.0.0.0/1');
    monitorLines!('something else');
    await settle();
    expect(driver.calls).toEqual([]); // nothing re-read for our own echo

    host.uplink = { interface: 'en5', gateway: '192.0.2.65' };
    host.routes = host.routes.filter((r) => r.interface !== 'en0'); // en0's routes went with it
    host.routes.push({ destination: '0.0.0.0/0', gateway: '192.0.2.65', interface: 'en5' });
    for (let i = 0; i < 5; i++) monitorLines!('default via 192.0.2.65 dev en5');
    await settle();
    expect(driver.calls.filter((c) => c === 'discoverUplink')).toHaveLength(1); // one burst, one re-read
    expect(host.killSwitch).toMatchObject({ uplink: 'en5' });
    expect(host.routes).toContainEqual({ destination: '203.0.113.10/32', gateway: '192.0.2.65', interface: 'en5' });
    expect(engine.roams).toEqual([expect.objectContaining({ fromInterface: 'en0', toInterface: 'en5', toGateway: '192.0.2.65' })]);
    const mutations = driver.calls.filter((c) => /^(load|add|delete)/.test(c));
    expect(mutations[0]).toBe('loadKillSwitch en5'); // fail-closed first

    // Someone deletes our split route: it is put back.
    host.routes = host.routes.filter((r) => r.destination !== '0.0.0.0/1');
    monitorLines!('deleted 0.0.0.0/1');
    await settle();
    expect(host.routes.some((r) => r.destination === '0.0.0.0/1')).toBe(true);

    // No uplink at all: fail-closed, nothing removed.
    host.uplink = null;
    monitorLines!('default gone');
    await settle();
    expect(store.load()!.uplinkLost).toBe(true);
    expect(host.killSwitch).toMatchObject({ uplink: 'en5' });
    const status = await engine.status();
    expect(status.healthy).toBe(false);
    expect(status.reasons[0]).toMatch(/^uplink: no default route/);
  });

  it('starts the monitor only after handing back the outcome, then re-checks once: a change before it listened is caught', async () => {
    const outcome = await engine.up(intent(), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    // No process spawned before the caller had the outcome (gRPC flushes it first).
    expect(spawned).toEqual([]);
    expect(engine.watching).toBe(false);
    // Someone removes our split route after verify read it, before the monitor listens.
    host.routes = host.routes.filter((r) => r.destination !== '128.0.0.0/1');
    driver.calls.length = 0;
    await settle();
    expect(spawned).toEqual([['fake-monitor']]);
    expect(engine.watching).toBe(true);
    // A split route missing: is the VM on another interface now? No: the route is put back.
    // Then DNS is looked at, as after any routing-event burst: still ours, nothing set.
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes', 'discoverVnic 192.0.2.130', 'addRoute 128.0.0.0/1 via 192.0.2.130', 'readDns']);
    expect(host.routes.some((r) => r.destination === '128.0.0.0/1')).toBe(true);
  });

  it('by default the monitor starts BACKGROUND_AFTER_OPERATION_MS after the Up (off `wgctl up`\'s path: the CLI\'s exit, the first packets), then re-checks', async () => {
    await engine.close();
    engine = make({ roamWatchAfterUpMs: undefined });
    expect(await engine.up(intent(), {}, () => undefined)).toMatchObject({ ok: true });
    host.routes = host.routes.filter((r) => r.destination !== '128.0.0.0/1');
    await settle(BACKGROUND_AFTER_OPERATION_MS - 100);
    expect([spawned, engine.watching]).toEqual([[], false]);
    await settle(250);
    expect(spawned).toEqual([['fake-monitor']]);
    expect(engine.watching).toBe(true);
    expect(host.routes.some((r) => r.destination === '128.0.0.0/1')).toBe(true);
  });

  it('a Down right after an Up means no monitor at all', async () => {
    await engine.up(intent(), {}, () => undefined);
    await engine.down({}, () => undefined);
    await settle();
    expect(spawned).toEqual([]);
    expect(engine.watching).toBe(false);
  });

  it('follows the VM to a new interface when its bridge is re-created', async () => {
    await engine.up(intent(), {}, () => undefined);
    await settle();
    host.routes = host.routes.filter((r) => r.interface !== 'bridge100'); // the bridge went away with its routes
    host.vnic = { interface: 'bridge101', address: '192.0.2.129' };
    monitorLines!('link bridge101');
    await settle();
    expect(host.routes.filter((r) => r.interface === 'bridge101').map((r) => r.destination)).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
    expect(host.killSwitch).toMatchObject({ uplink: 'en0', vnic: 'bridge101' });
    expect(store.load()!.routes.every((r) => r.interface !== 'bridge100')).toBe(true);
    expect((await engine.status()).healthy).toBe(true);
  });

  it('status judges the live state against the journal', async () => {
    expect(await engine.status()).toMatchObject({ up: false, healthy: true, checks: [{ name: 'kill-switch-absent', ok: true }] });
    await engine.up(intent(), {}, () => undefined);
    const healthy = await engine.status();
    expect(healthy).toMatchObject({ up: true, healthy: true, dns: { servers: ['198.51.100.53'], previous: ['192.0.2.1'], managed: true } });
    expect(healthy.checks.map((c) => c.name)).toEqual(['uplink', 'pinned-uplink-current', 'routes', 'kill-switch', 'dns']);
    host.killSwitch = null;
    host.dns = ['192.0.2.1'];
    const broken = await engine.status();
    expect(broken.healthy).toBe(false);
    expect(broken.reasons).toEqual(['kill-switch: not loaded', 'dns: DNS should be 198.51.100.53, is 192.0.2.1']);
  });
});
