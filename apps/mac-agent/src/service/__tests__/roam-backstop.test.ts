/**
 * The roaming backstop: while up, a periodic read of the uplink and of our routes catches a
 * change the routing monitor did not report (`route -n monitor` can hold back a bare
 * RTM_IFINFO until the next message). The in-memory host, Jest's fake clock, the default
 * intervals (backstop 5 s, debounce 100 ms); everything the engine awaits is a microtask.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { RuleRunner, ScriptedRunner, SharedReadRunner, formatArgv, type Runner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { settleEngine } from '../../testing/phased-runner';
import { JournalStore, type UpIntent } from '../journal';

const INTENT: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' };
const BACKSTOP_MS = 5_000; // the default
const DEBOUNCE_MS = 100; // the default

describe('roaming backstop (in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let driver: FakeDriver;
  let engine: MacAgentEngine;

  const idleMonitor = (argv: readonly string[], _options: StreamingOptions): StreamingProcess => {
    const exited = Promise.resolve({ code: null, signal: 'SIGTERM' as NodeJS.Signals });
    return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => exited };
  };

  const make = (extra: Partial<ConstructorParameters<typeof MacAgentEngine>[0]> = {}) =>
    new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: new JournalStore(dir), logger: silentLogger(), spawnMonitor: idleMonitor, now: () => Date.now(), dnsRecheckMs: 0, healCheckMs: 0, roamWatchAfterUpMs: 0, ...extra }); // self-healing: darwin-heal.test.ts

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wtm-backstop-'));
    host = fakeHost();
    driver = new FakeDriver(host);
    engine = make();
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  const settle = settleEngine;
  const advance = async (ms: number) => {
    jest.advanceTimersByTime(ms);
    await settle();
  };
  /** Interval by interval, letting each tick's check run before the next tick. */
  const advanceIntervals = async (count: number) => {
    for (let i = 0; i < count; i++) await advance(BACKSTOP_MS);
  };

  /** Up, the monitor started and its first re-check done: time is then DEBOUNCE_MS into the first interval. */
  async function up(): Promise<void> {
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    await settle();
    expect(engine.watching).toBe(true);
    await advance(DEBOUNCE_MS);
    driver.calls.length = 0;
  }

  /** Ethernet en5 took over the default route, and en0's routes went with en0: no monitor event said so. */
  function silentRoamToEthernet(): void {
    host.uplink = { interface: 'en5', gateway: '192.0.2.65' };
    host.routes = host.routes.filter((r) => r.interface !== 'en0');
    host.routes.push({ destination: '0.0.0.0/0', gateway: '192.0.2.65', interface: 'en5' });
  }

  it('a default route that changed with no monitor event is picked up within one interval: one uplink and one route read per tick', async () => {
    await up();
    const asked: unknown[] = [];
    const discoverUplink = driver.discoverUplink.bind(driver);
    driver.discoverUplink = (run, options) => (asked.push(options), discoverUplink(run, options));
    await advance(BACKSTOP_MS - DEBOUNCE_MS - 1);
    expect(driver.calls).toEqual([]);
    await advance(1);
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes']); // all in order: nothing else
    expect(asked).toEqual([{ address: false }]); // next hops only: no read of our address
    driver.calls.length = 0;

    silentRoamToEthernet(); // right after a tick: the longest it can go unseen
    await advance(BACKSTOP_MS - 1);
    expect(driver.calls).toEqual([]);
    await advance(1);
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes']);
    await advance(DEBOUNCE_MS); // then the path a monitor event takes
    expect(host.killSwitch).toMatchObject({ uplink: 'en5' });
    expect(host.routes).toContainEqual({ destination: '203.0.113.10/32', gateway: '192.0.2.65', interface: 'en5' });
    expect(engine.roams).toEqual([expect.objectContaining({ fromInterface: 'en0', toInterface: 'en5', toGateway: '192.0.2.65' })]);
  });

  it('reads the routing table once per tick: the uplink and our routes come from the same read', async () => {
    // Both reads go to the routing table through the runner they are handed, as the drivers' do.
    const runner = new RuleRunner([{ match: (argv) => argv[0] === 'netstat', reply: { stdout: '' } }]);
    const readTable = (run: Runner) => run.run(['netstat', '-rn'], { readOnly: true });
    const discoverUplink = driver.discoverUplink.bind(driver);
    const readRoutes = driver.readRoutes.bind(driver);
    driver.discoverUplink = async (run) => (await readTable(run), discoverUplink(run));
    driver.readRoutes = async (run, wanted) => (await readTable(run), readRoutes(run, wanted));
    await engine.close();
    engine = make({ runner });
    await up();
    runner.calls.length = 0;
    await advance(BACKSTOP_MS - DEBOUNCE_MS);
    expect(runner.calls.map((argv) => formatArgv(argv))).toEqual(['netstat -rn']);
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes']);
  });

  it('one check at a time: ticks while a check hangs start none; a requested Up in flight skips them', async () => {
    await up();
    let release!: () => void;
    const discoverUplink = driver.discoverUplink.bind(driver);
    driver.discoverUplink = async (run) => {
      const found = discoverUplink(run);
      await new Promise<void>((resolve) => (release = resolve));
      return found;
    };
    await advanceIntervals(4);
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes']); // the first tick's, still waiting
    release();
    await settle();
    driver.discoverUplink = discoverUplink;
    driver.calls.length = 0;

    // A re-Up that hangs in its DNS step: the ticks meanwhile do not read at all.
    let releaseUp!: () => void;
    const readDns = driver.readDns.bind(driver);
    driver.readDns = async (run, context) => {
      const dns = readDns(run, context);
      await new Promise<void>((resolve) => (releaseUp = resolve));
      return dns;
    };
    const reUp = engine.up(INTENT, {}, () => undefined);
    await settle();
    const upReads = driver.calls.length;
    await advanceIntervals(3);
    expect(driver.calls.length).toBe(upReads);
    releaseUp();
    expect(await reUp).toMatchObject({ ok: true });
    await settle();
    // Skipped, not queued behind the Up: nothing is read again right after it.
    expect(driver.calls.slice(upReads).filter((c) => c === 'discoverUplink')).toEqual([]);
  });

  it('stops with Down and with close: no read after either, no timer left', async () => {
    await up();
    expect(await engine.down({}, () => undefined)).toMatchObject({ ok: true });
    driver.calls.length = 0;
    await advanceIntervals(10);
    expect(driver.calls).toEqual([]);

    await up();
    await engine.close();
    await advanceIntervals(10);
    expect(driver.calls).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('0 turns it off', async () => {
    await engine.close();
    engine = make({ roamBackstopMs: 0 });
    await up();
    await advanceIntervals(10);
    expect(driver.calls).toEqual([]);
  });

  it('a finding the roam cannot clear is handed over once, not every tick; a roam that failed is tried again', async () => {
    await up(); // the first tick is BACKSTOP_MS - DEBOUNCE_MS away
    // The VM is off: its bridge and our split routes are gone and cannot be put back.
    host.routes = host.routes.filter((r) => r.interface !== 'bridge100');
    const unreachable: string[] = [];
    const addRoute = driver.addRoute.bind(driver);
    driver.addRoute = async (run, route) => {
      if (route.interface !== 'bridge100') return addRoute(run, route);
      unreachable.push(route.destination);
      throw new Error('Network is unreachable');
    };
    await advance(BACKSTOP_MS - DEBOUNCE_MS); // the tick finds them missing…
    await advance(DEBOUNCE_MS); // …and the roam tries to put them back
    expect(unreachable).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
    driver.calls.length = 0;
    await advanceIntervals(3);
    expect(driver.calls).toEqual(['discoverUplink', 'readRoutes', 'discoverUplink', 'readRoutes', 'discoverUplink', 'readRoutes']);
    expect(unreachable).toHaveLength(2);

    // The uplink changes under it (a new finding) and the roam fails to load the kill switch:
    // the next tick hands the finding over again.
    driver.addRoute = addRoute;
    host.routes.push({ destination: '0.0.0.0/1', gateway: '192.0.2.130', interface: 'bridge100' }, { destination: '128.0.0.0/1', gateway: '192.0.2.130', interface: 'bridge100' });
    silentRoamToEthernet();
    driver.failures.set('loadKillSwitch', 'pfctl: DIOCADDRULE: Device busy');
    driver.calls.length = 0;
    await advance(BACKSTOP_MS - DEBOUNCE_MS);
    await advance(DEBOUNCE_MS);
    expect(driver.calls.filter((c) => c.startsWith('loadKillSwitch'))).toEqual(['loadKillSwitch en5']);
    expect(engine.roams).toEqual([]);
    await advance(BACKSTOP_MS - DEBOUNCE_MS);
    await advance(DEBOUNCE_MS);
    expect(engine.roams).toEqual([expect.objectContaining({ fromInterface: 'en0', toInterface: 'en5' })]);
    expect(host.killSwitch).toMatchObject({ uplink: 'en5' });
  });
});

