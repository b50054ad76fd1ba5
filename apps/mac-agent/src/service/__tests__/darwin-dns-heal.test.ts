/**
 * DNS changed behind the agent's back on macOS, with no routing event: the real engine and
 * DarwinDriver over the in-memory Mac (testing/fake-mac.ts). The `scutil` DNS watch is a scripted
 * process: it gets its commands on stdin and prints what scutil's n.watch prints
 * (configd scutil.tproj/notifications.c storeCallback) when someone changes a service's DNS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import type { StreamingOptions, StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import { FakeMac } from '../../testing/fake-mac';
import { settleEngine } from '../../testing/phased-runner';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const STATE_DIR = '/Library/Application Support/wgctl/mac-agent';
const TUNNEL_DNS = '198.51.100.65';
const CAFE_DNS = '192.0.2.1';
const INTENT: UpIntent = { vmAddress: '198.51.100.5', endpoints: [{ ip: '203.0.113.7', port: 51820 }], dnsServers: [TUNNEL_DNS], ipv6: 'auto' };

/** What scutil prints for one notification (storeCallback's layout). */
const notification = (key: string) => ['notification callback (store address = 0x7f8c2bd04a80).', `  10:00:07.412 (+3.118) changedKey [0] = ${key}`];

interface FakeProcess {
  argv: readonly string[];
  input?: string;
  print: (line: string) => void;
  /** Ends it as spawnStreaming would report an exit. */
  exit: (code: number) => void;
  stopped: boolean;
}

describe('DNS self-healing on macOS without a routing event (in-memory Mac, scripted scutil)', () => {
  let dir: string;
  let mac: FakeMac;
  let logs: MemoryTransport;
  let engine: MacAgentEngine;
  let spawned: FakeProcess[];

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    const proc: FakeProcess = {
      argv,
      input: options.input,
      print: options.onLine,
      exit: (code) => {
        proc.stopped = true;
        options.onExit?.({ code, signal: null });
      },
      stopped: false,
    };
    spawned.push(proc);
    const exited = new Promise<never>(() => undefined);
    return {
      argv: [...argv],
      pid: 4300 + spawned.length,
      exited,
      stderrTail: () => [],
      stop: async () => {
        proc.stopped = true;
        return { code: null, signal: 'SIGTERM' };
      },
    };
  };
  const scutil = () => spawned.filter((p) => p.argv[0] === 'scutil' && !p.stopped);

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wdd-darwin-dns-'));
    mac = new FakeMac();
    spawned = [];
    logs = new MemoryTransport();
    engine = new MacAgentEngine({
      driver: new DarwinDriver({ stateDir: STATE_DIR }),
      runner: mac,
      journal: new JournalStore(dir),
      logger: createLogger({ service: 'mac-agent', level: 'info', transports: [logs] }),
      spawnMonitor: fakeSpawn,
      now: () => Date.now(),
      roamBackstopMs: 0,
      dnsRecheckMs: 0,
      healCheckMs: 0,
    });
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  const commandsSince = (n: number) => mac.commands.slice(n).map((c) => c.join(' '));
  async function elapse(ms: number, step = 50): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      jest.advanceTimersByTime(step);
      await settleEngine();
    }
  }

  async function up(): Promise<void> {
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    await settleEngine();
    await elapse(500); // the routing monitor's first re-check, DNS included
    expect(mac.dns).toEqual([TUNNEL_DNS]);
    expect(engine.healSummary().count).toBe(0);
  }

  it('scutil watches configd\'s DNS keys, its stdin left open with the commands', async () => {
    await up();
    expect(scutil()).toHaveLength(1);
    expect(scutil()[0].input).toBe('n.add State:/Network/Global/DNS\nn.add Setup:/Network/Service/[^/]+/DNS pattern\nn.watch\n');
    await engine.down({}, () => undefined);
    await settleEngine();
    expect(scutil()).toHaveLength(0); // stopped with the Down
  });

  it('a service\'s DNS set to the café resolver: scutil reports it, networksetup -setdnsservers puts the tunnel\'s back within 2 s, the heal names the event', async () => {
    await up();
    const before = mac.commands.length;
    await mac.run(['networksetup', '-setdnsservers', 'Wi-Fi', CAFE_DNS]); // the user, System Settings
    await elapse(1_000);
    expect(mac.dns).toEqual([CAFE_DNS]); // no routing event: nothing happens until configd tells
    const told = Date.now();
    for (const line of notification('Setup:/Network/Service/8A4C1F2E-35B1-4E0C-9D7A-0C2B3E4F5A61/DNS')) scutil()[0].print(line);
    for (const line of notification('State:/Network/Global/DNS')) scutil()[0].print(line);
    let tookMs = -1;
    for (let waited = 0; waited < 2_000 && tookMs < 0; waited += 50) {
      await elapse(50);
      if (mac.dns.join() === TUNNEL_DNS) tookMs = Date.now() - told;
    }
    process.stdout.write(`dns self-heal (darwin, fake clock): tunnel resolvers back ${tookMs} ms after scutil's notification\n`);
    expect(tookMs).toBeGreaterThanOrEqual(0);
    expect(tookMs).toBeLessThan(2_000);
    expect(commandsSince(before)).toContain(`networksetup -setdnsservers Wi-Fi ${TUNNEL_DNS}`);
    expect(engine.healSummary()).toMatchObject({
      count: 1,
      last: {
        what: 'dns',
        detail: `Wi-Fi (was ${CAFE_DNS})`,
        trigger: 'scutil: changed Setup:/Network/Service/8A4C1F2E-35B1-4E0C-9D7A-0C2B3E4F5A61/DNS, scutil: changed State:/Network/Global/DNS',
      },
    });
    // The agent's own write is reported too: one more read, nothing set again.
    const after = mac.commands.length;
    for (const line of notification('State:/Network/Global/DNS')) scutil()[0].print(line);
    await elapse(500);
    expect(commandsSince(after)).toContain('networksetup -getdnsservers Wi-Fi'); // looked
    expect(commandsSince(after).filter((c) => c.startsWith('networksetup -setdnsservers'))).toEqual([]);
    expect(engine.healSummary().count).toBe(1);
  });

  it('scutil exiting is restarted with its commands, and the restart looks once for what it missed', async () => {
    await up();
    const first = scutil()[0];
    await mac.run(['networksetup', '-setdnsservers', 'Wi-Fi', CAFE_DNS]); // while scutil is down
    first.exit(1);
    await elapse(1_500); // the supervisor's restart delay (1 s), then the debounce
    expect(scutil()).toHaveLength(1);
    expect(scutil()[0]).not.toBe(first);
    expect(scutil()[0].input).toBe(first.input);
    expect(mac.dns).toEqual([TUNNEL_DNS]);
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'dns', trigger: 'scutil restarted' } });
  });
});
