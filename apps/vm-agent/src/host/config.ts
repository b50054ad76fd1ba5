/**
 * The wg-quick config file is the single source of truth for the tunnel: interface name
 * (from the file name, like wg-quick), tunnel address(es), server endpoint(s). This module
 * reads it (pure parsing in @wgctl/parsers), derives the interface public key and resolves
 * endpoint host names. Nothing returned here carries a private or preshared key.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile, stat } from 'node:fs/promises';
import { checkTrustedPath, UntrustedPathError } from '@wgctl/config';
import { addKnownSecret } from '@wgctl/logging';
import { parseWgQuickConfig, wgQuickInterfaceFromPath, type WgQuickConfig, type WgEndpoint } from '@wgctl/parsers';

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

export interface ResolvedEndpoint {
  /** As written in the config (may be a name). */
  host: string;
  /** The address it resolves to; '' when resolution failed (see `error`). */
  ip: string;
  port: number;
  error?: string;
}

export interface TunnelConfig {
  path: string;
  interface: string;
  parsed: WgQuickConfig;
  /** Address entries as written (CIDRs). */
  addresses: string[];
  /** The first IPv4 address (without prefix): what the Mac's traffic is SNATed to. */
  tunnelIPv4?: string;
  /** The first IPv6 address (without prefix): what the Mac's IPv6 traffic is SNATed to (NAT66). */
  tunnelIPv6?: string;
  /** Public key of the interface, derived from its private key; undefined without a key. */
  publicKey?: string;
}

/** X25519 public key from a WireGuard private key (base64), via a PKCS#8 wrapper. */
export function derivePublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64, 'base64');
  if (raw.length !== 32) throw new ConfigFileError('PrivateKey does not decode to 32 bytes');
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  const publicDer = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  raw.fill(0);
  return Buffer.from(publicDer.subarray(publicDer.length - 32)).toString('base64');
}

/** Parses config text (already read) for `path`. Throws ConfigFileError naming the file. */
export function tunnelConfigFromText(path: string, text: string): TunnelConfig {
  const iface = wgQuickInterfaceFromPath(path);
  if (!iface) {
    throw new ConfigFileError(`${path}: wg-quick needs the file to be named <interface>.conf (1–15 characters of a-z A-Z 0-9 _ = + . -)`);
  }
  let parsed: WgQuickConfig;
  try {
    parsed = parseWgQuickConfig(text);
  } catch (e) {
    throw new ConfigFileError(`${path}: ${(e as Error).message}`);
  }
  const addresses = parsed.interface.addresses;
  const v4 = addresses.find((a) => !a.includes(':'));
  const v6 = addresses.find((a) => a.includes(':'));
  const privateKey = parsed.interface.privateKey;
  // From now on these values are redacted wherever they would appear (logs, errors, RPCs).
  if (privateKey) addKnownSecret(privateKey.reveal());
  for (const peer of parsed.peers) if (peer.presharedKey) addKnownSecret(peer.presharedKey.reveal());
  return {
    path,
    interface: iface,
    parsed,
    addresses,
    tunnelIPv4: v4 ? v4.split('/')[0] : undefined,
    tunnelIPv6: v6 ? v6.split('/')[0] : undefined,
    publicKey: privateKey ? derivePublicKey(privateKey.reveal()) : undefined,
  };
}

/**
 * The config holds the private key, and wg-quick runs its PostUp/PreDown lines as root: a file
 * others can read leaks the key, one they can write (or own) is root for them. wg-quick only
 * warns about a world-accessible file; the agent refuses it, naming the file and the fix.
 */
export function checkConfigFileMode(path: string, mode: number, uid: number, agentUid = process.geteuid?.() ?? 0): void {
  const bits = mode & 0o777;
  if (bits & 0o077) {
    throw new ConfigFileError(
      `${path} is accessible by group or others (mode ${bits.toString(8).padStart(4, '0')}) and holds the WireGuard private key: run chmod 600 ${path}`,
    );
  }
  if (uid !== agentUid && uid !== 0) {
    throw new ConfigFileError(`${path} is owned by uid ${uid}, not by root or the agent (uid ${agentUid}): wg-quick runs its PostUp lines as root; run chown root ${path}`);
  }
}

/** The directories above matter as much (whoever can write /etc/wireguard can swap wg0.conf): StrictModes. */
function checkConfigFileParents(path: string): void {
  try {
    checkTrustedPath(path, { what: 'wg-quick config' });
  } catch (e) {
    throw e instanceof UntrustedPathError ? new ConfigFileError(e.message) : e;
  }
}

/** At start-up: a config others can read or own stops the agent (a missing one is only logged). */
export async function checkConfigFileAtStart(path: string, logger: { warn: (message: string, meta?: object) => unknown }): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    logger.warn('the wg-quick config does not exist yet: Up will fail until it does', { path, error: (e as NodeJS.ErrnoException).code });
    return;
  }
  checkConfigFileMode(path, info.mode, info.uid);
  checkConfigFileParents(path);
}

export async function loadTunnelConfig(path: string): Promise<TunnelConfig> {
  let text: string;
  try {
    const info = await stat(path);
    checkConfigFileMode(path, info.mode, info.uid);
    checkConfigFileParents(path);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof ConfigFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigFileError(
      code === 'ENOENT' ? `${path} does not exist (pass --wg-config)` : `cannot read ${path}: ${(e as Error).message}`,
    );
  }
  return tunnelConfigFromText(path, text);
}

export type HostResolver = (host: string) => Promise<string>;

/** getaddrinfo, first answer (what wg(8) does), bounded in time. */
export const systemResolver: HostResolver = async (host) => {
  const timeout = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`resolving ${host} timed out after 5 s`)), 5000);
    t.unref();
  });
  const result = await Promise.race([lookup(host), timeout]);
  return result.address;
};

export async function resolveEndpoint(endpoint: WgEndpoint, resolver: HostResolver = systemResolver): Promise<ResolvedEndpoint> {
  if (endpoint.family !== 'name') return { host: endpoint.host, ip: endpoint.host, port: endpoint.port };
  try {
    return { host: endpoint.host, ip: await resolver(endpoint.host), port: endpoint.port };
  } catch (e) {
    return { host: endpoint.host, ip: '', port: endpoint.port, error: `cannot resolve ${endpoint.host}: ${(e as Error).message}` };
  }
}
