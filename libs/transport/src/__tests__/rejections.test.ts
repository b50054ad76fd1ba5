/**
 * Rejected TLS handshakes and refused calls are logged — peer and reason — at most
 * maxPerWindow lines a window, then one summary; each client still gets the real code. And a
 * huge status message is bounded so the client gets the code the handler meant.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLogger, MemoryTransport } from '@wgctl/logging';
import { DescribeRequest, VmAgentClient, VmAgentService, VmDescription, type VmAgentServer } from '@wgctl/proto';
import {
  connectAgent,
  createAgentServer,
  createPki,
  describeHandshakeError,
  loadTlsMaterial,
  MAX_STATUS_DETAILS_BYTES,
  reportRejectedHandshakes,
  unaryCall,
  type AgentServer,
  type TlsMaterial,
} from '../index';

type LogRecord = Record<string, unknown>;

/** A server whose Describe answers, and whose Status fails with a message of `bytes` bytes. */
function stubService(): Partial<VmAgentServer> {
  return {
    describe: (_call, callback) => callback(null, VmDescription.fromPartial({ interface: 'wg0' })),
    status: (call, callback) => {
      const bytes = Number(call.metadata.get('message-bytes')[0] ?? 0);
      callback({ code: grpc.status.FAILED_PRECONDITION, details: `tool said: ${'é'.repeat(bytes / 2)}` } as grpc.ServiceError, null);
    },
  };
}

describe('rejected handshakes and refused calls over mTLS', () => {
  let dir: string;
  let tls: TlsMaterial;
  let server: AgentServer;
  let address: string;
  const logs = new MemoryTransport();
  const records = (): LogRecord[] => logs.lines.map((line) => JSON.parse(line) as LogRecord);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-reject-'));
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'] });
    await createPki(join(dir, 'other'), { vmAddresses: ['127.0.0.1'] });
    tls = loadTlsMaterial(join(dir, 'pki'), 'vm-agent');
    // The shipped limit (20 lines a minute): the whole test runs inside one window.
    server = createAgentServer({
      serviceName: 'wgctl.v1.VmAgent',
      tls,
      allowedRoles: ['controller'],
      logger: createLogger({ service: 'test', level: 'info', transports: [logs] }),
    });
    server.addService(VmAgentService, stubService() as VmAgentServer);
    address = await server.listen('127.0.0.1:0');
  });

  afterAll(async () => {
    await server?.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  /** One call on a fresh channel (one TLS handshake); the code the client got. */
  async function codeOf(client: grpc.Client & VmAgentClient): Promise<string> {
    try {
      await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 5000 });
      return 'OK';
    } catch (e) {
      return grpc.status[(e as grpc.ServiceError).code] ?? String((e as grpc.ServiceError).code);
    } finally {
      client.close();
    }
  }

  const clientOf = {
    'no certificate': () =>
      new VmAgentClient(address, grpc.credentials.createSsl(tls.ca), { 'grpc.ssl_target_name_override': 'vm-agent', 'grpc.default_authority': 'vm-agent' }),
    'another CA': () => connectAgent(VmAgentClient, address, { tls: { ...loadTlsMaterial(join(dir, 'other'), 'controller'), ca: tls.ca } }),
    plaintext: () => connectAgent(VmAgentClient, address, { insecure: true }),
  };
  const EXPECTED_REASON: Record<keyof typeof clientOf, RegExp> = {
    'no certificate': /^no client certificate$/,
    'another CA': /^client certificate not issued by this CA$/,
    plaintext: /^not TLS/,
  };

  it('100 refused handshakes: UNAVAILABLE at each client; 20 lines naming peer and reason, then one summary', async () => {
    const kinds = Object.keys(clientOf) as (keyof typeof clientOf)[];
    const codes: string[] = [];
    for (let i = 0; i < 100; i++) codes.push(await codeOf(clientOf[kinds[i % kinds.length]!]()));
    expect(new Set(codes)).toEqual(new Set(['UNAVAILABLE']));

    const lines = records().filter((r) => r.message === 'tls handshake rejected');
    expect(lines).toHaveLength(20);
    for (const line of lines) {
      expect(line).toMatchObject({ level: 'warn', peer: expect.stringMatching(/^127\.0\.0\.1:[1-9][0-9]*$/) });
      expect(Object.values(EXPECTED_REASON).some((reason) => reason.test(String(line.reason)))).toBe(true);
    }
    // Each kind is named with its own reason (they alternate, so all three are in the first 20).
    for (const [kind, reason] of Object.entries(EXPECTED_REASON)) {
      expect([kind, lines.some((line) => reason.test(String(line.reason)))]).toEqual([kind, true]);
    }
    expect(records().some((r) => /more rejected/.test(String(r.message)))).toBe(false);
  }, 60_000);

  it('a certificate of this CA with a role not allowed: PERMISSION_DENIED, logged with the peer under the same limit', async () => {
    const code = await codeOf(connectAgent(VmAgentClient, address, { tls: loadTlsMaterial(join(dir, 'pki'), 'mac-agent') }));
    expect(code).toBe('PERMISSION_DENIED');
    // The window's 20 lines are spent: the refusal waits for the summary.
    expect(records().filter((r) => r.message === 'rpc refused')).toEqual([]);
  });

  it('the summary (at shutdown, or when the window ends) counts what was not written, by peer', async () => {
    const client = connectAgent(VmAgentClient, address, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller') });
    expect(await codeOf(client)).toBe('OK'); // a good client is served and not counted
    await server.shutdown(500);
    const summaries = records().filter((r) => /more rejected connections or calls in the last 60 s/.test(String(r.message)));
    expect(summaries).toHaveLength(1);
    const summary = summaries[0]!;
    const written = records().filter((r) => r.message === 'tls handshake rejected').length;
    // At least 100 handshakes and the refused call; a client may retry a handshake before it is closed.
    expect(written + Number(summary.suppressed)).toBeGreaterThanOrEqual(101);
    expect(summary.peers).toEqual({ '127.0.0.1': summary.suppressed });
  });
});

