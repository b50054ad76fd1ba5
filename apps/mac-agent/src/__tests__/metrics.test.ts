/**
 * --metrics-listen: the flag (in the service definition install writes, refused without mTLS)
 * and the running agent's metrics server — served from the sampler's cache: a scrape never
 * touches the host.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { promtoolCheckMetrics, scrape } from '@wgctl/metrics/testing';
import { createPki } from '@wgctl/transport';
import { agentOptionsFrom, buildProgram } from '../cli';
import { agentArgs, type AgentOptions } from '../options';
import { startAgent, type RunningAgent } from '../run';
import { FakeDriver, fakeHost } from '../testing/fake-host';

const parse = async (args: string[]) => {
  let raw: Record<string, unknown> = {};
  const program = buildProgram().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  program.action((r: Record<string, unknown>) => {
    raw = r;
  });
  await program.parseAsync(['node', 'mac-agent', ...args]);
  return agentOptionsFrom(raw);
};

/** Resolves once `count` has not moved for 300 ms. */
async function quiet(count: () => number): Promise<void> {
  for (let last = -1; count() !== last; ) {
    last = count();
    await new Promise((r) => setTimeout(r, 300));
  }
}

const samplesOf = (body: string) => body.split('\n').filter((l) => l && !l.startsWith('#'));

describe('mac-agent --metrics-listen', () => {
  it('is written into the service definition (agentArgs) and read back the same', async () => {
    const options = await parse(['--driver', 'darwin', '--tls-dir', '/etc/wgctl/pki', '--metrics-listen', '192.0.2.1:9587']);
    expect(agentArgs(options).slice(-2)).toEqual(['--metrics-listen', '192.0.2.1:9587']);
    expect(await parse(agentArgs(options))).toEqual(options);
    expect(agentArgs(await parse(['--driver', 'darwin']))).not.toContain('--metrics-listen');
  });

  it('is refused without --tls-dir (the unix socket is plaintext), and on a unix socket', async () => {
    await expect(parse(['--driver', 'linux', '--metrics-listen', '127.0.0.1:9587'])).rejects.toThrow(/--metrics-listen needs --tls-dir/);
    await expect(parse(['--driver', 'linux', '--tls-dir', '/t', '--metrics-listen', 'unix:/run/m.sock'])).rejects.toThrow(/a TCP address is needed/);
  });
});

describe('mac-agent metrics server (in-process, in-memory host)', () => {
  let dir: string;
  let driver: FakeDriver;
  let agent: RunningAgent | undefined;
  const options = (extra: Partial<AgentOptions> = {}): AgentOptions => ({
    driver: 'linux',
    listen: `unix:${join(dir, 'a.sock')}`,
    tlsDir: join(dir, 'pki'),
    stateDir: join(dir, 'state'),
    logLevel: 'error',
    dnsResolvConf: join(dir, 'resolv.conf'),
    dnsMode: 'resolv-conf',
    metricsListen: '127.0.0.1:0',
    ...extra,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-mac-metrics-'));
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'], macAgentAddresses: ['127.0.0.1'] });
  });
  beforeEach(() => {
    driver = new FakeDriver(fakeHost());
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('scrapes answer from the background sample: the host is not read, no sample is taken', async () => {
    agent = await startAgent(options(), { driver, logger: silentLogger(), sampleIntervalMs: 600_000, engine: { healCheckMs: 0, roamBackstopMs: 0, roamWatchAfterUpMs: 0 } });
    const tlsDir = join(dir, 'pki');
    const address = agent.metrics!.address;
    await agent.engine.up({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' }, {}, () => undefined);
    // The roaming monitor's first re-check and DNS check after the Up are over before counting.
    await quiet(() => driver.calls.length);
    await agent.sampler.refresh();
    const before = { hostReads: driver.calls.length, samples: agent.sampler.samples };
    const bodies: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await scrape(address, { tlsDir, role: i % 2 ? 'controller' : 'monitor' });
      expect(res.status).toBe(200);
      bodies.push(res.body);
    }
    expect({ hostReads: driver.calls.length, samples: agent.sampler.samples }).toEqual(before);
    expect(new Set(bodies).size).toBe(1);
    expect(samplesOf(bodies[0])).toEqual(
      expect.arrayContaining([
        'wgctl_killswitch_loaded 1',
        'wgctl_mac_up 1',
        'wgctl_routes_present 3',
        'wgctl_dns_managed 1',
        'wgctl_uplink_info{interface="en0",gateway="192.0.2.1"} 1',
        'wgctl_roams_total 0',
        'wgctl_health_serving{agent="mac-agent"} 1',
        `wgctl_health_sampled_timestamp_seconds{agent="mac-agent"} ${agent.sampler.latest!.sampledAtMs / 1000}`,
      ]),
    );
    expect(promtoolCheckMetrics(bodies[0])).toEqual({ status: 0, output: '' });
    // An agent's certificate may not scrape.
    expect((await scrape(address, { tlsDir, role: 'vm-agent' })).status).toBe(403);
  });

  it('refuses to start metrics without TLS material; stop() closes the metrics server', async () => {
    await expect(startAgent(options({ tlsDir: undefined, listen: `unix:${join(dir, 'b.sock')}` }), { driver, logger: silentLogger() })).rejects.toThrow(/--metrics-listen needs --tls-dir/);
    const running = await startAgent(options({ listen: `unix:${join(dir, 'c.sock')}` }), { driver, logger: silentLogger(), sampleIntervalMs: 600_000 });
    const address = running.metrics!.address;
    expect((await scrape(address, { tlsDir: join(dir, 'pki'), role: 'monitor' })).status).toBe(200);
    await running.stop();
    await expect(scrape(address, { tlsDir: join(dir, 'pki'), role: 'monitor' })).rejects.toThrow(/ECONNREFUSED/);
  });
});
