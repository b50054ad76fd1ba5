/**
 * `wgctl health` exits as grpc_health_probe does: 0 SERVING, 1 invalid arguments, 2 connection
 * failure, 3 RPC failure, 4 not serving. Every code comes from real grpc-js servers on
 * 127.0.0.1 (or the fake agents' unix socket) and real TLS.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { createPki, HealthServiceDefinition, loadTlsMaterial, mtlsServerCredentials, type TlsMaterial } from '@wgctl/transport';
import { type Lab, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { combinedHealthExit } from '../commands/health';

let lab: Lab;
let config: string;
const servers: grpc.Server[] = [];

beforeEach(async () => {
  lab = await startLab({ allowedRoles: ['controller', 'monitor'] });
  config = writeLabConfig(lab);
});
afterEach(async () => {
  for (const s of servers.splice(0)) s.forceShutdown();
  await lab.cleanup();
});

/** A real mTLS grpc-js server on 127.0.0.1 with only what `register` adds; returns its port. */
async function bareServer(tls: TlsMaterial, register: (server: grpc.Server) => void = () => undefined): Promise<number> {
  const server = new grpc.Server();
  register(server);
  servers.push(server);
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', mtlsServerCredentials(tls), (error, port) => (error ? reject(error) : resolve(port))),
  );
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const vmAt = (port: number) => writeLabConfig(lab, { vm: { address: '127.0.0.1', port } });
const health = (cfg: string, ...args: string[]) => cli(['--config', cfg, '--json', 'health', ...args]);

describe('wgctl health: 0 serving, 4 not serving', () => {
  it('0 when both agents are SERVING; --json keeps its shape and gives each agent its code', async () => {
    const r = await health(config);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      command: 'health',
      service: '',
      certificate: 'monitor',
      exitCode: 0,
      agents: [
        { agent: 'vm', target: lab.agents.vmTarget, status: 'SERVING', exitCode: 0 },
        { agent: 'mac', target: lab.agents.macTarget, status: 'SERVING', exitCode: 0 },
      ],
    });
  });

  it('4 when an agent answers NOT_SERVING; --agent limits the probe', async () => {
    lab.agents.setHealth('vm', false);
    const text = await cli(['--config', config, 'health']);
    expect(text.code).toBe(4);
    expect(text.stderr).toMatch(/^vm-agent  127\.0\.0\.1:\d+: NOT_SERVING$/m);
    expect(text.stdout).toMatch(/^mac-agent unix:.*: SERVING$/m);
    expect((await cli(['--config', config, 'health', '--agent', 'mac'])).code).toBe(0);
    expect((await cli(['--config', config, 'health', '--agent', 'vm', '--service', 'wgctl.v1.VmAgent'])).code).toBe(4);
  });
});

describe('wgctl health: 3 RPC failure (connected, the Check failed)', () => {
  it('3 NOT_FOUND for a service the agent does not know', async () => {
    const r = await health(config, '--agent', 'vm', '--service', 'no.such.Service');
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).agents).toEqual([
      { agent: 'vm', target: lab.agents.vmTarget, status: 'RPC_FAILED', exitCode: 3, grpcCode: 'NOT_FOUND', error: expect.any(String) },
    ]);
    expect((await health(config, '--agent', 'vm', '--service', 'wgctl.v1.VmAgent')).code).toBe(0);
  });

  it('3 UNIMPLEMENTED from a server without grpc.health.v1', async () => {
    const port = await bareServer(loadTlsMaterial(lab.tlsDir, 'vm-agent'));
    const r = await health(vmAt(port), '--agent', 'vm');
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).agents[0]).toMatchObject({ status: 'RPC_FAILED', exitCode: 3, grpcCode: 'UNIMPLEMENTED' });
  });

  it('3 DEADLINE_EXCEEDED when the Check never answers (connected, so not 2)', async () => {
    const hang = (server: grpc.Server) => server.addService(HealthServiceDefinition, { check: () => undefined });
    const port = await bareServer(loadTlsMaterial(lab.tlsDir, 'vm-agent'), hang);
    const r = await health(vmAt(port), '--agent', 'vm', '--timeout', '0.5', '--connect-timeout', '5');
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).agents[0]).toMatchObject({ status: 'RPC_FAILED', grpcCode: 'DEADLINE_EXCEEDED' });
  });
});

