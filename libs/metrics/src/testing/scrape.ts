/** A scrape as Prometheus makes it (HTTPS, client certificate), for tests of the metrics servers. */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface ScrapeResult {
  status: number;
  contentType: string;
  body: string;
}

export interface ScrapeOptions {
  /** Directory with ca.crt and the client's <role>.crt/.key (createPki's layout). */
  tlsDir: string;
  /** The client certificate's role; undefined: no client certificate. */
  role?: string;
  /** Another directory to take the client certificate from (another CA's). */
  clientTlsDir?: string;
  method?: string;
  path?: string;
}

/** 'ADDR:PORT' → GET https://ADDR:PORT/metrics; rejects when the connection or handshake fails. */
export function scrape(address: string, options: ScrapeOptions): Promise<ScrapeResult> {
  const colon = address.lastIndexOf(':');
  const clientDir = options.clientTlsDir ?? options.tlsDir;
  const client = options.role ? { cert: readFileSync(join(clientDir, `${options.role}.crt`)), key: readFileSync(join(clientDir, `${options.role}.key`)) } : {};
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: address.slice(0, colon).replace(/^\[|\]$/g, ''),
        port: Number(address.slice(colon + 1)),
        method: options.method ?? 'GET',
        path: options.path ?? '/metrics',
        ca: readFileSync(join(options.tlsDir, 'ca.crt')),
        ...client,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
    req.end();
  });
}
