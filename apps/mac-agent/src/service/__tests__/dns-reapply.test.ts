/**
 * DNS that cannot leave the tunnel while up, and what a crash or a power loss does to it: the
 * engine with the real DarwinDriver's DNS (networksetup, over a ScriptedRunner: the exact argv
 * and the order), on the in-memory host for everything else (routes and the kill switch are
 * darwin-engine.test.ts's subject).
 *
 * The Mac: Wi-Fi with no DNS set (DHCP's), Thunderbolt Bridge with 192.0.2.53 and search
 * domain corp.example; the tunnel's resolver 198.51.100.65.
 *
 * Time is Jest's fake clock (debounce, the DNS follow-up); everything the engine awaits is a
 * microtask, so a few real setImmediate turns let it finish.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import { type Runner, type ScriptedCall, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import type { DnsSnapshot, HostNetworkDriver } from '../../host/driver';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { PhasedRunner, runPhase } from '../../testing/phased-runner';
import { JournalStore, type MacJournal, type UpIntent } from '../journal';

const OURS = '198.51.100.65';
const INTENT: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: [OURS], ipv6: 'auto' };
const DEBOUNCE_MS = 100;
const DNS_RECHECK_MS = 2_000;

const WIFI = 'Wi-Fi';
const BRIDGE = 'Thunderbolt Bridge';
const USB = 'USB 10/100/1000 LAN';

/** `networksetup -listallnetworkservices`, then the servers and search domains of each service. */
function dnsRead(...services: { name: string; servers: string[]; domains?: string[] }[]): ScriptedCall[] {
  const listed = ['An asterisk (*) denotes that a network service is disabled.', ...services.map((s) => s.name)];
  return [
    { argv: ['networksetup', '-listallnetworkservices'], stdout: `${listed.join('\n')}\n` },
    ...services.flatMap(({ name, servers, domains = [] }) => [
      { argv: ['networksetup', '-getdnsservers', name], stdout: servers.length ? `${servers.join('\n')}\n` : `There aren't any DNS Servers set on ${name}.\n` },
      { argv: ['networksetup', '-getsearchdomains', name], stdout: domains.length ? `${domains.join('\n')}\n` : `There aren't any Search Domains set on ${name}.\n` },
    ]),
  ];
}
const wifi = (servers: string[]) => ({ name: WIFI, servers });
const bridge = (servers: string[]) => ({ name: BRIDGE, servers, domains: ['corp.example'] });
const usb = (servers: string[]) => ({ name: USB, servers });
const setOurs = (service: string): ScriptedCall => ({ argv: ['networksetup', '-setdnsservers', service, OURS] });

/** What the user had: restored by Down, whatever happened in between. */
const USER_SNAPSHOT = { services: [{ name: WIFI, servers: [], searchDomains: [] }, { name: BRIDGE, servers: ['192.0.2.53'], searchDomains: ['corp.example'] }] };
const RESTORE_USER_DNS: ScriptedCall[] = [
  { argv: ['networksetup', '-setdnsservers', WIFI, 'Empty'] },
  { argv: ['networksetup', '-setsearchdomains', WIFI, 'Empty'] },
  { argv: ['networksetup', '-setdnsservers', BRIDGE, '192.0.2.53'] },
  { argv: ['networksetup', '-setsearchdomains', BRIDGE, 'corp.example'] },
];

/** The in-memory host, its DNS handled by the real DarwinDriver. */
function darwinDnsOnFakeHost(host: FakeHostState): HostNetworkDriver {
  const darwin = new DarwinDriver();
  return Object.assign(new FakeDriver(host), {
    readDns: (run: Runner) => darwin.readDns(run),
    setDns: (run: Runner, servers: string[], current: DnsSnapshot) => darwin.setDns(run, servers, current),
    restoreDns: (run: Runner, snapshot: DnsSnapshot) => darwin.restoreDns(run, snapshot),
  });
}

