import { isIP } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as nodeTls from 'node:tls';
// The module object itself (a namespace import would be a copy that grpc-js never sees).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tlsModule = require('node:tls') as typeof nodeTls;
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { z } from 'zod';
import { createLogger, MemoryTransport } from '@wgctl/logging';
import {
  CaptureRequest,
  DescribeRequest,
  Progress,
  StatusRequest,
  VmAgentClient,
  VmAgentService,
  VmDescription,
  VmUpRequest,
  type VmAgentServer,
} from '@wgctl/proto';
import {
  connectAgent,
  createAgentServer,
  createPki,
  healthCheck,
  invalidArgument,
  loadTlsMaterial,
  readStream,
  unaryCall,
  type AgentServer,
  type TlsMaterial,
} from '../index';

const SECRET_KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';

function stubVmAgent(): VmAgentServer {
  return {
    describe: (_call, callback) => {
      callback(null, VmDescription.fromPartial({ interface: 'wg0', tunnelAddresses: ['198.51.100.2/32'] }));
    },
    up: (call) => {
      const request = call.request as VmUpRequest;
      call.write(Progress.fromPartial({ kind: { $case: 'step', value: { step: 'wg-quick-up', message: request.macSource } } }));
      call.write(Progress.fromPartial({ kind: { $case: 'outcome', value: { ok: true } } }));
      call.end();
    },
    // Async handler that rejects: the wrapper must map the rejection to a status.
    down: async () => {
      await Promise.resolve();
      throw new Error(`wg set failed: private key = ${SECRET_KEY}`);
    },
    status: () => {
      z.object({ macSource: z.string().min(1) }).parse({ macSource: '' });
    },
    capture: (_call, callback) => callback(invalidArgument('interface must be set'), null),
  };
}

function call<Res>(client: VmAgentClient, method: 'describe' | 'status' | 'capture', request: unknown): Promise<Res> {
  const fn = (client[method] as unknown as (...a: unknown[]) => grpc.ClientUnaryCall).bind(client);
  return unaryCall(fn as never, request, { timeoutMs: 5000 }) as Promise<Res>;
}

async function collect(stream: grpc.ClientReadableStream<Progress>): Promise<Progress[]> {
  const out: Progress[] = [];
  for await (const message of readStream(stream)) out.push(message);
  return out;
}

function expectCode(promise: Promise<unknown>, code: grpc.status): Promise<void> {
  return promise.then(
    () => {
      throw new Error(`expected ${grpc.status[code]}, got success`);
    },
    (err: grpc.ServiceError) => {
      expect(grpc.status[err.code]).toBe(grpc.status[code]);
    },
  );
}

