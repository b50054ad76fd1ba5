/**
 * A request field of 1 MB, sent over mTLS on loopback to the vm-agent's service as run.ts
 * builds it: the client gets INVALID_ARGUMENT (the status message once echoed the value whole,
 * too big for the HTTP/2 trailers, and the client saw another code), the message is bounded
 * and says the value's length, and no log line of the agent is longer than the cap.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthSampler } from '@wgctl/agent-kit';
import { createLogger, MAX_LOG_LINE_BYTES, MemoryTransport } from '@wgctl/logging';
import { CaptureRequest, VmAgentClient, VmAgentService, VmUpRequest } from '@wgctl/proto';
import { RuleRunner } from '@wgctl/runner';
import {
  connectAgent,
  createAgentServer,
  createPki,
  loadTlsMaterial,
  MAX_STATUS_DETAILS_BYTES,
  readStream,
  unaryCall,
  type AgentServer,
} from '@wgctl/transport';
import { derivePublicKey } from '../host/config';
import { ProcSysctl } from '../host/sysctl';
import { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { vmAgentHandlers } from '../service/server';

const MEGABYTE = 1024 * 1024;
const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');

describe('vm-agent: a 1 MB request field over mTLS', () => {
  let dir: string;
  let server: AgentServer;
  let client: VmAgentClient;
  const logs = new MemoryTransport();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-big-'));
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'] });
    const configPath = join(dir, 'wtb0.conf');
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${key(1)}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${derivePublicKey(key(2))}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\n`,
      { mode: 0o600 },
    );
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
    const logger = createLogger({ service: 'vm-agent', level: 'debug', transports: [logs] });
    const engine = new VmEngine({
      configPath,
      runner: new RuleRunner([{ match: () => true, reply: { exitCode: 1, stderr: 'not in this test' } }]),
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal: new JournalStore(join(dir, 'state')),
      logger,
      interfaceMethod: 'wg-quick',
    });
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', tls: loadTlsMaterial(join(dir, 'pki'), 'vm-agent'), allowedRoles: ['controller'], logger });
    const sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000 });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler, logger));
    const address = await server.listen('127.0.0.1:0');
    client = connectAgent(VmAgentClient, address, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller') });
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  async function upError(request: Partial<VmUpRequest>): Promise<grpc.ServiceError | undefined> {
    try {
      for await (const _ of readStream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', dryRun: true, ...request }), { deadline: Date.now() + 10_000 }))) {
        // a valid request streams steps: not a refusal
      }
      return undefined;
    } catch (e) {
      return e as grpc.ServiceError;
    }
  }

  function expectBoundedRefusal(error: grpc.ServiceError | undefined, field: string, bytes: number): void {
    expect(error && grpc.status[error.code]).toBe('INVALID_ARGUMENT');
    expect(error!.details.startsWith(`${field}: "AAAA`)).toBe(true);
    expect(error!.details).toContain(`(${bytes} bytes, cut)`);
    expect(Buffer.byteLength(error!.details)).toBeLessThanOrEqual(MAX_STATUS_DETAILS_BYTES);
  }

  function expectBoundedLogs(): void {
    expect(logs.lines.length).toBeGreaterThan(0);
    const longest = Math.max(...logs.lines.map((line) => Buffer.byteLength(line)));
    expect(longest).toBeLessThanOrEqual(MAX_LOG_LINE_BYTES);
  }

  it.each([
    ['mac_source', { macSource: 'A'.repeat(MEGABYTE) }],
    ['mac_source6', { macSource6: 'A'.repeat(MEGABYTE) }],
    ['lan_interface', { lanInterface: 'A'.repeat(MEGABYTE) }],
  ])('Up %s of 1 MB → INVALID_ARGUMENT, bounded message with the length, bounded log line', async (field, request) => {
    logs.lines.length = 0;
    expectBoundedRefusal(await upError(request), field, MEGABYTE);
    expectBoundedLogs();
    const failed = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((r) => r.message === 'rpc failed');
    expect(failed).toMatchObject({ status: 'INVALID_ARGUMENT', details: expect.stringContaining(`(${MEGABYTE} bytes, cut)`) });
  });

  it('Capture interface of 1 MB → INVALID_ARGUMENT, bounded message with the length', async () => {
    logs.lines.length = 0;
    const request = CaptureRequest.fromPartial({ interface: 'A'.repeat(MEGABYTE), durationMs: 1000 });
    const error = await unaryCall(client.capture.bind(client), request, { timeoutMs: 10_000 }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expectBoundedRefusal(error, 'interface', MEGABYTE);
    expectBoundedLogs();
  });
});
