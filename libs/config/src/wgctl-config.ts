/**
 * The controller's config file (JSON). Unknown keys are errors, so a typo never silently falls
 * back to a default.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, zodProblems } from './errors';
import { excludedCidrSchema, MAX_EXCLUDED } from './exclude';
import { checkTrustedPath, UntrustedPathError } from './trusted-path';
import { durationMsSchema, hostSchema, hostnameSchema, ipSchema, ipv6Schema, portSchema, targetAddressSchema } from './validators';

/** The file's words for the Mac's IPv6 mode; the controller maps them to wgctl.v1.Ipv6Mode on load. */
export const IPV6_MODES = ['auto', 'route', 'block'] as const;

export const DEFAULT_VM_AGENT_PORT = 7443;

/**
 * Why `url` cannot be the captive-portal probe's URL, or undefined when it can: plain http://
 * (a portal cannot answer TLS for a name it does not own), without credentials (the probe
 * goes out in clear, to whatever answers in the internet's place).
 */
export function probeUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `expected an http:// URL, got "${url}"`;
  }
  if (parsed.protocol !== 'http:') return `expected a plain http:// URL (a captive portal cannot answer TLS), got "${url}"`;
  if (parsed.username || parsed.password) return 'expected no user or password in the URL (the probe is sent in clear)';
  return undefined;
}

const probeUrlSchema = z.string().superRefine((url, ctx) => {
  const problem = probeUrlProblem(url);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const wgctlConfigSchema = z.strictObject({
  version: z.literal(1, { message: 'expected version 1' }),
  vm: z.strictObject({
    /** Where the controller reaches the VM agent (IP or host name). */
    address: hostSchema,
    port: portSchema,
    /** The VM's IPv6 on the Mac-VM network: next hop of the Mac's IPv6 routes (ipv6 auto/route). */
    address6: ipv6Schema.optional(),
    /** Name checked in the VM agent's certificate; default 'vm-agent'. */
    tlsServerName: hostnameSchema.optional(),
  }),
  mac: z.strictObject({
    /** The mac-agent: 'unix:/path' or 'ADDR:PORT'. */
    agent: targetAddressSchema,
  }),
  /** Directory holding ca.crt and <role>.crt/.key; relative paths are relative to the config file. */
  tlsDir: z.string().min(1, { message: 'expected a directory path' }),
  dns: z.array(ipSchema).optional(),
  handshakeTimeoutMs: durationMsSchema.optional(),
  ipv6: z.enum(IPV6_MODES, { message: `expected one of ${IPV6_MODES.join(', ')}` }).optional(),
  /** Destinations reached through the Mac's own gateway, in clear, beside the tunnel (see ./exclude). */
  exclude: z.array(excludedCidrSchema).max(MAX_EXCLUDED, { message: `at most ${MAX_EXCLUDED} excluded CIDRs` }).optional(),
  /** With the kill switch on, the Mac reaches its uplink's private subnets and mDNS (default off). */
  allowLan: z.boolean().optional(),
  portal: z
    .strictObject({
      /** The URL `wgctl up` asks when no handshake comes, to tell a captive portal (default: Apple's); `--portal-probe-url` overrides it. */
      probeUrl: probeUrlSchema.optional(),
    })
    .optional(),
});

export type WgctlConfig = z.infer<typeof wgctlConfigSchema>;

/** Validates an already-parsed document; throws ConfigError listing every bad field. */
export function parseWgctlConfig(value: unknown, source?: string): WgctlConfig {
  const result = wgctlConfigSchema.safeParse(value);
  if (!result.success) throw new ConfigError('invalid configuration', zodProblems(result.error), source);
  return result.data;
}

/**
 * Another user who can write the config (or a directory above it) redirects the controller to
 * their own agents and TLS directory: StrictModes, as for the TLS material.
 */
function checkConfigFileTrusted(path: string): void {
  try {
    checkTrustedPath(path, { what: 'config file' });
  } catch (err) {
    if (!(err instanceof UntrustedPathError)) throw err;
    const where = err.offender === err.path ? '' : `${err.offender} `;
    throw new ConfigError(`${where}${err.problems.join(' and ')}; run: ${err.fix}`, [], path);
  }
}

/**
 * Reads, permission-checks and validates a config file. `tlsDir` comes back absolute
 * (resolved against the config file's directory).
 */
export function loadConfig(path: string): WgctlConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(code === 'ENOENT' ? 'no such file (run `wgctl init` to create it)' : `cannot read: ${(err as Error).message}`, [], path);
  }
  checkConfigFileTrusted(path);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`is not valid JSON: ${(err as Error).message}`, [], path);
  }
  const config = parseWgctlConfig(document, path);
  return { ...config, tlsDir: isAbsolute(config.tlsDir) ? config.tlsDir : resolve(dirname(resolve(path)), config.tlsDir) };
}
