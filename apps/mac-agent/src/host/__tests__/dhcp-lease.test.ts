/**
 * The kill switch's DHCP unicast exception follows the uplink's lease (KillSwitchPolicy.
 * dhcpServer, RFC 2131 §4.4.5 RENEWING): read from the driver each time the kill switch is
 * ensured — at Up and on a roam — so the rules, the journal and the read-back agree, and a
 * new network's server replaces the old one. The in-memory host with a lease table of its own,
 * the engine's default intervals on Jest's fake clock; and the darwin read (`ipconfig
 * getpacket`) on a scripted runner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type Runner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { settleEngine } from '../../testing/phased-runner';
import { MacAgentEngine } from '../../service/engine';
import { JournalStore, type UpIntent } from '../../service/journal';
import { DarwinDriver } from '../darwin';

const INTENT: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' };
const BACKSTOP_MS = 5_000; // the engine's default roam check
const DEBOUNCE_MS = 100;

/** The in-memory host's driver, with a lease table: the on-link lease server per interface. */
class LeasedFakeDriver extends FakeDriver {
  leases: Record<string, string | undefined> = {};
  override async readDhcpServer(_run: Runner, uplink: string): Promise<string | undefined> {
    return this.leases[uplink];
  }
}

describe('the DHCP exception follows the lease (engine, in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let driver: LeasedFakeDriver;
  let engine: MacAgentEngine;
  let leases: Record<string, string | undefined>;

  const idleMonitor = (argv: readonly string[], _options: StreamingOptions): StreamingProcess => {
    const exited = Promise.resolve({ code: null, signal: 'SIGTERM' as NodeJS.Signals });
    return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => exited };
  };
  const advance = async (ms: number) => {
    jest.advanceTimersByTime(ms);
    await settleEngine();
  };
  const journaledPolicy = () => new JournalStore(dir).load()?.killSwitch?.policy;

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wtm-lease-'));
    host = fakeHost();
    driver = new LeasedFakeDriver(host);
    leases = driver.leases = { en0: '192.0.2.1' };
    engine = new MacAgentEngine({
      driver, runner: new ScriptedRunner([]), journal: new JournalStore(dir), logger: silentLogger(), spawnMonitor: idleMonitor, now: () => Date.now(), dnsRecheckMs: 0, healCheckMs: 0,
    });
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Up loads the lease server of the uplink; the verify read-back agrees (no drift reported)', async () => {
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    expect(host.killSwitch).toMatchObject({ uplink: 'en0', dhcpServer: '192.0.2.1' });
    expect(journaledPolicy()).toMatchObject({ dhcpServer: '192.0.2.1' });
    expect((await engine.status()).reasons).toEqual([]);
  });

  it('a roam to a network with another lease server reloads the rules with it; one without a lease drops it', async () => {
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    await settleEngine();
    await advance(DEBOUNCE_MS);

    // Ethernet en5 takes over (seen by the periodic check), its lease from another server.
    leases.en5 = '192.0.2.65';
    host.uplink = { interface: 'en5', gateway: '192.0.2.65' };
    host.routes = host.routes.filter((r) => r.interface !== 'en0');
    host.routes.push({ destination: '0.0.0.0/0', gateway: '192.0.2.65', interface: 'en5' });
    driver.calls.length = 0;
    await advance(BACKSTOP_MS);
    await advance(DEBOUNCE_MS);
    expect(driver.calls).toContain('loadKillSwitch en5');
    expect(host.killSwitch).toMatchObject({ uplink: 'en5', dhcpServer: '192.0.2.65' });
    expect(journaledPolicy()).toMatchObject({ uplink: 'en5', dhcpServer: '192.0.2.65' });

    // Back to en0, whose lease is gone meanwhile (a static address, or a server behind a relay).
    leases.en0 = undefined;
    host.uplink = { interface: 'en0', gateway: '192.0.2.1', address: '192.0.2.2' };
    host.routes = host.routes.filter((r) => r.interface !== 'en5');
    host.routes.push({ destination: '0.0.0.0/0', gateway: '192.0.2.1', interface: 'en0' });
    await advance(BACKSTOP_MS);
    await advance(DEBOUNCE_MS);
    expect(host.killSwitch).toMatchObject({ uplink: 'en0' });
    expect(host.killSwitch).not.toHaveProperty('dhcpServer');
    expect(journaledPolicy()).not.toHaveProperty('dhcpServer');
    expect((await engine.status()).reasons).toEqual([]);
  });
});

describe('DarwinDriver.readDhcpServer (ipconfig getpacket)', () => {
  const PACKET = [
    'op = BOOTREPLY', 'htype = 1', 'flags = 0', 'hlen = 6', 'hops = 0', 'xid = 0xceb36b13', 'secs = 0',
    'ciaddr = 0.0.0.0', 'yiaddr = 192.168.2.51', 'siaddr = 0.0.0.0', 'giaddr = 0.0.0.0', 'chaddr = ac:bc:32:ce:d3:f5',
    'sname = ', 'file = ', 'options:', 'Options count is 7',
    'dhcp_message_type (uint8): ACK 0x5', 'server_identifier (ip): 192.168.2.1', 'lease_time (uint32): 0x15180',
    'subnet_mask (ip): 255.255.255.0', 'router (ip_mult): {192.168.2.1}', 'domain_name_server (ip_mult): {192.168.2.1}', 'end (none): ', '',
  ].join('\n'); // support.moonpoint.com's capture, as in libs/parsers ipconfig.test.ts
  const read = async (reply: { stdout?: string; exitCode?: number }) => {
    const run = new ScriptedRunner([{ argv: ['ipconfig', 'getpacket', 'en0'], ...reply }]);
    const server = await new DarwinDriver().readDhcpServer(run, 'en0');
    run.assertDone();
    return server;
  };

  it('is the on-link server of the lease', async () => {
    expect(await read({ stdout: PACKET })).toBe('192.168.2.1');
  });

  it.each([
    ['no lease (ipconfig prints nothing, exit 1)', { exitCode: 1 }],
    ['a relayed lease whose server is off-link', { stdout: PACKET.replace('server_identifier (ip): 192.168.2.1', 'server_identifier (ip): 198.51.100.67') }],
    ['an answer it cannot read', { stdout: 'ipconfig: something else\n' }],
  ])('is undefined for %s (the broadcast alone then)', async (_what, reply) => {
    expect(await read(reply)).toBeUndefined();
  });
});