describe('createAgentServer with mTLS', () => {
  let dir: string;
  let tls: TlsMaterial;
  let server: AgentServer;
  let address: string;
  const logs = new MemoryTransport();
  const clients: grpc.Client[] = [];
  const connect = (target: string, opts: Parameters<typeof connectAgent>[2]) => {
    const client = connectAgent(VmAgentClient, target, opts);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-transport-'));
    await createPki(join(dir, 'pki'), { vmAddresses: ['127.0.0.1'] });
    await createPki(join(dir, 'other'), { vmAddresses: ['127.0.0.1'] });
    tls = loadTlsMaterial(join(dir, 'pki'), 'vm-agent');
    server = createAgentServer({
      serviceName: 'wgctl.v1.VmAgent',
      tls,
      allowedRoles: ['controller'],
      logger: createLogger({ service: 'test', level: 'debug', transports: [logs] }),
    });
    server.addService(VmAgentService, stubVmAgent());
    address = await server.listen('127.0.0.1:0');
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await server?.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('binds an ephemeral loopback port and reports it', () => {
    expect(address).toMatch(/^127\.0\.0\.1:[1-9][0-9]*$/);
  });

  it('serves a controller certificate from the same CA (unary and server stream)', async () => {
    const client = connect(address, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller') });
    const description = await call<VmDescription>(client, 'describe', DescribeRequest.fromPartial({}));
    expect(description.interface).toBe('wg0');
    expect(description.tunnelAddresses).toEqual(['198.51.100.2/32']);
    const progress = await collect(client.up(VmUpRequest.fromPartial({ macSource: '192.0.2.7' })));
    expect(progress.map((p) => p.kind?.$case)).toEqual(['step', 'outcome']);
    expect(progress[0]?.kind?.$case === 'step' && progress[0].kind.value.message).toBe('192.0.2.7');
  });

  it('logs each call with method, peer role, duration and status', () => {
    const records = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const describeLog = records.find((r) => r.method === '/wgctl.v1.VmAgent/Describe');
    expect(describeLog).toMatchObject({ peerRole: 'controller', status: 'OK' });
    expect(typeof describeLog?.durationMs).toBe('number');
  });

  it('refuses a client without a certificate', async () => {
    const ca = tls.ca;
    const client = new VmAgentClient(address, grpc.credentials.createSsl(ca), {
      'grpc.ssl_target_name_override': 'vm-agent',
      'grpc.default_authority': 'vm-agent',
    });
    clients.push(client);
    await expectCode(call(client, 'describe', {}), grpc.status.UNAVAILABLE);
  });

  it('refuses a client certificate from another CA', async () => {
    const other = loadTlsMaterial(join(dir, 'other'), 'controller');
    // Trust our CA for the server, but present a certificate the server's CA never signed.
    const client = connect(address, { tls: { ...other, ca: tls.ca } });
    await expectCode(call(client, 'describe', {}), grpc.status.UNAVAILABLE);
  });

  it('refuses a server certificate from another CA (client side)', async () => {
    const client = connect(address, { tls: loadTlsMaterial(join(dir, 'other'), 'controller') });
    await expectCode(call(client, 'describe', {}), grpc.status.UNAVAILABLE);
  });

  it('refuses a plaintext client', async () => {
    const client = connect(address, { insecure: true });
    await expectCode(call(client, 'describe', {}), grpc.status.UNAVAILABLE);
  });

  it('refuses a server whose certificate is for another role (name check)', async () => {
    const client = connect(address, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller'), serverName: 'mac-agent' });
    await expectCode(call(client, 'describe', {}), grpc.status.UNAVAILABLE);
  });

  it('answers PERMISSION_DENIED to a mac-agent certificate, for unary and streaming methods', async () => {
    const client = connect(address, { tls: loadTlsMaterial(join(dir, 'pki'), 'mac-agent') });
    await expectCode(call(client, 'describe', {}), grpc.status.PERMISSION_DENIED);
    await expectCode(collect(client.up(VmUpRequest.fromPartial({}))), grpc.status.PERMISSION_DENIED);
    const refused = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.status === 'PERMISSION_DENIED');
    expect(refused.map((r) => r.peerRole)).toEqual(['mac-agent', 'mac-agent']);
  });

  it('maps handler errors: status errors pass, ZodError → INVALID_ARGUMENT with the field, others → redacted INTERNAL', async () => {
    const client = connect(address, { tls: loadTlsMaterial(join(dir, 'pki'), 'controller') });
    const capture = await call(client, 'capture', CaptureRequest.fromPartial({})).catch((e: grpc.ServiceError) => e);
    expect(capture).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'interface must be set' });

    const status = await call(client, 'status', StatusRequest.fromPartial({})).catch((e: grpc.ServiceError) => e);
    expect((status as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((status as grpc.ServiceError).details).toMatch(/^macSource: /);

    const down = await collect(client.down({ dryRun: false, forceInterfaceDown: false })).catch((e: grpc.ServiceError) => e);
    expect((down as grpc.ServiceError).code).toBe(grpc.status.INTERNAL);
    expect((down as grpc.ServiceError).details).toContain('wg set failed');
    expect((down as grpc.ServiceError).details).not.toContain(SECRET_KEY);
    expect(logs.lines.join('\n')).not.toContain(SECRET_KEY);
  });

  it('serves grpc.health.v1 for "" and the service name, following setHealth', async () => {
    const opts = { tls: loadTlsMaterial(join(dir, 'pki'), 'monitor'), serverName: 'vm-agent' };
    expect(await healthCheck(address, opts)).toBe('SERVING');
    expect(await healthCheck(address, opts, 'wgctl.v1.VmAgent')).toBe('SERVING');
    expect(await healthCheck(address, opts, 'wgctl.v1.Nope')).toBe('SERVICE_UNKNOWN');
    server.setHealth(false);
    try {
      expect(await healthCheck(address, opts)).toBe('NOT_SERVING');
      expect(await healthCheck(address, opts, 'wgctl.v1.VmAgent')).toBe('NOT_SERVING');
    } finally {
      server.setHealth(true);
    }
    expect(await healthCheck(address, opts)).toBe('SERVING');
  });

  it('lists wgctl.v1.VmAgent and grpc.health.v1.Health through server reflection', async () => {
    const reflectionProto = join(
      require.resolve('@grpc/reflection/package.json'),
      '..',
      'build/proto/grpc/reflection/v1/reflection.proto',
    );
    const definition = protoLoader.loadSync(reflectionProto, { keepCase: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const controller = loadTlsMaterial(join(dir, 'pki'), 'controller');
    const client = connectAgent(loaded.grpc.reflection.v1.ServerReflection, address, {
      tls: controller,
      serverName: 'vm-agent',
    }) as unknown as grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, unknown> };
    clients.push(client);
    const stream = client.ServerReflectionInfo();
    const response = await new Promise<{ list_services_response: { service: Array<{ name: string }> } }>((resolve, reject) => {
      stream.once('data', resolve);
      stream.once('error', reject);
      stream.write({ list_services: '' });
    });
    stream.end();
    const names = response.list_services_response.service.map((s) => s.name).sort();
    expect(names).toEqual(['grpc.health.v1.Health', 'wgctl.v1.VmAgent']);
  });

  it('sends the role name, not the IP, as TLS server name (no DEP0123 for IP targets)', async () => {
    const connectSpy = jest.spyOn(tlsModule, 'connect');
    let servernames: unknown[];
    try {
      const client = connect(address, {
        tls: loadTlsMaterial(join(dir, 'pki'), 'controller'),
        channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
      });
      await call(client, 'describe', {});
      servernames = connectSpy.mock.calls.map((args) => (args[0] as nodeTls.ConnectionOptions).servername);
    } finally {
      connectSpy.mockRestore();
    }
    // Other tests' clients may still be reconnecting meanwhile (with their own role names): what
    // matters is that this one named the role and that no connection named an IP.
    expect(servernames).toContain('vm-agent');
    expect(servernames.filter((name) => typeof name !== 'string' || isIP(name) !== 0)).toEqual([]);
  });
});
