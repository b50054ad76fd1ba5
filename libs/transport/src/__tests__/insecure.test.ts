import { existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@wgctl/logging';
import { DescribeRequest, VmAgentClient, VmAgentService, VmDescription, type VmDescription as VmDescriptionT } from '@wgctl/proto';
import { connectAgent, createAgentServer, healthCheck, unaryCall, type AgentServer } from '../index';

const stub = {
  describe: (_call: unknown, callback: grpc.sendUnaryData<VmDescriptionT>) =>
    callback(null, VmDescription.fromPartial({ interface: 'wg-test' })),
};

function describeVia(client: VmAgentClient): Promise<VmDescriptionT> {
  return unaryCall(client.describe.bind(client) as never, DescribeRequest.fromPartial({}), { timeoutMs: 5000 });
}

describe('plaintext modes', () => {
  let dir: string;
  const servers: AgentServer[] = [];
  const clients: grpc.Client[] = [];
  const make = (insecure: 'loopback-dev' | 'unix-socket', extra: { socketMode?: number } = {}) => {
    const server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure, allowedRoles: ['controller'], logger: silentLogger(), ...extra });
    server.addService(VmAgentService, stub);
    servers.push(server);
    return server;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-insecure-'));
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  });

  it('requires tls or an explicit insecure mode, not both', () => {
    const base = { serviceName: 'wgctl.v1.VmAgent', allowedRoles: ['controller' as const], logger: silentLogger() };
    expect(() => createAgentServer(base)).toThrow(/tls material is required/);
    expect(() =>
      createAgentServer({ ...base, insecure: 'unix-socket', tls: { ca: Buffer.from(''), cert: Buffer.from(''), key: Buffer.from('') } }),
    ).toThrow(/either tls or insecure/);
  });

  it('loopback-dev refuses non-loopback and unix addresses before binding', async () => {
    const server = make('loopback-dev');
    await expect(server.listen('0.0.0.0:0')).rejects.toThrow(/refusing plaintext \(loopback-dev\) on 0\.0\.0\.0:0/);
    await expect(server.listen('192.0.2.1:0')).rejects.toThrow(/only 127\.0\.0\.1, ::1 or localhost/);
    await expect(server.listen('[::]:0')).rejects.toThrow(/refusing plaintext/);
    await expect(server.listen(`unix:${join(dir, 'dev.sock')}`)).rejects.toThrow(/refusing plaintext/);
  });

  it('loopback-dev serves plaintext on 127.0.0.1 to an insecure client', async () => {
    const server = make('loopback-dev');
    const address = await server.listen('127.0.0.1:0');
    const client = connectAgent(VmAgentClient, address, { insecure: true });
    clients.push(client);
    expect((await describeVia(client)).interface).toBe('wg-test');
  });

  it('unix-socket mode refuses TCP addresses', async () => {
    const server = make('unix-socket');
    await expect(server.listen('127.0.0.1:0')).rejects.toThrow(/only unix:\/path addresses/);
  });

  it('listens on a unix socket, replacing a stale socket file and applying the mode', async () => {
    const path = join(dir, 'agent.sock');
    // A socket file nobody listens on any more (as a crashed agent leaves it): listen elsewhere,
    // move the file, then close (closing unlinks only the original name).
    const stale: NetServer = createServer();
    await new Promise<void>((resolve) => stale.listen(`${path}.orig`, resolve));
    renameSync(`${path}.orig`, path);
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    expect(statSync(path).isSocket()).toBe(true);

    const server = make('unix-socket', { socketMode: 0o600 });
    expect(await server.listen(`unix:${path}`)).toBe(`unix:${path}`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const client = connectAgent(VmAgentClient, `unix:${path}`, { insecure: true });
    clients.push(client);
    expect((await describeVia(client)).interface).toBe('wg-test');
    expect(await healthCheck(`unix:${path}`, { insecure: true })).toBe('SERVING');

    // A second agent must not steal a live socket.
    const second = make('unix-socket');
    await expect(second.listen(`unix:${path}`)).rejects.toThrow(/another process is listening/);

    await server.shutdown(500);
    expect(existsSync(path)).toBe(false);
  });

  it('defaults the socket mode to 0660', async () => {
    const path = join(dir, 'default.sock');
    const server = make('unix-socket');
    await server.listen(`unix:${path}`);
    expect(statSync(path).mode & 0o777).toBe(0o660);
  });

  it('refuses to replace a regular file with a socket', async () => {
    const path = join(dir, 'not-a-socket');
    writeFileSync(path, 'x');
    await expect(make('unix-socket').listen(`unix:${path}`)).rejects.toThrow(/exists and is not a socket/);
  });

  it('clients refuse plaintext to a non-loopback TCP target and TLS without material', () => {
    expect(() => connectAgent(VmAgentClient, '192.0.2.1:7443', { insecure: true })).toThrow(/refusing a plaintext connection/);
    expect(() => connectAgent(VmAgentClient, '192.0.2.1:7443', {})).toThrow(/TLS material is required/);
    expect(() => connectAgent(VmAgentClient, '192.0.2.1', { insecure: true })).toThrow(/invalid agent address/);
  });
});
