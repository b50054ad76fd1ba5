/**
 * Excluded destinations (wgctl --exclude) in the engine, on the in-memory host: routed via the
 * uplink's gateway like a server pin, journaled before they are added, in the kill-switch
 * policy, moved by a roam, removed first by Down; refused when they would cover the VM, a DNS
 * server, the host's own address facing the VM, or too much. And the darwin argv of such a route.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidRequestError } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { darwinRouteArgv } from '../../host/darwin/routes';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';
import { downExcluded } from '../server';
import { validateIntent } from '../validation';

const intent = (overrides: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: '192.0.2.130',
  endpoints: [{ ip: '203.0.113.10', port: 51820 }],
  dnsServers: ['198.51.100.53'],
  ipv6: 'auto',
  exclude: ['198.51.100.128/25', '203.0.113.77/32'],
  ...overrides,
});

describe('excluded destinations in the engine (in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let driver: FakeDriver;
  let store: JournalStore;
  let engine: MacAgentEngine;
  let monitorLines: ((line: string) => void) | undefined;

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    monitorLines = options.onLine;
    let exit!: (e: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (exit = r));
    return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => (exit({ code: null, signal: 'SIGTERM' }), exited) };
  };
  const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-exclude-'));
    host = fakeHost();
    driver = new FakeDriver(host);
    store = new JournalStore(dir);
    engine = new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: fakeSpawn, roamDebounceMs: 20, roamMaxWaitMs: 60, roamWatchAfterUpMs: 0 });
  });
  afterEach(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Up routes each excluded CIDR via the original gateway after the pin (journaled first) and lets it through the kill switch', async () => {
    const listedWhenAdded: string[] = [];
    const addRoute = driver.addRoute.bind(driver);
    driver.addRoute = async (run, route) => {
      listedWhenAdded.push(store.load()!.routes.find((r) => r.destination === route.destination)?.role ?? 'unlisted');
      return addRoute(run, route);
    };
    const outcome = await engine.up(validateIntent(intent()), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    const mutations = driver.calls.filter((c) => /^(load|add)/.test(c));
    expect(mutations).toEqual([
      'loadKillSwitch en0',
      'addRoute 203.0.113.10/32 via 192.0.2.1',
      'addRoute 198.51.100.128/25 via 192.0.2.1',
      'addRoute 203.0.113.77/32 via 192.0.2.1',
      'addRoute 0.0.0.0/1 via 192.0.2.130',
      'addRoute 128.0.0.0/1 via 192.0.2.130',
    ]);
    expect(listedWhenAdded).toEqual(['pin', 'exclude', 'exclude', 'split', 'split']);
    expect(host.killSwitch).toMatchObject({ exclude: ['198.51.100.128/25', '203.0.113.77/32'] });
    const status = await engine.status();
    expect(status.intent?.exclude).toEqual(['198.51.100.128/25', '203.0.113.77/32']);
  });

  it('a kill-switch-only Up adds no excluded route (the full Up does) but loads the same policy', async () => {
    await engine.up(validateIntent(intent({ killSwitchOnly: true })), {}, () => undefined);
    expect(host.routes.map((r) => r.destination)).not.toContain('198.51.100.128/25');
    expect(host.killSwitch).toMatchObject({ exclude: ['198.51.100.128/25', '203.0.113.77/32'] });
    await engine.up(validateIntent(intent()), {}, () => undefined);
    expect(host.routes).toContainEqual({ destination: '198.51.100.128/25', gateway: '192.0.2.1', interface: 'en0' });
  });

  it('a roam moves the excluded routes to the new gateway with the pin', async () => {
    await engine.up(validateIntent(intent()), {}, () => undefined);
    await settle();
    host.uplink = { interface: 'en5', gateway: '192.0.2.65' };
    host.routes = host.routes.filter((r) => r.interface !== 'en0');
    host.routes.push({ destination: '0.0.0.0/0', gateway: '192.0.2.65', interface: 'en5' });
    monitorLines!('default via 192.0.2.65 dev en5');
    await settle();
    expect(host.routes).toContainEqual({ destination: '198.51.100.128/25', gateway: '192.0.2.65', interface: 'en5' });
    expect(host.routes).toContainEqual({ destination: '203.0.113.77/32', gateway: '192.0.2.65', interface: 'en5' });
    expect(store.load()!.routes.filter((r) => r.role === 'exclude').map((r) => r.gateway)).toEqual(['192.0.2.65', '192.0.2.65']);
  });

  it('Down removes the excluded routes first, before the split routes and the pin', async () => {
    await engine.up(validateIntent(intent()), {}, () => undefined);
    driver.calls.length = 0;
    expect(await engine.down({}, () => undefined)).toMatchObject({ ok: true });
    const deletions = driver.calls.filter((c) => c.startsWith('deleteRoute')).map((c) => c.split(' ')[1]);
    expect(deletions.slice(0, 2).sort()).toEqual(['198.51.100.128/25', '203.0.113.77/32']);
    expect(deletions.at(-1)).toBe('203.0.113.10/32');
    expect(host.routes.map((r) => r.destination)).toEqual(['0.0.0.0/0']);
  });

  it('Down without a usable journal removes the excluded routes by their marks (the CIDRs the controller sends), and only with them', async () => {
    await engine.up(validateIntent(intent()), {}, () => undefined);
    const vmAddresses = { v4: '192.0.2.130' };
    const servers = [{ ip: '203.0.113.10', port: 51820 }];
    await store.remove();
    expect(await engine.down({ vmAddresses, servers }, () => undefined)).toMatchObject({ ok: true });
    expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '198.51.100.128/25', '203.0.113.77/32']); // not recognisable without them

    await engine.up(validateIntent(intent()), {}, () => undefined);
    await store.remove();
    expect(await engine.down({ vmAddresses, servers, excluded: ['198.51.100.128/25', '203.0.113.77/32'] }, () => undefined)).toMatchObject({ ok: true });
    expect(host.routes.map((r) => r.destination)).toEqual(['0.0.0.0/0']);
  });

  it('refuses CIDRs that would cover the VM, a DNS server, everything, or loopback; canonicalises the rest', () => {
    const refused = (exclude: string[]) => () => validateIntent(intent({ exclude }));
    expect(refused(['192.0.2.128/25'])).toThrow(/exclude\[0\]: 192\.0\.2\.128\/25 covers the VM's address 192\.0\.2\.130/);
    expect(refused(['198.51.100.0/24'])).toThrow(/covers the tunnel's DNS server 198\.51\.100\.53/);
    expect(refused(['0.0.0.0/0'])).toThrow(InvalidRequestError);
    expect(refused(['0.0.0.0/0'])).toThrow(/too wide/);
    expect(refused(['128.0.0.0/1'])).toThrow(/too wide/);
    expect(refused(['::/0'])).toThrow(/too wide/);
    expect(refused(['127.0.0.0/8'])).toThrow(/loopback/);
    expect(refused(['169.254.10.0/24'])).toThrow(/link-local/);
    expect(refused(['239.1.0.0/16'])).toThrow(/multicast/);
    expect(refused(['198.51.100.129/25'])).toThrow(/host bits set: write 198\.51\.100\.128\/25/);
    expect(refused(['example.com/24'])).toThrow(/not a CIDR/);
    expect(refused(Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`))).toThrow(/65 given, at most 64/);
    expect(validateIntent(intent({ exclude: ['2001:DB8:0::/48', '2001:db8::/48'] })).exclude).toEqual(['2001:db8::/48']);
  });

  it('refuses at discover an excluded CIDR covering the host\'s own address facing the VM, before any change', async () => {
    host.vnic = { interface: 'bridge100', address: '203.0.113.77' };
    const outcome = await engine.up(validateIntent(intent({ vmAddress: '203.0.113.78', exclude: ['203.0.113.77/32'] })), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'discover' });
    expect(outcome.error).toMatch(/203\.0\.113\.77\/32 covers this host's address facing the VM on bridge100/);
    expect(driver.calls.filter((c) => /^(load|add)/.test(c))).toEqual([]);
  });

  it('a Down request\'s excluded CIDRs: only those that may be excluded reach the argv, canonical', () => {
    expect(downExcluded({ exclude: [' 198.51.100.128/25 ', '0.0.0.0/0', '10.0.0.0/8; rm -rf /', '2001:DB8:5::/48'] })).toEqual(['198.51.100.128/25', '2001:db8:5::/48']);
  });

  it('darwin: an excluded net is `route add -inet NET/LEN GATEWAY`, a /32 a -host route', () => {
    expect(darwinRouteArgv('add', { destination: '198.51.100.128/25', gateway: '192.0.2.1', interface: 'en0' })).toEqual(['route', '-q', '-n', 'add', '-inet', '198.51.100.128/25', '192.0.2.1']);
    expect(darwinRouteArgv('add', { destination: '203.0.113.77/32', gateway: '192.0.2.1', interface: 'en0' })).toEqual(['route', '-q', '-n', 'add', '-inet', '-host', '203.0.113.77', '192.0.2.1']);
    expect(darwinRouteArgv('delete', { destination: '2001:db8:5::/48', gateway: 'fe80::1%en0', interface: 'en0' })).toEqual(['route', '-q', '-n', 'delete', '-inet6', '2001:db8:5::/48', 'fe80::1%en0']);
  });
});
