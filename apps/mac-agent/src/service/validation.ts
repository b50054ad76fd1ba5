/**
 * An Up request checked before anything is touched: each bad field named as the proto names
 * it (vm_address, endpoints[1].ip, dns_servers[0], …), addresses in their canonical form.
 */
import { InvalidRequestError } from '@wgctl/agent-kit';
import { canonicalExcluded, excludedProblems, isIPv4, isIpAddressOrZoned, isPort } from '@wgctl/config';
import { shownValue } from '@wgctl/logging';
import ipaddr from 'ipaddr.js';
import type { UpIntent } from './journal';

/** Bounds of an Up request: more than this is a mistake, not a configuration. */
export const MAX_ENDPOINTS = 16;
export const MAX_DNS_SERVERS = 8;

/**
 * A host name as the wg-quick Endpoint parser (@wgctl/parsers) takes it: RFC 1123 labels plus
 * `_`, which resolvers accept and a WireGuard config may hold. Not @wgctl/config's isHostname:
 * that one refuses `_` (and all-numeric names), so a name the controller sends would be lost.
 */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * Addresses as @wgctl/config reads them: IPv4 in four-part decimal, IPv6 as RFC 4291 writes it,
 * which may carry a zone id (fe80::1%en0, as tools print a link-local peer).
 */
const isIp = isIpAddressOrZoned;

function isIp6(value: string): boolean {
  return isIpAddressOrZoned(value) && !isIPv4(value);
}

function canonicalIp(value: string): string {
  return ipaddr.parse(value).toString();
}

/**
 * Checks an Up request before anything is touched; throws InvalidRequestError naming each bad
 * field as the proto does (vm_address, endpoints[1].ip, dns_servers[0], …).
 */
/** The bounds of a sign-in window: long enough to sign in, short enough to stay an exception. */
export const PORTAL_WINDOW_MS = { min: 1_000, max: 300_000 } as const;

function portalWindowProblems(intent: UpIntent): string[] {
  const ms = intent.portalWindowMs;
  if (ms === undefined) return [];
  const problems: string[] = [];
  if (!Number.isInteger(ms) || ms < PORTAL_WINDOW_MS.min || ms > PORTAL_WINDOW_MS.max) problems.push(`portal_window_ms: ${ms} is not in ${PORTAL_WINDOW_MS.min}..${PORTAL_WINDOW_MS.max}`);
  // A full Up routes everything via the VM: the browser could not reach the portal.
  if (!intent.killSwitchOnly) problems.push('portal_window_ms: only with kill_switch_only (the window is for signing in before the tunnel is up)');
  return problems;
}

export function validateIntent(intent: UpIntent): UpIntent {
  const problems: string[] = [];
  if (!isIPv4(intent.vmAddress)) problems.push(`vm_address: ${shownValue(intent.vmAddress)} is not an IPv4 address`);
  if (intent.vmAddress6 && !isIp6(intent.vmAddress6)) problems.push(`vm_address6: ${shownValue(intent.vmAddress6)} is not an IPv6 address`);
  if (intent.endpoints.length === 0) problems.push('endpoints: no WireGuard server endpoints given');
  if (intent.endpoints.length > MAX_ENDPOINTS) problems.push(`endpoints: ${intent.endpoints.length} given, at most ${MAX_ENDPOINTS}`);
  intent.endpoints.slice(0, MAX_ENDPOINTS).forEach((e, i) => {
    if (!isIp(e.ip)) problems.push(`endpoints[${i}].ip: ${shownValue(e.ip)} is not an IP address (resolve names before Up)`);
    if (!isPort(e.port)) problems.push(`endpoints[${i}].port: ${e.port} is not in 1..65535`);
    if (e.host && !isIp(e.host) && !HOST_NAME.test(e.host)) problems.push(`endpoints[${i}].host: ${shownValue(e.host)} is not a host name or an IP address`);
  });
  if (intent.dnsServers.length > MAX_DNS_SERVERS) problems.push(`dns_servers: ${intent.dnsServers.length} given, at most ${MAX_DNS_SERVERS}`);
  intent.dnsServers.slice(0, MAX_DNS_SERVERS).forEach((server, i) => {
    if (!isIp(server)) problems.push(`dns_servers[${i}]: ${shownValue(server)} is not an IP address`);
  });
  problems.push(...excludedProblems('exclude', intent.exclude ?? [], [
    { address: intent.vmAddress, what: 'the VM\'s address' },
    { address: intent.vmAddress6, what: 'the VM\'s IPv6 address' },
    ...intent.dnsServers.map((address) => ({ address, what: 'the tunnel\'s DNS server' })),
  ]));
  if (intent.ipv6 === 'route' && !intent.vmAddress6) problems.push('ipv6: route mode needs vm_address6 (the VM\'s IPv6 address on the vnic)');
  problems.push(...portalWindowProblems(intent));
  if (problems.length) throw new InvalidRequestError(problems);
  return {
    ...intent,
    vmAddress: canonicalIp(intent.vmAddress),
    vmAddress6: intent.vmAddress6 ? canonicalIp(intent.vmAddress6) : undefined,
    endpoints: intent.endpoints.map((e) => ({ ...e, ip: canonicalIp(e.ip) })),
    dnsServers: intent.dnsServers.map(canonicalIp),
    ...(intent.exclude?.length ? { exclude: canonicalExcluded(intent.exclude) } : {}),
  };
}
