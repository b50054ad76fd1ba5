/**
 * TLS 1.2 is the floor on both ends, set explicitly: with node's own default lowered to TLS 1.0
 * (what `node --tls-min-v1.0` does) an agent still refuses a TLS 1.1 client with a
 * protocol_version alert, and the controller's client never offers less than TLS 1.2.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as nodeTls from 'node:tls';
// The module object itself, so that changing DEFAULT_MIN_VERSION reaches every user of it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tls = require('node:tls') as typeof nodeTls;
import { silentLogger } from '@wgctl/logging';
import { DescribeRequest, VmAgentClient, VmAgentService, VmDescription, type VmAgentServer } from '@wgctl/proto';
import { MIN_TLS_VERSION, connectAgent, createAgentServer, createPki, loadTlsMaterial, mtlsServerCredentials, unaryCall, type AgentServer, type TlsMaterial } from '../index';

const describeOnly = {
  describe: (_call, callback) => callback(null, VmDescription.fromPartial({ interface: 'wg0' })),
} as Partial<VmAgentServer> as VmAgentServer;

/** A raw TLS client of the given protocol range, presenting the controller's certificate. */
function handshake(port: number, client: TlsMaterial, range: { min: nodeTls.SecureVersion; max: nodeTls.SecureVersion }): Promise<{ protocol?: string; code?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: client.ca,
      cert: client.cert,
      key: client.key,
      servername: 'vm-agent',
      ALPNProtocols: ['h2'],
      minVersion: range.min,
      maxVersion: range.max,
      // Let this client offer TLS 1.0/1.1 at all (OpenSSL 3 refuses them at its default level).
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol() ?? undefined });
      socket.destroy();
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code }));
  });
}

describe('TLS versions', () => {
  let dir: string;
  let server: AgentServer;
  let port: number;
  let controller: TlsMaterial;
  const defaultMin = tls.DEFAULT_MIN_VERSION;

  beforeAll(async () => {
    tls.DEFAULT_MIN_VERSION = 'TLSv1'; // as if node ran with --tls-min-v1.0
    dir = mkdtempSync(join(tmpdir(), 'wth-tlsv-'));
    await createPki(dir, { vmAddresses: ['127.0.0.1'] });
    controller = loadTlsMaterial(dir, 'controller');
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', tls: loadTlsMaterial(dir, 'vm-agent'), allowedRoles: ['controller'], logger: silentLogger() });
    server.addService(VmAgentService, describeOnly);
    port = Number((await server.listen('127.0.0.1:0')).split(':').pop());
  });

  afterAll(async () => {
    tls.DEFAULT_MIN_VERSION = defaultMin;
    await server?.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the server credentials carry the floor explicitly', () => {
    const credentials = mtlsServerCredentials(loadTlsMaterial(dir, 'vm-agent'));
    expect(MIN_TLS_VERSION).toBe('TLSv1.2');
    expect(credentials._getConstructorOptions()).toMatchObject({ minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: true });
    expect(credentials._getSecureContextOptions()).toMatchObject({ minVersion: 'TLSv1.2' });
  });

  it.each([
    ['TLSv1', 'TLSv1'],
    ['TLSv1.1', 'TLSv1.1'],
    ['TLSv1', 'TLSv1.1'],
  ] as const)('the agent refuses a client limited to %s–%s (protocol_version alert)', async (min, max) => {
    expect(await handshake(port, controller, { min, max })).toEqual({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  });

  it.each([
    ['TLSv1.2', 'TLSv1.2'],
    ['TLSv1.3', 'TLSv1.3'],
  ] as const)('the agent accepts %s', async (min, max) => {
    expect(await handshake(port, controller, { min, max })).toEqual({ protocol: max });
  });

  it('a gRPC call over the controller client works (TLS 1.3 negotiated by default)', async () => {
    const client = connectAgent(VmAgentClient, `127.0.0.1:${port}`, { tls: controller });
    try {
      const description = await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 5000 });
      expect(description.interface).toBe('wg0');
    } finally {
      client.close();
    }
  });

  it('the controller client does not even offer TLS 1.1 to a server that would take it', async () => {
    const agentTls = loadTlsMaterial(dir, 'vm-agent');
    const oldServer = tls.createServer({ key: agentTls.key, cert: agentTls.cert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0', ALPNProtocols: ['h2'] });
    const refused = new Promise<string | undefined>((resolve) => oldServer.once('tlsClientError', (e: NodeJS.ErrnoException) => resolve(e.code)));
    await new Promise<void>((resolve) => oldServer.listen(0, '127.0.0.1', resolve));
    const client = connectAgent(VmAgentClient, `127.0.0.1:${(oldServer.address() as { port: number }).port}`, { tls: controller });
    try {
      await expect(unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 3000 })).rejects.toMatchObject({ code: 14 });
      expect(await refused).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
    } finally {
      client.close();
      oldServer.close();
    }
  });
});
