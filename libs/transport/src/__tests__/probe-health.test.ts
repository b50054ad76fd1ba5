/**
 * probeHealth tells apart how far a health probe got (grpc_health_probe's distinction): no
 * connection, connected but the Check failed, an answer. Real agent server on a unix socket.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { createAgentServer, probeHealth, type AgentServer } from '../index';

let dir: string;
let server: AgentServer;
let target: string;
const options = { insecure: true, connectTimeoutMs: 2_000, rpcTimeoutMs: 2_000 };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-probe-'));
  server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'unix-socket', allowedRoles: ['controller'], logger: silentLogger() });
  target = await server.listen(`unix:${join(dir, 'agent.sock')}`);
});
afterAll(async () => {
  await server.shutdown(500);
  rmSync(dir, { recursive: true, force: true });
});

describe('probeHealth', () => {
  it('answered: SERVING, then NOT_SERVING', async () => {
    expect(await probeHealth(target, options, 'wgctl.v1.VmAgent')).toEqual({ outcome: 'answered', status: 'SERVING' });
    server.setHealth(false);
    try {
      expect(await probeHealth(target, options)).toEqual({ outcome: 'answered', status: 'NOT_SERVING' });
    } finally {
      server.setHealth(true);
    }
  });

  it('rpc-failed: NOT_FOUND for an unknown service (connected)', async () => {
    expect(await probeHealth(target, options, 'wgctl.v1.Nope')).toEqual({ outcome: 'rpc-failed', code: 'NOT_FOUND', error: expect.any(String) });
  });

  it('connect-failed: no socket there, after the connect timeout, with the reason', async () => {
    const started = Date.now();
    const result = await probeHealth(`unix:${join(dir, 'none.sock')}`, { ...options, connectTimeoutMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(result).toEqual({ outcome: 'connect-failed', error: expect.stringMatching(/^no connection within 300 ms: .*ENOENT/) });
  });

  it('throws for options that cannot make a channel', async () => {
    await expect(probeHealth('192.0.2.1:7443', options)).rejects.toThrow(/plaintext/);
  });
});