/** SharedReadRunner itself is tested in libs/runner; here, that darwin's two reads of the routing table are one. */
describe('SharedReadRunner', () => {
  it('darwin: discoverUplink and readRoutes together are one netstat -rn (and one ifconfig, for the uplink\'s address)', async () => {
    const row = (destination: string, gateway: string, flags: string, netif: string) => `${destination.padEnd(18)} ${gateway.padEnd(18)} ${flags.padEnd(10)} ${netif.padStart(14)}`;
    const netstat = ['Routing tables', '', 'Internet:', row('Destination', 'Gateway', 'Flags', 'Netif Expire'), row('default', '192.0.2.1', 'UGScg', 'en0'), row('203.0.113.10', '192.0.2.1', 'UGHS', 'en0'), ''].join('\n');
    const script = new ScriptedRunner([
      { argv: ['netstat', '-rn'], stdout: netstat },
      { argv: ['ifconfig'], stdout: 'lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n\tinet 127.0.0.1 netmask 0xff000000\nen0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255\n' },
    ]);
    const darwin = new DarwinDriver();
    const run = new SharedReadRunner(script);
    const [uplink, routes] = await Promise.all([darwin.discoverUplink(run), darwin.readRoutes(run, [{ destination: '203.0.113.10/32', gateway: '192.0.2.1', interface: 'en0' }])]);
    script.assertDone();
    expect(uplink).toEqual({ interface: 'en0', gateway: '192.0.2.1', address: '192.0.2.10' });
    expect(routes).toMatchObject([{ present: true }]);
  });

  it('darwin: the roam check asks for no address, so its tick is that one netstat -rn alone', async () => {
    const row = (destination: string, gateway: string, flags: string, netif: string) => `${destination.padEnd(18)} ${gateway.padEnd(18)} ${flags.padEnd(10)} ${netif.padStart(14)}`;
    const netstat = ['Routing tables', '', 'Internet:', row('Destination', 'Gateway', 'Flags', 'Netif Expire'), row('default', '192.0.2.1', 'UGScg', 'en0'), ''].join('\n');
    const script = new ScriptedRunner([{ argv: ['netstat', '-rn'], stdout: netstat }]);
    expect(await new DarwinDriver().discoverUplink(script, { address: false })).toEqual({ interface: 'en0', gateway: '192.0.2.1' });
    script.assertDone();
  });
});