describe('status messages are bounded where statuses are made', () => {
  let dir: string;
  let server: AgentServer;
  let client: VmAgentClient;
  let boundAddress: string;
  const logs = new MemoryTransport();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-bound-'));
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'] });
    server = createAgentServer({
      serviceName: 'wgctl.v1.VmAgent',
      tls: loadTlsMaterial(join(dir, 'pki'), 'vm-agent'),
      allowedRoles: ['controller'],
      logger: createLogger({ service: 'test', transports: [logs] }),
    });
    server.addService(VmAgentService, stubService() as VmAgentServer);
    boundAddress = await server.listen('127.0.0.1:0');
    client = connectAgent(VmAgentClient, boundAddress, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller') });
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([1024, 64 * 1024, 1024 * 1024])('a handler failing with a %i-byte message (non-ASCII): the client gets its code, the message bounded', async (bytes) => {
    const metadata = new grpc.Metadata();
    metadata.set('message-bytes', String(bytes));
    const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      client.status({}, metadata, { deadline: Date.now() + 5000 }, (err) => resolve(err ?? undefined));
    });
    expect(error && grpc.status[error.code]).toBe('FAILED_PRECONDITION');
    expect(error!.details).toMatch(/^tool said: éé/);
    expect(Buffer.byteLength(error!.details)).toBeLessThanOrEqual(MAX_STATUS_DETAILS_BYTES);
    expect(error!.details).toContain(`(${Buffer.byteLength('tool said: ') + bytes} bytes, cut)`);
  });

  it('a refused call, with room in the window, is logged with the peer and the role', async () => {
    const intruder = connectAgent(VmAgentClient, boundAddress, { tls: loadTlsMaterial(join(dir, 'pki'), 'mac-agent') });
    const error = await unaryCall(intruder.describe.bind(intruder), DescribeRequest.fromPartial({}), { timeoutMs: 5000 }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    intruder.close();
    expect(error && grpc.status[error.code]).toBe('PERMISSION_DENIED');
    const refused = logs.lines.map((line) => JSON.parse(line) as LogRecord).filter((r) => r.message === 'rpc refused');
    expect(refused).toEqual([
      expect.objectContaining({ level: 'warn', peerRole: 'mac-agent', method: '/wgctl.v1.VmAgent/Describe', peer: expect.stringMatching(/^127\.0\.0\.1:[1-9][0-9]*$/) }),
    ]);
  });
});

describe('reportRejectedHandshakes', () => {
  it('refuses a grpc-js Server without createHttp2Server (an upgrade must not silently stop the logging)', () => {
    expect(() => reportRejectedHandshakes({} as grpc.Server, () => undefined)).toThrow(/createHttp2Server/);
  });
});

describe('describeHandshakeError', () => {
  it('prefers the certificate verify result over the bare ECONNRESET Node reports with it', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(describeHandshakeError(reset, 'CERT_HAS_EXPIRED')).toEqual({ code: 'CERT_HAS_EXPIRED', reason: 'client certificate expired' });
    expect(describeHandshakeError(reset, null)).toEqual({ code: 'ECONNRESET', reason: 'connection closed during the TLS handshake' });
  });

  it('keeps an unknown error, cut', () => {
    const odd = Object.assign(new Error(`x${'y'.repeat(5000)}`), { code: 'ERR_SOMETHING_NEW' });
    const { code, reason } = describeHandshakeError(odd);
    expect(code).toBe('ERR_SOMETHING_NEW');
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(256);
    expect(reason).toContain('(5001 bytes, cut)');
  });
});
