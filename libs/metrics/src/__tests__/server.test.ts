/**
 * The HTTPS metrics server with real certificates (the PKI `wgctl init` makes): who may scrape,
 * what is refused at the TLS layer, what only GET /metrics means — and the refusals logged.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, MemoryTransport } from '@wgctl/logging';
import { createPki, loadTlsMaterial } from '@wgctl/transport';
import { buildMetricsRegistry } from '../builder';
import { startMetricsServer, type MetricsServer } from '../server';
import { promtoolCheckMetrics } from '../testing/promtool';
import { scrape } from '../testing/scrape';
import { vmStatus } from '../testing/statuses';

const EXPOSITION_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function plainHttpGet(address: string): Promise<number> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)), path: '/metrics', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('startMetricsServer over HTTPS mTLS', () => {
  let dir: string;
  let tlsDir: string;
  let server: MetricsServer;
  const logs = new MemoryTransport();
  const records = () => logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-metrics-'));
    tlsDir = join(dir, 'pki');
    await createPki(tlsDir, { vmAddresses: ['127.0.0.1'] });
    await createPki(join(dir, 'other'), { vmAddresses: ['127.0.0.1'] });
    server = await startMetricsServer({
      listen: '127.0.0.1:0',
      tls: loadTlsMaterial(tlsDir, 'vm-agent'),
      allowedRoles: ['monitor', 'controller'],
      registry: () => buildMetricsRegistry({ vm: vmStatus() }),
      logger: createLogger({ service: 'test', level: 'info', transports: [logs] }),
    });
  });

  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('monitor and controller certificates: 200, the exposition content type, what promtool accepts', async () => {
    for (const role of ['monitor', 'controller']) {
      const res = await scrape(server.address, { tlsDir, role });
      expect(res).toMatchObject({ status: 200, contentType: EXPOSITION_TYPE });
      expect(res.body).toContain('wgctl_vm_up 1\n');
      expect(promtoolCheckMetrics(res.body)).toEqual({ status: 0, output: '' });
    }
  });

  it("an agent's certificate of the same CA: 403, logged with the peer", async () => {
    for (const role of ['vm-agent', 'mac-agent']) {
      const res = await scrape(server.address, { tlsDir, role });
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('wgctl_');
    }
    expect(records().filter((r) => r.message === 'metrics scrape refused').map((r) => r.peerRole)).toEqual(['vm-agent', 'mac-agent']);
  });

  it('refused at TLS: no client certificate, one of another CA, plaintext HTTP — each logged', async () => {
    await expect(scrape(server.address, { tlsDir })).rejects.toThrow(/certificate|ECONNRESET|socket hang up/i);
    await expect(scrape(server.address, { tlsDir, role: 'monitor', clientTlsDir: join(dir, 'other') })).rejects.toThrow(/certificate|ECONNRESET|socket hang up|unknown ca/i);
    await expect(plainHttpGet(server.address)).rejects.toThrow();
    const reasons = records()
      .filter((r) => r.message === 'tls handshake rejected')
      .map((r) => r.reason);
    expect(reasons).toEqual(['no client certificate', 'client certificate not issued by this CA', 'plain HTTP, not TLS']);
  });

  it('GET /metrics only: POST is 405, another path 404', async () => {
    expect((await scrape(server.address, { tlsDir, role: 'monitor', method: 'POST' })).status).toBe(405);
    expect((await scrape(server.address, { tlsDir, role: 'monitor', path: '/' })).status).toBe(404);
    expect((await scrape(server.address, { tlsDir, role: 'monitor', path: '/metrics/../debug' })).status).toBe(404);
  });

  it('slow or idle clients are cut off after 5 s: no TLS handshake, no request, headers dripping in', async () => {
    const [host, port] = [server.address.slice(0, server.address.lastIndexOf(':')), Number(server.address.slice(server.address.lastIndexOf(':') + 1))];
    const closedAfter = (socket: Socket): Promise<number> => {
      const started = Date.now();
      return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - started)));
    };
    const silentTcp = connect({ host, port });
    silentTcp.on('error', () => undefined);
    const ca = readFileSync(join(tlsDir, 'ca.crt'));
    const silentTls = tlsConnect({ host, port, ca, cert: readFileSync(join(tlsDir, 'monitor.crt')), key: readFileSync(join(tlsDir, 'monitor.key')) });
    silentTls.on('error', () => undefined);
    // Headers one byte a second: the socket is never idle, the 5 s header timeout (checked every second) ends it.
    const slowHeaders = tlsConnect({ host, port, ca, cert: readFileSync(join(tlsDir, 'monitor.crt')), key: readFileSync(join(tlsDir, 'monitor.key')) }, () => {
      slowHeaders.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => slowHeaders.writable && slowHeaders.write('X'), 1_000);
      slowHeaders.once('close', () => clearInterval(drip));
    });
    slowHeaders.on('error', () => undefined);
    const [tcpMs, tlsMs, slowMs] = await Promise.all([closedAfter(silentTcp), closedAfter(silentTls), closedAfter(slowHeaders)]);
    // 5 s each; a loaded CI machine gets 4-5 s more.
    expect(tcpMs).toBeGreaterThanOrEqual(4_500);
    expect(tcpMs).toBeLessThan(10_000);
    expect(tlsMs).toBeGreaterThanOrEqual(4_500);
    expect(tlsMs).toBeLessThan(10_000);
    expect(slowMs).toBeGreaterThanOrEqual(4_500);
    expect(slowMs).toBeLessThan(11_000);
  }, 25_000);

  it('at most 32 connections: the 33rd is dropped at once', async () => {
    const [host, port] = [server.address.slice(0, server.address.lastIndexOf(':')), Number(server.address.slice(server.address.lastIndexOf(':') + 1))];
    const open = (): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host, port }, () => resolve(socket));
        socket.on('error', reject);
      });
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 32; i++) held.push(await open());
      const extra = await open();
      const closed = await new Promise<boolean>((resolve) => {
        extra.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 2_000);
      });
      expect(closed).toBe(true);
      expect(held.every((s) => !s.destroyed)).toBe(true);
    } finally {
      held.forEach((s) => s.destroy());
    }
  });

  it('an address in use: a clear error', async () => {
    await expect(
      startMetricsServer({ listen: server.address, tls: loadTlsMaterial(tlsDir, 'vm-agent'), allowedRoles: ['monitor'], registry: () => buildMetricsRegistry({}), logger: createLogger({ service: 't', transports: [logs] }) }),
    ).rejects.toThrow(`metrics: cannot listen on ${server.address}: listen EADDRINUSE`);
  });

  it('refuses a unix socket address', async () => {
    await expect(
      startMetricsServer({ listen: 'unix:/tmp/x.sock', tls: loadTlsMaterial(tlsDir, 'vm-agent'), allowedRoles: ['monitor'], registry: () => buildMetricsRegistry({}), logger: createLogger({ service: 't', transports: [logs] }) }),
    ).rejects.toThrow(/ADDR:PORT/);
  });
});
