/**
 * Captive-portal detection: one plain-HTTP GET of a connectivity-check URL, judged the way the
 * OSes judge theirs. Default: Apple's (what every Mac itself asks on joining a network, so a café
 * portal is sure to handle it); `http://connectivitycheck.gstatic.com/generate_204` works too.
 * The URL is the config's `portal.probeUrl` or the flag `wgctl up --portal-probe-url` (commands/up-options.ts
 * probeUrlFor): the lab points it at a lab host.
 *
 * Who probes, and when: the controller, after a failed `wgctl up` whose handshake never came has
 * been rolled back. The Mac is then exactly as before `wgctl up` (no kill switch: the rollback
 * removed it), so the probe needs no hole in the kill switch and sends nothing the Mac would not
 * send without wgctl (macOS probes the same URL itself on every network join).
 *
 * `resolvers`: ask these directly instead of the system resolver (tests; a later in-window probe).
 * classifyProbe is pure; probeCaptivePortal does the I/O, always within `timeoutMs`.
 */
import { request } from 'node:http';
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

export const DEFAULT_PROBE_URL = 'http://captive.apple.com/hotspot-detect.html';
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000;
/** Enough of a page to recognise success or quote a portal; the rest is not read. */
const MAX_BODY_BYTES = 4096;

/** Apple's success page: `<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>`. */
const APPLE_SUCCESS = /<title>\s*success\s*<\/title>/i;

export interface ProbeResponse {
  status: number;
  location?: string;
  body: string;
}

export type ProbeVerdict =
  /** The expected answer came: nothing stands between us and the internet (on port 80). */
  | { kind: 'free'; url: string; address: string }
  /** Something answered in the internet's place: a redirect, a login page, 511. */
  | { kind: 'portal'; url: string; address: string; status: number; location?: string; detail: string }
  /** No answer at all (no DNS, no TCP, timeout): no evidence of a portal either way. */
  | { kind: 'unreachable'; url: string; error: string };

/**
 * The verdict on one answer. Free: 204 (Android/Chrome's generate_204), or 200 with Apple's
 * success title. Everything else that answered is a portal: 3xx (its Location is the login
 * page), 511 (RFC 6585 §6, "Network Authentication Required"), any other status or body.
 */
export function classifyProbe(url: string, address: string, response: ProbeResponse): ProbeVerdict {
  const { status, location } = response;
  if (status === 204 || (status === 200 && APPLE_SUCCESS.test(response.body))) return { kind: 'free', url, address };
  const portal = (detail: string): ProbeVerdict => ({ kind: 'portal', url, address, status, ...(location ? { location } : {}), detail });
  if (status >= 300 && status < 400) return portal(location ? `answered ${status} → ${location}` : `answered ${status} without a Location`);
  if (status === 511) return portal('answered 511 Network Authentication Required');
  if (status === 200) return portal(`answered 200 with another page: ${oneLine(response.body)}`);
  return portal(`answered ${status}`);
}

function oneLine(body: string): string {
  const text = body.replace(/\s+/g, ' ').trim();
  return text.length > 80 ? `${text.slice(0, 77)}...` : text || '(empty)';
}

/** How `wgctl up` names a portal in its failure message. */
export function describePortal(verdict: Extract<ProbeVerdict, { kind: 'portal' }>): string {
  return `a captive portal holds this network (${verdict.url} ${verdict.detail})`;
}

export interface ProbeOptions {
  url?: string;
  /** Resolvers (IP literals, `ip:port`) asked directly; absent: the system resolver. Unused for an IP host. */
  resolvers?: string[];
  timeoutMs?: number;
}

/** The probe host's IPv4 address (portals intercept IPv4; many café LANs have no IPv6). */
async function resolveProbeHost(host: string, resolvers: string[] | undefined, deadline: number): Promise<string> {
  if (isIP(host)) return host;
  if (!resolvers) {
    return (await withDeadline(lookup(host, { family: 4 }), deadline, `resolving ${host}`, () => undefined)).address;
  }
  if (resolvers.length === 0) throw new Error(`no resolver to ask for ${host}`);
  const resolver = new Resolver({ timeout: Math.max(1, deadline - Date.now()), tries: 1 });
  resolver.setServers(resolvers);
  const [address] = await withDeadline(resolver.resolve4(host), deadline, `resolving ${host} via ${resolvers.join(', ')}`, () => resolver.cancel());
  return address;
}

function withDeadline<T>(promise: Promise<T>, deadline: number, what: string, cancel: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cancel();
      reject(new Error(`${what}: no answer in time`));
    }, Math.max(0, deadline - Date.now()));
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error)),
    );
  });
}

/** GET `url` from `address` (Host header from the URL), redirects not followed. */
function httpGet(url: URL, address: string, deadline: number): Promise<ProbeResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: address, port: url.port || 80, path: `${url.pathname}${url.search}`, headers: { host: url.host }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (body.length >= MAX_BODY_BYTES) res.destroy();
        });
        const done = () => resolve({ status: res.statusCode ?? 0, body: body.slice(0, MAX_BODY_BYTES), ...(res.headers.location ? { location: res.headers.location } : {}) });
        res.on('end', done);
        res.on('close', done);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`GET ${url.href} from ${address}: no answer in time`)), Math.max(0, deadline - Date.now()));
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end();
  });
}

/** One probe; never throws (a failure is the `unreachable` verdict). */
export async function probeCaptivePortal(options: ProbeOptions): Promise<ProbeVerdict> {
  const url = options.url ?? DEFAULT_PROBE_URL;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS);
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:') throw new Error(`the probe URL must be plain http:// (a portal cannot answer TLS): ${url}`);
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    const address = await resolveProbeHost(host, options.resolvers, deadline);
    return classifyProbe(url, address, await httpGet(parsed, address, deadline));
  } catch (error) {
    return { kind: 'unreachable', url, error: error instanceof Error ? error.message : String(error) };
  }
}
