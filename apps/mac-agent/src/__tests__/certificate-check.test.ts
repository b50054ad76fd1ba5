/**
 * The mac-agent's Status carries a `certificate` check of the certificate it serves with and
 * the CA: red within 30 days of either expiring, with the fix — advisory (health stays as the
 * host says), so monitoring sees it weeks before clients are refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { MacAgentClient, StatusRequest, type MacStatus } from '@wgctl/proto';
import { connectAgent, createPki, loadTlsMaterial, unaryCall } from '@wgctl/transport';
import { startAgent, type RunningAgent } from '../run';
import { FakeDriver, fakeHost } from '../testing/fake-host';

describe('mac-agent Status: the certificate check', () => {
  let dir: string;
  let agent: RunningAgent | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-mcert-'));
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function status(validityDays: number): Promise<MacStatus> {
    const pki = join(dir, `pki-${validityDays}`);
    await createPki(pki, { vmAddresses: ['192.0.2.130'], macAgentAddresses: ['127.0.0.1'], validityDays });
    agent = await startAgent(
      { driver: 'linux', listen: '127.0.0.1:0', tlsDir: pki, stateDir: join(dir, `state-${validityDays}`), logLevel: 'error', dnsResolvConf: join(dir, 'resolv.conf'), dnsMode: 'resolv-conf' },
      { driver: new FakeDriver(fakeHost()), logger: silentLogger(), sampleIntervalMs: 600_000 },
    );
    const client = connectAgent(MacAgentClient, agent.address, { tls: loadTlsMaterial(pki, 'controller') });
    try {
      await agent.sampler.refresh();
      return await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    } finally {
      client.close();
    }
  }

  it('green with the dates while far from expiry', async () => {
    const s = await status(825);
    expect(s.checks.find((c) => c.name === 'certificate')).toMatchObject({ ok: true, detail: expect.stringMatching(/^valid: mac-agent until .* CA until /) });
  });

  it('red 12 days before, naming the fix; health is not turned NOT_SERVING by it', async () => {
    const s = await status(13);
    expect(s.checks.find((c) => c.name === 'certificate')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^mac-agent certificate expires in 12 days \(.*\): renew with `wgctl init --rotate`/),
    });
    expect(s.health?.reasons.some((r) => r.startsWith('certificate'))).toBe(false);
    expect(s.health?.state).toBe(1); // SERVING: down and clean is healthy for the mac-agent
  });
});
