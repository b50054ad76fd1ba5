/**
 * --metrics-listen: the flag (in the unit install writes, refused without mTLS) and the metrics
 * server run.ts starts — served from the sampler's cache: a scrape never runs a command.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthSampler } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { promtoolCheckMetrics, scrape } from '@wgctl/metrics/testing';
import { ObservedRunner, RuleRunner } from '@wgctl/runner';
import { createPki, loadTlsMaterial } from '@wgctl/transport';
import { agentOptionsFrom, buildProgram } from '../cli';
import { agentArgs } from '../options';
import { startVmMetrics } from '../run';
import { derivePublicKey } from '../host/config';
import { ProcSysctl } from '../host/sysctl';
import { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';

const parse = async (argv: string[]): Promise<Record<string, unknown>> => {
  const program = buildProgram().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  let captured: Record<string, unknown> = {};
  program.action((raw: Record<string, unknown>) => {
    captured = raw;
  });
  await program.parseAsync(['node', 'vm-agent', ...argv]);
  return captured;
};

describe('vm-agent --metrics-listen', () => {
  it('is written into the unit (agentArgs) and read back the same', async () => {
    const options = agentOptionsFrom(await parse(['--listen', '192.0.2.10:7443', '--tls-dir', '/etc/wgctl/tls', '--metrics-listen', '192.0.2.10:9586']));
    expect(options.metricsListen).toBe('192.0.2.10:9586');
    const args = agentArgs(options);
    expect(args.slice(args.indexOf('--metrics-listen'), args.indexOf('--metrics-listen') + 2)).toEqual(['--metrics-listen', '192.0.2.10:9586']);
    expect(agentOptionsFrom(await parse(args))).toEqual(options);
    expect(agentArgs(agentOptionsFrom(await parse(['--listen', '192.0.2.10:7443', '--tls-dir', '/t'])))).not.toContain('--metrics-listen');
  });

  it('is refused without TLS material, and on a unix socket', async () => {
    const dev = await parse(['--listen', '127.0.0.1:7443', '--insecure-loopback-dev', '--metrics-listen', '127.0.0.1:9586']);
    expect(() => agentOptionsFrom(dev)).toThrow(/--metrics-listen needs --tls-dir/);
    await expect(parse(['--listen', '192.0.2.10:7443', '--tls-dir', '/t', '--metrics-listen', 'unix:/run/m.sock'])).rejects.toThrow(/a TCP address is needed/);
  });
});

describe('vm-agent metrics server', () => {
  let dir: string;
  const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-vm-metrics-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('scrapes answer from the background sample: no command runs, no sample is taken; before the first sample only the agent info', async () => {
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'] });
    const configPath = join(dir, 'wtm0.conf');
    writeFileSync(configPath, `[Interface]\nPrivateKey = ${key(1)}\nAddress = 10.64.0.2/32\n[Peer]\nPublicKey = ${derivePublicKey(key(2))}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\n`, { mode: 0o600 });
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '1\n');
    let commands = 0;
    const engine = new VmEngine({
      configPath,
      runner: new ObservedRunner(new RuleRunner([{ match: () => true, reply: { exitCode: 1, stderr: 'not in this test' } }]), () => (commands += 1)),
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal: new JournalStore(join(dir, 'state')),
      interfaceMethod: 'wg-quick',
    });
    const sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000 });
    const tlsDir = join(dir, 'pki');
    const metrics = await startVmMetrics('127.0.0.1:0', loadTlsMaterial(tlsDir, 'vm-agent'), sampler, engine, silentLogger());
    try {
      const early = await scrape(metrics.address, { tlsDir, role: 'monitor' });
      expect(early.status).toBe(200);
      expect(early.body.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([expect.stringMatching(/^wgctl_agent_info\{agent="vm-agent",version="[^"]+",driver=""\} 1$/)]);
      expect({ commands, samples: sampler.samples }).toEqual({ commands: 0, samples: 0 });

      await sampler.refresh();
      const after = { commands, samples: sampler.samples };
      expect(after.commands).toBeGreaterThan(0);
      const bodies: string[] = [];
      for (let i = 0; i < 10; i++) bodies.push((await scrape(metrics.address, { tlsDir, role: i % 2 ? 'controller' : 'monitor' })).body);
      expect({ commands, samples: sampler.samples }).toEqual(after);
      expect(new Set(bodies).size).toBe(1);
      expect(bodies[0]).toContain(`wgctl_health_sampled_timestamp_seconds{agent="vm-agent"} ${sampler.latest!.sampledAtMs / 1000}\n`);
      expect(bodies[0]).toContain('wgctl_health_serving{agent="vm-agent"} 0\n');
      expect(bodies[0]).toContain('wgctl_vm_up 0\n');
      expect(bodies[0]).toContain('wgctl_vm_ip_forward 1\n');
      expect(promtoolCheckMetrics(bodies[0])).toEqual({ status: 0, output: '' });
    } finally {
      await metrics.close();
    }
  });
});
