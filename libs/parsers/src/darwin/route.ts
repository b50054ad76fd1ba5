/**
 * `route -n get X` and the text of `route add/delete` (network_cmds route.tproj).
 *
 * `route` prints any 0.0.0.0 sockaddr as `default`, so with our split routes in place
 * `route -n get 8.8.8.8` answers `destination: default` + `mask: 128.0.0.0`: the mask line,
 * not the word "default", says which route matched. `route add/delete/get` exit 0 on kernel
 * errors; the outcome is in the text (`add net 0.0.0.0: gateway 10.211.55.5: File exists`).
 */
import { ParseError } from '../errors';
import {
  type DarwinFamily,
  canonicalIpv6,
  isIpv4,
  isIpv6,
  ipv4MaskToPrefix,
  ipv4ToInt,
  ipv6MaskToPrefix,
  splitScope,
} from './addresses';

const GET_KIND = 'route -n get';

export interface RouteGetResult {
  family: DarwinFamily;
  /** `route to:` as printed (the address asked about). */
  routeTo?: string;
  /** `destination:` as printed (`default` for any 0.0.0.0/::). */
  destinationText: string;
  /** `mask:` as printed; absent for host routes. */
  maskText?: string;
  /** The matched route as CIDR (`0.0.0.0/1` for `default` + `128.0.0.0`); null when names were printed. */
  destination: string | null;
  /** 0.0.0.0/0 or ::/0 matched. */
  isDefault: boolean;
  /** One of our halves matched (0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1). */
  isSplitRoute: boolean;
  /** Present only for RTF_GATEWAY routes. */
  gateway?: string;
  interface?: string;
  /** Flag names (`UP`, `GATEWAY`, `HOST`, `STATIC`, `IFSCOPE`…). */
  flags: string[];
  /** The metrics line, by header name (`mtu`, `expire`, `rtt,msec`…). */
  metrics: Record<string, number>;
}

const SPLIT_ROUTES = new Set(['0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1']);

function addressOf(text: string, family: DarwinFamily): string | null {
  if (text === 'default') return family === 'inet' ? '0.0.0.0' : '::';
  const { address } = splitScope(text);
  if (family === 'inet' && isIpv4(address)) return address;
  if (family === 'inet6' && isIpv6(address)) return canonicalIpv6(address);
  return null;
}

function prefixOf(maskText: string | undefined, family: DarwinFamily): number | undefined {
  if (maskText === undefined) return family === 'inet' ? 32 : 128;
  if (maskText === 'default') return 0;
  if (family === 'inet') return isIpv4(maskText) ? ipv4MaskToPrefix(ipv4ToInt(maskText)) : undefined;
  return ipv6MaskToPrefix(maskText);
}

function familyOf(...texts: (string | undefined)[]): DarwinFamily {
  for (const t of texts) {
    if (t === undefined || t === 'default') continue;
    const { address } = splitScope(t);
    if (isIpv6(address)) return 'inet6';
    if (isIpv4(address)) return 'inet';
  }
  return 'inet';
}

/**
 * Parses `route -n get X`. Returns null for empty output (no route: `route get` prints
 * nothing on stdout and its error on stderr).
 */
export function parseRouteGet(text: string): RouteGetResult | null {
  if (text.trim() === '') return null;
  const fields = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  let metrics: Record<string, number> = {};
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const field = /^(route to|destination|mask|gateway|interface|flags|if address):\s?(.*)$/.exec(line.trim());
    if (field) {
      fields.set(field[1], field[2]);
      continue;
    }
    if (/^\s*recvpipe\s/.test(line)) {
      const names = line.trim().split(/\s+/);
      const values = (lines[i + 1] ?? '').trim().split(/\s+/);
      metrics = {};
      names.forEach((name, index) => {
        const value = Number((values[index] ?? '').replace(/L$/, ''));
        if (Number.isFinite(value)) metrics[name] = value;
      });
      i++;
      continue;
    }
    // route(8) warnings that can precede the answer are not part of it.
    if (/^route: /.test(line)) continue;
    throw new ParseError(GET_KIND, `unexpected line "${line.trim()}"`, i + 1);
  }
  const destinationText = fields.get('destination');
  if (destinationText === undefined) throw new ParseError(GET_KIND, 'no "destination:" line');
  const maskText = fields.get('mask');
  const gateway = fields.get('gateway');
  const routeTo = fields.get('route to');
  const family = familyOf(routeTo, destinationText, maskText, gateway);
  const flagsText = fields.get('flags') ?? '';
  const flagsMatch = /^<([^>]*)>$/.exec(flagsText);
  if (flagsText !== '' && !flagsMatch) throw new ParseError(GET_KIND, `bad flags "${flagsText}"`);
  const flags = flagsMatch && flagsMatch[1] ? flagsMatch[1].split(',') : [];

  const address = addressOf(destinationText, family);
  const prefix = prefixOf(maskText, family);
  const destination = address !== null && prefix !== undefined ? `${address}/${prefix}` : null;
  const result: RouteGetResult = {
    family,
    destinationText,
    destination,
    isDefault: destination === '0.0.0.0/0' || destination === '::/0',
    isSplitRoute: destination !== null && SPLIT_ROUTES.has(destination),
    flags,
    metrics,
  };
  if (routeTo !== undefined) result.routeTo = routeTo;
  if (maskText !== undefined) result.maskText = maskText;
  if (gateway !== undefined) result.gateway = gateway;
  const iface = fields.get('interface');
  if (iface !== undefined) result.interface = iface;
  return result;
}

export type RouteChangeOutcome = 'ok' | 'exists' | 'not-in-table' | 'unreachable' | 'entry-in-use' | 'other';

export interface RouteChangeResult {
  outcome: RouteChangeOutcome;
  /** The error text route printed (empty for ok). */
  message: string;
}

const OUTCOMES: [RegExp, RouteChangeOutcome][] = [
  [/File exists/i, 'exists'],
  [/not in table|No such process/i, 'not-in-table'],
  [/Network is unreachable|No route to host/i, 'unreachable'],
  [/entry in use|Resource busy|Device busy/i, 'entry-in-use'],
];

/**
 * Classifies what `route add|delete|change` printed. route exits 0 on kernel errors: stdout
 * ends `: <error>` after the gateway, stderr says `route: writing to routing socket: <error>`.
 */
export function classifyRouteChange(stdout: string, stderr: string): RouteChangeResult {
  const errLines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const stdoutErrors: string[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    // `add net 0.0.0.0: gateway 10.211.55.5: File exists`: parts are joined by ": " (IPv6
    // addresses hold ":" but never ": "); whatever follows the destination and gateway is the error.
    const parts = line.trim().split(': ');
    if (!/^(?:add|delete|change) (?:net|host) \S+$/.test(parts[0])) continue;
    let rest = parts.slice(1);
    if (rest.length > 0 && /^(?:gateway|interface) /.test(rest[0])) rest = rest.slice(1);
    if (rest.length > 0) stdoutErrors.push(rest.join(': ').trim());
  }
  const evidence = [...stdoutErrors, ...errLines];
  for (const text of evidence) {
    for (const [pattern, outcome] of OUTCOMES) {
      if (pattern.test(text)) return { outcome, message: stripRoutePrefix(text) };
    }
  }
  if (evidence.length > 0) return { outcome: 'other', message: [...new Set(evidence.map(stripRoutePrefix))].join('; ') };
  return { outcome: 'ok', message: '' };
}

function stripRoutePrefix(text: string): string {
  return text.replace(/^route: (?:writing to routing socket: )?/, '');
}