describe('wgctl health: 2 connection failure', () => {
  it('2 when nothing listens on the port, after the connect timeout, with the reason', async () => {
    const started = Date.now();
    const r = await health(vmAt(await closedPort()), '--agent', 'vm', '--connect-timeout', '0.5');
    expect(r.code).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(JSON.parse(r.stdout).agents[0]).toMatchObject({ status: 'UNREACHABLE', exitCode: 2, error: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('2 when the server refuses our certificate (it trusts another CA)', async () => {
    await createPki(join(lab.dir, 'other'), { vmAddresses: ['127.0.0.1'] });
    const other = loadTlsMaterial(join(lab.dir, 'other'), 'vm-agent');
    const port = await bareServer({ ...loadTlsMaterial(lab.tlsDir, 'vm-agent'), ca: other.ca }, (s) =>
      s.addService(HealthServiceDefinition, { check: (_call: unknown, cb: grpc.sendUnaryData<{ status: number }>) => cb(null, { status: 1 }) }),
    );
    const r = await health(vmAt(port), '--agent', 'vm', '--connect-timeout', '1');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).agents[0]).toMatchObject({ status: 'UNREACHABLE', exitCode: 2 });
  });

  it('2 when we refuse the server certificate (signed by another CA)', async () => {
    await createPki(join(lab.dir, 'other'), { vmAddresses: ['127.0.0.1'] });
    const port = await bareServer(loadTlsMaterial(join(lab.dir, 'other'), 'vm-agent'));
    const r = await health(vmAt(port), '--agent', 'vm', '--connect-timeout', '1');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).agents[0].error).toMatch(/certificate|self.signed|verify/i);
  });
});

describe('wgctl health: 1 invalid arguments', () => {
  it.each([
    [['health', '--agent', 'vmm'], /option '--agent <which>' argument 'vmm' is invalid/],
    [['health', '--bogus'], /unknown option '--bogus'/],
    [['health', '--service', 'a;b'], /--service/],
    [['health', '--connect-timeout', '0'], /--connect-timeout/],
    [['--timeout', 'soon', 'health'], /--timeout/],
    [['health', '--timeout', 'soon'], /--timeout/],
  ])('%j: exit 1 naming the flag (other commands exit 2 for this)', async (args, named) => {
    const r = await cli(['--config', config, ...args]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(named) });
  });

  it('a bad flag of another command still exits 2', async () => {
    expect((await cli(['--config', config, 'status', '--watch', 'often'])).code).toBe(2);
  });

  it('1 for a config that cannot be loaded, a missing certificate, an unusable key', async () => {
    const missing = await cli(['--config', join(lab.dir, 'none.json'), 'health']);
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/none\.json/) });

    writeFileSync(join(lab.tlsDir, 'monitor.crt'), '');
    const noCert = await cli(['--config', config, 'health', '--cert', 'monitor']);
    expect({ code: noCert.code, stderr: noCert.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/monitor\.crt/) });

    const key = join(lab.tlsDir, 'controller.key');
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    const badKey = await cli(['--config', config, 'health', '--cert', 'controller']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/^wgctl: /);
  });
});

describe('wgctl health --agent both: the lowest non-zero code (the agent that got least far)', () => {
  it('vm unreachable (2) and mac NOT_SERVING (4): 2', async () => {
    lab.agents.setHealth('mac', false);
    const r = await health(vmAt(await closedPort()), '--connect-timeout', '0.5');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).agents.map((a: { exitCode: number }) => a.exitCode)).toEqual([2, 4]);
  });

  it('the rule', () => {
    expect(combinedHealthExit([0, 0])).toBe(0);
    expect(combinedHealthExit([0, 4])).toBe(4);
    expect(combinedHealthExit([4, 3])).toBe(3);
    expect(combinedHealthExit([3, 2])).toBe(2);
  });
});

describe('wgctl health --help', () => {
  it('lists the five codes', async () => {
    const r = await cli(['health', '--help']);
    expect(r.code).toBe(0);
    for (const line of [/^ {2}0 {2}SERVING/m, /^ {2}1 {2}invalid arguments/m, /^ {2}2 {2}connection failure/m, /^ {2}3 {2}RPC failure/m, /^ {2}4 {2}not serving/m]) {
      expect(r.stdout).toMatch(line);
    }
    expect(r.stdout).toMatch(/--connect-timeout <seconds>/);
  });
});
