/**
 * networksetup outputs. Its exit codes cannot be trusted (errors are printed on stdout with
 * `** Error:`), so the text decides. "None set" is its own answer (`There aren't any DNS
 * Servers set on Wi-Fi.`) and maps to an empty list: `-setdnsservers S Empty` restores it.
 */
import { ParseError } from '../errors';
import { isIpv4, isIpv6, splitScope } from './addresses';

export interface NetworkService {
  /** Exactly as networksetup prints it (spaces, `#`, `/`, `( )` included). */
  name: string;
  /** A leading `*` marks a disabled service. */
  enabled: boolean;
}

/** Thrown when networksetup says the service does not exist (renamed or removed meanwhile). */
export class NetworksetupUnknownServiceError extends ParseError {
  constructor(
    kind: string,
    readonly service: string,
  ) {
    super(kind, `"${service}" is not a recognized network service`);
    this.name = 'NetworksetupUnknownServiceError';
  }
}

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim() !== '');
}

function throwOnError(kind: string, all: string[]): void {
  for (const line of all) {
    const unknown = /^(.*) is not a recognized network service\.$/.exec(line.trim());
    if (unknown) throw new NetworksetupUnknownServiceError(kind, unknown[1]);
  }
  const error = all.find((l) => /^\*\* Error:/.test(l.trim()) || /^Error:/.test(l.trim()));
  if (error) throw new ParseError(kind, error.trim());
}

const LEGEND = /^An asterisk \(\*\) denotes that a network service is disabled\.$/;

/** Parses `networksetup -listallnetworkservices` (legend line, `*` = disabled). */
export function parseNetworkServices(text: string): NetworkService[] {
  const kind = 'networksetup -listallnetworkservices';
  const all = lines(text);
  throwOnError(kind, all);
  if (all.length === 0 || !LEGEND.test(all[0].trim())) {
    throw new ParseError(kind, 'missing the "An asterisk (*) denotes …" legend line');
  }
  return all.slice(1).map((line) => {
    const disabled = line.startsWith('*');
    const name = (disabled ? line.slice(1) : line).trimEnd();
    if (name.trim() === '') throw new ParseError(kind, 'empty service name');
    return { name, enabled: !disabled };
  });
}

/** Parses `networksetup -getdnsservers S`: the servers, or [] for "There aren't any DNS Servers set on S.". */
export function parseDnsServers(text: string): string[] {
  const kind = 'networksetup -getdnsservers';
  const all = lines(text);
  throwOnError(kind, all);
  if (all.length === 1 && /^There aren't any DNS Servers set on .*\.$/.test(all[0].trim())) return [];
  if (all.length === 0) throw new ParseError(kind, 'empty output');
  return all.map((line, index) => {
    const server = line.trim();
    const { address } = splitScope(server);
    if (!isIpv4(address) && !isIpv6(address)) throw new ParseError(kind, `not an IP address: "${server}"`, index + 1);
    return server;
  });
}

const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Parses `networksetup -getsearchdomains S`: the domains, or [] for "There aren't any Search Domains set on S.". */
export function parseSearchDomains(text: string): string[] {
  const kind = 'networksetup -getsearchdomains';
  const all = lines(text);
  throwOnError(kind, all);
  if (all.length === 1 && /^There aren't any Search Domains set on .*\.$/.test(all[0].trim())) return [];
  if (all.length === 0) throw new ParseError(kind, 'empty output');
  return all.map((line, index) => {
    const domain = line.trim();
    if (!DOMAIN.test(domain)) throw new ParseError(kind, `not a domain name: "${domain}"`, index + 1);
    return domain;
  });
}

/** The error networksetup printed for a set command (`** Error: …`), or undefined when it worked. */
export function networksetupError(stdout: string, stderr: string): string | undefined {
  const all = lines(`${stdout}\n${stderr}`).map((l) => l.trim());
  const unknown = all.find((l) => / is not a recognized network service\.$/.test(l));
  if (unknown) return unknown;
  return all.find((l) => /\bError\b/.test(l));
}

export interface NetworksetupAdditionalRoute {
  destination: string;
  mask: string;
  gateway: string;
}

/** Parses `networksetup -getadditionalroutes S` (`dest mask gateway` lines, or "There are no additional IPv4 routes on S."). */
export function parseAdditionalRoutes(text: string): NetworksetupAdditionalRoute[] {
  const kind = 'networksetup -getadditionalroutes';
  const all = lines(text);
  throwOnError(kind, all);
  if (all.length === 1 && /^There are no additional IPv4 routes on .*\.$/.test(all[0].trim())) return [];
  if (all.length === 0) throw new ParseError(kind, 'empty output');
  return all.map((line, index) => {
    const words = line.trim().split(/\s+/);
    if (words.length !== 3 || !words.every(isIpv4)) throw new ParseError(kind, `expected "destination mask gateway": "${line.trim()}"`, index + 1);
    return { destination: words[0], mask: words[1], gateway: words[2] };
  });
}