describe('DNS through the tunnel (engine + darwin networksetup, in-memory routes)', () => {
  let dir: string;
  let store: JournalStore;
  let host: FakeHostState;
  let runner: PhasedRunner;
  let logs: MemoryTransport;
  let engine: MacAgentEngine;
  let monitorLine: ((line: string) => void) | undefined;

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    monitorLine = options.onLine;
    const exited = Promise.resolve({ code: null, signal: 'SIGTERM' as NodeJS.Signals });
    return { argv: [...argv], pid: 4300, exited, stderrTail: () => [], stop: async () => exited };
  };

  const makeEngine = () =>
    new MacAgentEngine({
      driver: darwinDnsOnFakeHost(host),
      runner,
      journal: store,
      logger: createLogger({ service: 'mac-agent', level: 'info', transports: [logs] }),
      spawnMonitor: fakeSpawn,
      now: () => Date.now(),
      roamDebounceMs: DEBOUNCE_MS,
      roamWatchAfterUpMs: 0, // the watches as soon as the reply is out: these tests script them
      dnsRecheckMs: DNS_RECHECK_MS,
      roamBackstopMs: 0, // roam-backstop.test.ts
      healCheckMs: 0, // heal tests
    });

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wtm-dns-reapply-'));
    store = new JournalStore(dir);
    host = fakeHost();
    runner = new PhasedRunner();
    logs = new MemoryTransport();
    engine = makeEngine();
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  const phase = async <T>(script: ScriptedCall[], fn: () => Promise<T> | T): Promise<T> => (await runPhase(runner, script, fn)).result;

  const logged = () => logs.lines.map((l) => JSON.parse(l) as { level: string; message: string; services?: string[]; reason?: string });
  const errors = () => logged().filter((l) => l.level === 'error');

  /** Up, then the monitor's first re-check and its DNS follow-up: DNS ours everywhere. */
  async function up(): Promise<void> {
    const outcome = await phase([...dnsRead(wifi([]), bridge(['192.0.2.53'])), setOurs(WIFI), setOurs(BRIDGE)], () => engine.up(INTENT, {}, () => undefined));
    expect(outcome).toMatchObject({ ok: true });
    await phase(dnsRead(wifi([OURS]), bridge([OURS])), () => jest.advanceTimersByTime(DEBOUNCE_MS));
    await phase(dnsRead(wifi([OURS]), bridge([OURS])), () => jest.advanceTimersByTime(DNS_RECHECK_MS));
    expect(store.load()!.dns).toEqual({ snapshot: USER_SNAPSHOT, servers: [OURS] });
  }

  describe('while up', () => {
    it('a service that appears is journaled with its own DNS before it is set; one configd rewrites is set again 2 s later; Down restores all of them', async () => {
      await up();
      const journalWhenSet: MacJournal['dns'][] = [];
      runner.beforeRun = (argv) => {
        if (argv[1] === '-setdnsservers') journalWhenSet.push(store.load()!.dns);
      };

      // A USB Ethernet is plugged in: a link event. Its service has no DNS of its own (DHCP's).
      await phase([...dnsRead(wifi([OURS]), usb([]), bridge([OURS])), setOurs(USB)], async () => {
        monitorLine!('link en7');
        jest.advanceTimersByTime(DEBOUNCE_MS);
      });
      const withUsb = { snapshot: { services: [...USER_SNAPSHOT.services, { name: USB, servers: [], searchDomains: [] }] }, servers: [OURS] };
      expect(journalWhenSet).toEqual([withUsb]); // write-ahead: in the journal before it was changed
      expect(store.load()!.dns).toEqual(withUsb);

      // configd rewrites Wi-Fi after the change, after that first look; the follow-up sets it
      // again. The user's own value for Wi-Fi stays the journaled one.
      jest.advanceTimersByTime(DNS_RECHECK_MS - 1);
      await phase([...dnsRead(wifi([]), usb([OURS]), bridge([OURS])), setOurs(WIFI)], () => jest.advanceTimersByTime(1));
      expect(store.load()!.dns).toEqual(withUsb);
      expect(logged().filter((l) => l.message.startsWith('DNS re-applied')).map((l) => [l.reason, l.services])).toEqual([
        ['after routing events', [`${USB} (new, journaled with none set)`]],
        [`${DNS_RECHECK_MS} ms after routing events`, [`${WIFI} (was none set)`]],
      ]);

      // Down puts back every service's own DNS, the one that appeared while up included.
      runner.beforeRun = undefined;
      const down = await phase(
        [...RESTORE_USER_DNS, { argv: ['networksetup', '-setdnsservers', USB, 'Empty'] }, { argv: ['networksetup', '-setsearchdomains', USB, 'Empty'] }],
        () => engine.down({}, () => undefined),
      );
      expect(down).toMatchObject({ ok: true });
      expect(errors()).toEqual([]);
    });

    it('a service that went away stays in the snapshot and is skipped when restoring; nothing is set when DNS is still ours', async () => {
      await up();
      // The Thunderbolt Bridge service is deleted: a link event, DNS still ours where it is left.
      await phase(dnsRead(wifi([OURS])), async () => {
        monitorLine!('link bridge0');
        jest.advanceTimersByTime(DEBOUNCE_MS);
      });
      await phase(dnsRead(wifi([OURS])), () => jest.advanceTimersByTime(DNS_RECHECK_MS));
      expect(store.load()!.dns).toEqual({ snapshot: USER_SNAPSHOT, servers: [OURS] });
      expect(logged().some((l) => l.message.startsWith('DNS re-applied'))).toBe(false);

      const down = await phase(
        [
          ...RESTORE_USER_DNS.slice(0, 2),
          // networksetup's answer for a service that does not exist: its search domains are not tried.
          { argv: ['networksetup', '-setdnsservers', BRIDGE, '192.0.2.53'], stdout: `${BRIDGE} is not a recognized network service.\n** Error: The parameters were not valid.\n` },
        ],
        () => engine.down({}, () => undefined),
      );
      expect(down).toMatchObject({ ok: true });
      expect(errors()).toEqual([]);
    });

    it('Down cancels the pending follow-up: no DNS command after it', async () => {
      await up();
      await phase(dnsRead(wifi([OURS]), bridge([OURS])), async () => {
        monitorLine!('link en7');
        jest.advanceTimersByTime(DEBOUNCE_MS);
      });
      await phase(RESTORE_USER_DNS, () => engine.down({}, () => undefined));
      await phase([], () => jest.advanceTimersByTime(60_000));
    });
  });

  describe('after a crash or a power loss', () => {
    /** The agent dies (no Down) and the Mac restarts: routes and PF rules are gone, networksetup settings are not. */
    async function upThenReboot(): Promise<void> {
      await up();
      await engine.close();
      host.routes = [{ destination: '0.0.0.0/0', gateway: '192.0.2.1', interface: 'en0' }];
      host.killSwitch = null;
      engine = makeEngine();
    }

    it('journal up, the host showing the user\'s DNS: start re-applies ours (kill switch first), keeps the user\'s snapshot, and journals then sets a service new since then', async () => {
      await upThenReboot();
      const killSwitchWhenSet: boolean[] = [];
      runner.beforeRun = (argv) => {
        if (argv[1] === '-setdnsservers') killSwitchWhenSet.push(host.killSwitch !== null);
      };
      // networksetup settings live in /Library/Preferences/SystemConfiguration/preferences.plist
      // and survive a reboot; this host shows the user's again (changed while the agent was
      // dead, or a power loss before the preferences were written out), plus a USB Ethernet.
      await phase([...dnsRead(wifi([]), usb(['192.0.2.99']), bridge(['192.0.2.53'])), setOurs(WIFI), setOurs(USB), setOurs(BRIDGE)], () => engine.reconcile());
      expect(killSwitchWhenSet).toEqual([true, true, true]); // fail-closed before DNS is pointed anywhere
      expect(host.killSwitch).toMatchObject({ uplink: 'en0' });
      expect(host.routes.map((r) => r.destination).sort()).toEqual(['0.0.0.0/0', '0.0.0.0/1', '128.0.0.0/1', '203.0.113.10/32']);
      // The user's snapshot kept, the new service journaled with its own settings (Down restores it).
      expect(store.load()).toMatchObject({ phase: 'up', dns: { servers: [OURS] } });
      expect(store.load()!.dns!.snapshot.services).toEqual([...USER_SNAPSHOT.services, { name: USB, servers: ['192.0.2.99'], searchDomains: [] }]);

      // The monitor's first re-check finds every service on the tunnel: nothing more to set.
      await phase(dnsRead(wifi([OURS]), usb([OURS]), bridge([OURS])), () => jest.advanceTimersByTime(DEBOUNCE_MS));
      expect(errors()).toEqual([]);
    });

    it('journal down-in-progress: start finishes the Down and restores the user\'s DNS', async () => {
      await upThenReboot();
      const journal = store.load()!;
      store.save({ ...journal, phase: 'down-in-progress' });
      await phase(RESTORE_USER_DNS, () => engine.reconcile());
      expect(store.load()).toMatchObject({ phase: 'down', dns: null, routes: [], killSwitch: null });
      expect(host).toMatchObject({ killSwitch: null, routes: [{ destination: '0.0.0.0/0' }] });
      expect(errors()).toEqual([]);
    });

    it('a crash after restore-dns: the journal no longer holds DNS, so the next start leaves DNS alone', async () => {
      await upThenReboot();
      const journal = store.load()!;
      store.save({ ...journal, phase: 'down-in-progress', dns: null }); // as restore-dns leaves it
      await phase([], () => engine.reconcile());
      expect(store.load()).toMatchObject({ phase: 'down', dns: null });
    });
  });
});
