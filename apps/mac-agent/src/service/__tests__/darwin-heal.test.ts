/**
 * Self-healing on macOS: the real engine and DarwinDriver over an in-memory Mac (testing/fake-mac.ts)
 * that keeps PF, routes and DNS as state, so that someone else can undo what the agent applied —
 * `pfctl -d`, a flushed anchor, a deleted /1 route — and the tests see what the agent puts back,
 * how fast (Jest's fake clock), and what PF then does to a packet (the PF evaluator).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import type { StreamingOptions, StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import { FakeMac } from '../../testing/fake-mac';
import type { PfPacket } from '../../testing/pf-evaluator';
import { settleEngine } from '../../testing/phased-runner';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const STATE_DIR = '/Library/Application Support/wgctl/mac-agent';
const INTENT: UpIntent = { vmAddress: '198.51.100.5', endpoints: [{ ip: '203.0.113.7', port: 51820 }], dnsServers: ['198.51.100.65'], ipv6: 'auto' };
/** A packet the kill switch must stop on Wi-Fi, and the WireGuard one it must let out. */
const LEAK: PfPacket = { direction: 'out', interface: 'en0', af: 'inet', proto: 'udp', src: '192.0.2.10', dst: '198.51.100.10', srcPort: 50000, dstPort: 443 };
const WIREGUARD: PfPacket = { ...LEAK, dst: '203.0.113.7', dstPort: 51820 };

/** `route -n monitor`'s message for a route deleted by process `pid` (route.tproj's layout). */
function routeDeleted(pid: number, values: string): string[] {
  return [
    '',
    'got message of size 164 on Mon Mar  2 10:00:07 2026',
    `RTM_DELETE: Delete Route: len 164, pid: ${pid}, seq 3, errno 0, flags:<GATEWAY,DONE,STATIC>`,
    'locks:  inits: ',
    'sockaddrs: <DST,GATEWAY,NETMASK>',
    ` ${values}`,
  ];
}

