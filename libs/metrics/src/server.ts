/**
 * The agents' /metrics: HTTPS with the pairing CA, a client certificate required and verified
 * (TLS ≥ MIN_TLS_VERSION, like the gRPC server), the caller's role (certificate CN) checked —
 * 403 for any other — and GET /metrics only. The agents run as root on a network: tight
 * timeouts and a cap on connections, and refused handshakes and roles are logged with the peer,
 * rate-limited (@wgctl/transport's watchHandshakes, @wgctl/logging's RateLimitedLog).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { formatListenAddress, parseListenAddress } from '@wgctl/config';
import { RateLimitedLog, shownValue, type Logger } from '@wgctl/logging';
import { MIN_TLS_VERSION, roleOfCertificate, watchHandshakes, type Role, type TlsMaterial } from '@wgctl/transport';

export const METRICS_PATH = '/metrics';

/** A scrape is one small GET: anything slower is a stuck or hostile client. */
const LIMITS = {
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  /** A connection with nothing going on (before its first request, between scrapes) is closed after this. */
  idleTimeoutMs: 5_000,
  maxHeaderSize: 8 * 1024,
  maxConnections: 32,
  timeoutCheckMs: 1_000,
} as const;

export interface MetricsServerOptions {
  /** ADDR:PORT or [V6]:PORT (port 0: any free port). */
  listen: string;
  tls: TlsMaterial;
  /** Certificate roles (CN) that may scrape: monitor, controller. */
  allowedRoles: Role[];
  /** The registry to expose, asked at each scrape (built from the latest sample; must not spawn). */
  registry: () => Registry | Promise<Registry>;
  logger: Logger;
}

export interface MetricsServer {
  /** The bound address, ADDR:PORT ([V6]:PORT). */
  readonly address: string;
  close(): Promise<void>;
}

function reply(res: ServerResponse, code: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${body}\n`);
}

function createHandler(options: MetricsServerOptions, rejections: RateLimitedLog) {
  const allowed = new Set<string>(options.allowedRoles);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const role = roleOfCertificate((req.socket as TLSSocket).getPeerCertificate()) ?? '(no certificate)';
    if (!allowed.has(role)) {
      const peerAddress = req.socket.remoteAddress ?? 'unknown';
      rejections.log('metrics scrape refused', { peer: `${peerAddress}:${req.socket.remotePort}`, peerRole: role, allowed: [...allowed] }, peerAddress);
      reply(res, 403, `role ${shownValue(role)} may not read metrics (allowed: ${[...allowed].join(', ')})`);
      return;
    }
    const path = (req.url ?? '').split('?')[0];
    if (path !== METRICS_PATH) return reply(res, 404, `not found: only ${METRICS_PATH}`);
    if (req.method !== 'GET') return reply(res, 405, 'method not allowed: GET only', { Allow: 'GET' });
    try {
      const registry = await options.registry();
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(body);
    } catch (e) {
      options.logger.warn('metrics: building the exposition failed', { error: (e as Error).message });
      reply(res, 500, 'metrics unavailable');
    }
  };
}

function createMetricsHttpsServer(options: MetricsServerOptions, rejections: RateLimitedLog): Server {
  const { tls } = options;
  const server = createServer({
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: MIN_TLS_VERSION,
    handshakeTimeout: LIMITS.handshakeTimeoutMs,
    headersTimeout: LIMITS.headersTimeoutMs,
    requestTimeout: LIMITS.requestTimeoutMs,
    keepAliveTimeout: LIMITS.idleTimeoutMs,
    maxHeaderSize: LIMITS.maxHeaderSize,
    // How often the header and request timeouts are enforced (node's default: every 30 s).
    connectionsCheckingInterval: LIMITS.timeoutCheckMs,
  });
  server.maxConnections = LIMITS.maxConnections;
  // The header and request timeouts start with a request: a client that sends none is cut here.
  server.timeout = LIMITS.idleTimeoutMs;
  const handle = createHandler(options, rejections);
  server.on('request', (req, res) => void handle(req, res));
  // Strangers cause these lines: rate-limited like the gRPC server's (docs/SECURITY.md).
  watchHandshakes(server, ({ peer, peerAddress, code, reason }) => rejections.log('tls handshake rejected', { listener: 'metrics', peer, reason, code }, peerAddress));
  return server;
}

/** Starts the HTTPS metrics server; resolves once it listens. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const address = parseListenAddress(options.listen, { allowPortZero: true });
  if (address.kind !== 'tcp') throw new Error(`metrics: --metrics-listen ${shownValue(options.listen)} must be ADDR:PORT (TCP)`);
  const rejections = new RateLimitedLog({ logger: options.logger, what: 'rejected metrics connections or scrapes', maxPerWindow: 20, windowMs: 60_000 });
  const server = createMetricsHttpsServer(options, rejections);
  await new Promise<void>((resolve, reject) => {
    const refused = (e: Error) => reject(new Error(`metrics: cannot listen on ${options.listen}: ${e.message}`));
    server.once('error', refused);
    server.listen(address.port, address.host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  // Once listening, an error (accept failing: out of descriptors) is logged, not a crash of the agent.
  server.on('error', (e) => options.logger.warn('metrics server error', { error: e.message }));
  const bound = formatListenAddress({ ...address, port: (server.address() as AddressInfo).port });
  options.logger.info('serving metrics', { address: bound, path: METRICS_PATH, security: 'mtls', allowedRoles: options.allowedRoles });
  return {
    address: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        rejections.close();
      }),
  };
}
