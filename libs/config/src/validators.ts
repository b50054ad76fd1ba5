/**
 * Validators for every value that crosses a boundary (CLI flags, config files, RPC requests):
 * plain predicates/parsers plus zod schemas built on them, so both give the same verdict.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { shownValue } from '@wgctl/logging';

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDRs

export function isIPv4(value: string): boolean {
  return isIP(value) === 4;
}

/** A plain IPv6 address (no brackets, no zone id). */
export function isIPv6(value: string): boolean {
  return isIP(value) === 6 && !value.includes('%');
}

export function isIpAddress(value: string): boolean {
  return isIPv4(value) || isIPv6(value);
}

/**
 * An IP address, or an IPv6 address with a zone id (`fe80::1%en0`, as tools print a link-local
 * peer): the zone one or more letters and digits, nothing an argv or a rule file could misread.
 */
export function isIpAddressOrZoned(value: string): boolean {
  const percent = value.indexOf('%');
  if (percent < 0) return isIpAddress(value);
  return isIPv6(value.slice(0, percent)) && /^[0-9A-Za-z]+$/.test(value.slice(percent + 1));
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

/** Parses 'ADDR/PREFIX' (host bits may be set, as in wg-quick's Address = 10.0.0.2/24). */
export function parseCidr(value: string): Cidr | undefined {
  const slash = value.indexOf('/');
  if (slash < 0 || slash !== value.lastIndexOf('/')) return undefined;
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (isIPv4(address)) return prefix <= 32 ? { address, prefix, family: 4 } : undefined;
  if (isIPv6(address)) return prefix <= 128 ? { address, prefix, family: 6 } : undefined;
  return undefined;
}

export const ipv6Schema = z.string().refine(isIPv6, { message: 'expected an IPv6 address such as 2001:db8::1' });
export const ipSchema = z.string().refine(isIpAddress, { message: 'expected an IPv4 or IPv6 address' });

// ---------------------------------------------------------------------------------------------
// Ports, host names, durations

const MIN_PORT = 1;
const MAX_PORT = 65535;

export function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= MIN_PORT && value <= MAX_PORT;
}

export const portSchema = z
  .number({ message: 'expected a port number' })
  .int({ message: 'expected an integer port' })
  .min(MIN_PORT, { message: `port must be ${MIN_PORT}–${MAX_PORT}` })
  .max(MAX_PORT, { message: `port must be ${MIN_PORT}–${MAX_PORT}` });

const HOSTNAME = /^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/;

/** A DNS host name (RFC 1123 labels). IP literals are not host names. */
export function isHostname(value: string): boolean {
  return HOSTNAME.test(value) && !isIPv4(value) && !/^[0-9.]+$/.test(value);
}

export const hostnameSchema = z.string().refine(isHostname, { message: 'expected a DNS host name' });
export const hostSchema = z
  .string()
  .refine((v) => isIpAddress(v) || isHostname(v), { message: 'expected an IP address or a DNS host name' });

/** Upper bound for any configured duration: one day. */
const MAX_DURATION_MS = 24 * 60 * 60 * 1000;

export const durationMsSchema = z
  .number({ message: 'expected a duration in milliseconds' })
  .int({ message: 'expected a whole number of milliseconds' })
  .positive({ message: 'duration must be positive' })
  .max(MAX_DURATION_MS, { message: `duration must be at most ${MAX_DURATION_MS} ms (one day)` });

// ---------------------------------------------------------------------------------------------
// Interface names

/**
 * Linux IFNAMSIZ-1 = 15 characters; macOS utun names fit the same rule. Not starting with '-':
 * the name is passed to ip/tcpdump/pfctl as an argument and must never read as an option.
 */
const INTERFACE_NAME = /^[A-Za-z0-9_.=+][A-Za-z0-9_.=+-]{0,14}$/;

export function isInterfaceName(value: string): boolean {
  return INTERFACE_NAME.test(value) && value !== '.' && value !== '..';
}

// ---------------------------------------------------------------------------------------------
// Listen / target addresses: 'ADDR:PORT', '[V6]:PORT', 'unix:/absolute/path'

export type ListenAddress =
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6 | 'name' }
  | { kind: 'unix'; path: string };

export interface ParseAddressOptions {
  /** Accept port 0 (bind an ephemeral port); only meaningful for listening. Default false. */
  allowPortZero?: boolean;
}

/** Parses an address, returning a reason instead of throwing. */
export function parseAddress(
  value: string,
  options: ParseAddressOptions = {},
): { ok: true; address: ListenAddress } | { ok: false; reason: string } {
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (!path.startsWith('/')) return { ok: false, reason: 'unix socket path must be absolute (unix:/path)' };
    if (path.includes('\0')) return { ok: false, reason: 'unix socket path contains a NUL byte' };
    if (path.endsWith('/')) return { ok: false, reason: 'unix socket path must name a file, not a directory' };
    if (Buffer.byteLength(path) > 107) return { ok: false, reason: 'unix socket path is longer than 107 bytes' };
    return { ok: true, address: { kind: 'unix', path } };
  }
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') return { ok: false, reason: 'expected [IPV6]:PORT' };
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (!isIPv6(host)) return { ok: false, reason: `${shownValue(host)} is not an IPv6 address` };
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: 'expected ADDR:PORT, [IPV6]:PORT or unix:/path' };
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) return { ok: false, reason: 'an IPv6 address needs brackets: [IPV6]:PORT' };
    if (!isIPv4(host) && !isHostname(host)) return { ok: false, reason: `${shownValue(host)} is not an IPv4 address or host name` };
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return { ok: false, reason: `${shownValue(portText)} is not a port number` };
  const port = Number(portText);
  const portOk = isPort(port) || (options.allowPortZero === true && port === 0);
  if (!portOk) return { ok: false, reason: `port ${port} is out of range (${options.allowPortZero ? 0 : MIN_PORT}–${MAX_PORT})` };
  const family = isIPv4(host) ? 4 : isIPv6(host) ? 6 : 'name';
  return { ok: true, address: { kind: 'tcp', host, port, family } };
}

/** Parses an address or throws an Error naming the bad value. */
export function parseListenAddress(value: string, options: ParseAddressOptions = { allowPortZero: true }): ListenAddress {
  const result = parseAddress(value, options);
  if (!result.ok) throw new Error(`invalid address ${shownValue(value)}: ${result.reason}`);
  return result.address;
}

/** The canonical text form ('unix:/p', '192.0.2.1:80', '[2001:db8::1]:80'). */
export function formatListenAddress(address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return address.family === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** True for 127.0.0.1, ::1 and localhost (the only hosts where plaintext dev mode is allowed). */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase());
}

function addressSchema(options: ParseAddressOptions) {
  return z.string().superRefine((value, ctx) => {
    const result = parseAddress(value, options);
    if (!result.ok) ctx.addIssue({ code: 'custom', message: result.reason });
  });
}

/** An address to connect to; port 1–65535. */
export const targetAddressSchema = addressSchema({ allowPortZero: false });