describe('self-healing on macOS (in-memory Mac)', () => {
  let dir: string;
  let mac: FakeMac;
  let logs: MemoryTransport;
  let engine: MacAgentEngine;
  let monitorLine: ((line: string) => void) | undefined;

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    // The DNS watch (scutil) has its own tests (darwin-dns-heal.test.ts): here it stays silent.
    if (argv[0] === 'scutil') return { argv: [...argv], pid: 4400, exited: new Promise(() => undefined), stderrTail: () => [], stop: async () => ({ code: null, signal: 'SIGTERM' }) };
    monitorLine = options.onLine;
    const exited = Promise.resolve({ code: null, signal: 'SIGTERM' as NodeJS.Signals });
    return { argv: [...argv], pid: 4300, exited, stderrTail: () => [], stop: async () => exited };
  };

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wsh-darwin-heal-'));
    mac = new FakeMac();
    logs = new MemoryTransport();
    engine = new MacAgentEngine({
      driver: new DarwinDriver({ stateDir: STATE_DIR }),
      runner: mac,
      journal: new JournalStore(dir),
      logger: createLogger({ service: 'mac-agent', level: 'info', transports: [logs] }),
      spawnMonitor: fakeSpawn,
      roamWatchAfterUpMs: 0, // the monitor as soon as the reply is out: these tests script it
      now: () => Date.now(),
      roamBackstopMs: 0,
      dnsRecheckMs: 0,
      // healCheckMs: the driver's default (PF: every second)
    });
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  const logged = () => logs.lines.map((l) => JSON.parse(l) as { level: string; message: string; by?: string; found?: string; commands?: string[] });
  const commandsSince = (n: number) => mac.commands.slice(n).map((c) => c.join(' '));
  /** Lets the clock run `ms`, the engine finishing what each timer started. */
  async function elapse(ms: number, step = 100): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      jest.advanceTimersByTime(step);
      await settleEngine();
    }
  }

  async function up(intent: UpIntent = INTENT): Promise<string> {
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    await settleEngine();
    await elapse(200); // the monitor's first re-check
    expect(mac.verdict(LEAK).action).toBe('block');
    expect(mac.verdict(WIREGUARD).action).toBe('pass');
    expect(engine.healSummary()).toEqual({ count: 0, last: null });
    return engine.journal().killSwitch!.handle!.pfToken!;
  }

  it('PF disabled by someone (pfctl -d): re-enabled with a new token (journaled) and the rules in force again within 2 s', async () => {
    const token = await up();
    const before = mac.commands.length;
    mac.disablePf();
    expect(mac.verdict(LEAK).action).toBe('pass'); // the window the watch closes
    await elapse(100);
    expect(mac.pfEnabled).toBe(false); // nothing happens before the periodic look
    await elapse(1_900);
    expect(mac.pfEnabled).toBe(true);
    expect(mac.verdict(LEAK).action).toBe('block');
    expect(mac.verdict(WIREGUARD).action).toBe('pass');
    const journaled = engine.journal().killSwitch!.handle!.pfToken!;
    expect(journaled).not.toBe(token);
    expect(mac.tokens).toEqual([journaled]);
    const ran = commandsSince(before);
    expect(ran).toContain('pfctl -E');
    expect(ran.filter((c) => c === 'pfctl -E')).toHaveLength(1);
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'kill-switch', by: '' } });
    expect(engine.healSummary().last!.detail).toMatch(/token .* is gone/);
    const heal = logged().find((l) => l.message === 'self-heal: kill-switch put back')!;
    expect(heal).toMatchObject({ level: 'warn', by: 'unknown (not reported by the OS)' });
    expect(heal.commands).toContain('pfctl -E');
    // In force again: the next looks find nothing to do.
    const after = mac.commands.length;
    await elapse(3_000);
    expect(commandsSince(after).every((c) => c === 'pfctl -s References' || c === 'pfctl -a com.apple/000.wgctl -sr')).toBe(true);
    expect(engine.healSummary().count).toBe(1);
    expect((await engine.status()).heals.count).toBe(1);
  });

  it('anchor flushed (pfctl -a com.apple/000.wgctl -F all): reloaded within 2 s, the token still held is kept', async () => {
    const token = await up();
    const before = mac.commands.length;
    await elapse(400);
    mac.flushAnchor();
    expect(mac.verdict(LEAK).action).toBe('pass');
    await elapse(2_000);
    expect(mac.verdict(LEAK).action).toBe('block');
    expect(mac.anchorRules!.length).toBeGreaterThan(0);
    const ran = commandsSince(before);
    expect(ran).toContain(`pfctl -a com.apple/000.wgctl -f ${STATE_DIR}/pf-com.apple_000.wgctl.conf`);
    expect(ran).not.toContain('pfctl -E');
    expect(engine.journal().killSwitch!.handle!.pfToken).toBe(token);
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'kill-switch', detail: expect.stringMatching(/no rules \(flushed\)/) } });
  });

  it('a /1 route deleted by another process: re-added at once and the log names its pid', async () => {
    await up();
    mac.deleteRoute('0.0.0.0/1');
    for (const line of routeDeleted(312, 'default 198.51.100.5 128.0.0.0')) monitorLine!(line);
    await elapse(200); // the routing monitor's debounce (100 ms)
    expect(mac.routes).toContainEqual({ destination: '0.0.0.0/1', gateway: '198.51.100.5' });
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'route', by: 'pid 312', detail: '0.0.0.0/1 via 198.51.100.5 dev bridge100 missing' } });
    expect(logged().find((l) => l.message.startsWith('route restored'))).toMatchObject({ level: 'warn', by: 'pid 312' });
  });

  it('a re-load that fails is retried 5 s later, not every second', async () => {
    await up();
    mac.refuseLoads = true;
    mac.flushAnchor();
    const before = mac.commands.length;
    await elapse(6_000);
    const validations = commandsSince(before).filter((c) => c.startsWith('pfctl -n -a com.apple/000.wgctl -f'));
    expect(validations).toHaveLength(2); // ~1 s after the flush, then 5 s later
    expect(logged().filter((l) => l.message.startsWith('self-heal: re-loading the kill switch failed'))).toHaveLength(2);
    mac.refuseLoads = false;
    await elapse(5_000);
    expect(mac.verdict(LEAK).action).toBe('block');
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'kill-switch' } });
  });

  it('never beside a Down: the watch stops before the Down changes anything, and stays stopped', async () => {
    await up();
    let release!: () => void;
    mac.hold = { match: (argv) => argv[0] === 'networksetup' && argv[1] === '-setdnsservers', until: new Promise<void>((r) => (release = r)) };
    const down = engine.down({}, () => undefined);
    await settleEngine();
    expect(engine.watchingKillSwitch).toBe(false);
    const before = mac.commands.length;
    mac.disablePf(); // mid-Down, someone turns PF off: not the watch's business any more
    await elapse(3_000);
    expect(commandsSince(before)).toEqual([]);
    release();
    expect(await down).toMatchObject({ ok: true });
    await elapse(3_000);
    expect(mac.pfEnabled).toBe(false);
    expect(mac.commands.some((c, i) => i >= before && c.join(' ') === 'pfctl -E')).toBe(false);
    expect(engine.healSummary().count).toBe(0);
  });

  it('a kill-switch-only Up is watched too: its flushed anchor is reloaded', async () => {
    expect(await engine.up({ ...INTENT, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    expect(engine.journal().phase).toBe('up-in-progress');
    await elapse(200);
    mac.flushAnchor();
    await elapse(2_000);
    expect(mac.verdict(LEAK).action).toBe('block');
    expect(engine.healSummary()).toMatchObject({ count: 1, last: { what: 'kill-switch' } });
  });
});
