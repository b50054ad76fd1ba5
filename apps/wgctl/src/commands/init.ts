/**
 * `wgctl init`: the config file and a pairing PKI, with no prompts. `--rotate` renews the
 * certificates (keeping the CA unless --rotate-ca). Every bad flag value is reported with
 * the flag's name; nothing is written unless everything is valid.
 */
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import {
  ConfigError,
  DEFAULT_VM_AGENT_PORT,
  excludedProblems,
  isIpAddress,
  isIPv6,
  loadConfig,
  parseAddress,
  parseWgctlConfig,
  shellQuote as quote,
  type WgctlConfig,
} from '@wgctl/config';
import { createPki } from '@wgctl/transport';
import type { CommandContext } from '../command-context';
import { EXIT, UsageError } from '../errors';
import { configPath } from './context';

const DEFAULT_MAC_AGENT = 'unix:/var/run/wgctl/mac-agent.sock';
/**
 * Where the next steps put the mac-agent, its node and its TLS files: root-owned all the way up
 * on every Mac (/Library root:wheel 0755, /Library/Application Support root:admin 0755), which
 * `mac-agent install` and the agent require of what launchd runs as root. Not /usr/local/lib or
 * /usr/local/bin: Homebrew on Intel Macs gives them to its user.
 */
const MAC_AGENT_DIR = '/Library/Application Support/wgctl';
const VM_TLS_DIR = '/etc/wgctl/tls';
const MAC_TLS_DIR = `${MAC_AGENT_DIR}/tls`;
const VM_WG_CONFIG = '/etc/wireguard/wg0.conf';

export interface InitFlags {
  dir?: string;
  vmAddress?: string;
  vmAddress6?: string;
  vmPort?: number;
  macAgent?: string;
  dns?: string[];
  exclude?: string[];
  allowLan?: boolean;
  /** Written as portal.probeUrl: the URL `wgctl up` asks to tell a captive portal. */
  portalProbeUrl?: string;
  ipv6?: 'auto' | 'route' | 'block';
  handshakeTimeout?: number;
  force?: boolean;
  rotate?: boolean;
  rotateCa?: boolean;
}

/** Config field → the flag that sets it, so schema errors name what the user typed. */
const FLAG_OF_FIELD: [RegExp, string][] = [
  [/^vm\.address6/, '--vm-address6'],
  [/^vm\.address/, '--vm-address'],
  [/^vm\.port/, '--vm-port'],
  [/^mac\.agent/, '--mac-agent'],
  [/^dns/, '--dns'],
  [/^exclude/, '--exclude'],
  [/^ipv6/, '--ipv6'],
  [/^handshakeTimeoutMs/, '--handshake-timeout'],
  [/^portal\.probeUrl/, '--portal-probe-url'],
];

function flagFor(path: string): string {
  return FLAG_OF_FIELD.find(([re]) => re.test(path))?.[1] ?? path;
}

function locations(ctx: CommandContext, flags: InitFlags): { configFile: string; dir: string; tlsDir: string } {
  const configFile = resolve(ctx.global.config ?? (flags.dir ? join(flags.dir, 'config.json') : configPath(ctx)));
  const dir = resolve(flags.dir ?? dirname(configFile));
  return { configFile, dir, tlsDir: join(dir, 'tls') };
}

function validateFlags(flags: InitFlags): string[] {
  const problems: string[] = [];
  if (flags.vmAddress === undefined) problems.push('--vm-address is required (the VM\'s IP address on the Mac-VM network)');
  else if (!isIpAddress(flags.vmAddress)) problems.push(`--vm-address: expected an IPv4 or IPv6 address, got "${flags.vmAddress}"`);
  if (flags.vmAddress6 !== undefined && !isIPv6(flags.vmAddress6)) problems.push(`--vm-address6: expected an IPv6 address such as 2001:db8::2, got "${flags.vmAddress6}"`);
  if (flags.macAgent !== undefined) {
    const parsed = parseAddress(flags.macAgent);
    if (!parsed.ok) problems.push(`--mac-agent: ${parsed.reason} (expected unix:/PATH or ADDR:PORT), got "${flags.macAgent}"`);
  }
  for (const server of flags.dns ?? []) {
    if (!isIpAddress(server)) problems.push(`--dns: expected an IPv4 or IPv6 address, got "${server}"`);
  }
  if (flags.exclude?.length) {
    // The schema checks each CIDR; here, what it cannot see: the VM and the DNS servers kept reachable as they are.
    const keep = [flags.vmAddress, flags.vmAddress6].map((address) => ({ address, what: 'the VM\'s address' }));
    const dns = (flags.dns ?? []).map((address) => ({ address, what: 'the DNS server' }));
    problems.push(...excludedProblems('--exclude', flags.exclude, [...keep, ...dns]).filter((p) => /covers/.test(p)));
  }
  if (flags.rotateCa && !flags.rotate) problems.push('--rotate-ca needs --rotate');
  return problems;
}

/** IP SANs for the mac-agent certificate when it listens on TCP. */
function macAgentIps(target: string): string[] {
  const parsed = parseAddress(target);
  return parsed.ok && parsed.address.kind === 'tcp' && isIpAddress(parsed.address.host) ? [parsed.address.host] : [];
}

function writeConfigAtomically(file: string, config: WgctlConfig): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

function nextSteps(config: WgctlConfig, configFile: string, tlsDir: string, isDefaultConfig: boolean, rotated: boolean): string {
  const t = (f: string) => quote(join(tlsDir, f));
  const agentDir = quote(MAC_AGENT_DIR);
  const vmListen = `${config.vm.address.includes(':') ? `[${config.vm.address}]` : config.vm.address}:${config.vm.port}`;
  const lines = [
    '',
    'Next steps:',
    `  1. Copy the VM's certificate and key, and the vm-agent program, to the VM (the key stays mode 0600):`,
    `       ssh root@${config.vm.address} 'install -d -m 0700 ${VM_TLS_DIR}'`,
    `       scp ${t('ca.crt')} ${t('vm-agent.crt')} ${t('vm-agent.key')} root@${config.vm.address}:${VM_TLS_DIR}/`,
    `       scp dist/apps/vm-agent/vm-agent.js root@${config.vm.address}:/root/`,
    `  2. On the VM (its WireGuard config in ${VM_WG_CONFIG}):`,
    `       sudo node /root/vm-agent.js install --listen ${vmListen} --tls-dir ${VM_TLS_DIR} --wg-config ${VM_WG_CONFIG}`,
    `  3. On this Mac (launchd runs node and the agent as root from boot: both go where only root can change them — not a home folder, not Homebrew's prefix):`,
    `       sudo install -d -m 0755 ${agentDir} && sudo install -m 0644 dist/apps/mac-agent/mac-agent.js ${agentDir}/`,
    `       sudo install -m 0755 NODE_DIR/bin/node ${agentDir}/node`,
    `         (NODE_DIR: the nodejs.org macOS build, node-vVERSION-darwin-arm64 or -x64, which loads only macOS's own libraries;`,
    `          Homebrew's node loads libuv, OpenSSL, ICU from Homebrew's user-owned prefix, so install refuses it)`,
    `       sudo install -d -m 0700 ${quote(MAC_TLS_DIR)} && sudo install -m 0644 ${t('ca.crt')} ${t('mac-agent.crt')} ${quote(MAC_TLS_DIR)}/`,
    `       sudo install -m 0600 ${t('mac-agent.key')} ${quote(MAC_TLS_DIR)}/   (root-owned: the agent refuses files its user could change)`,
    `       sudo ${quote(`${MAC_AGENT_DIR}/node`)} ${quote(`${MAC_AGENT_DIR}/mac-agent.js`)} install --listen ${config.mac.agent} --tls-dir ${quote(MAC_TLS_DIR)}`,
    `  4. Check, look, go:${isDefaultConfig ? '' : ` export WGCTL_CONFIG=${quote(configFile)}`}`,
    `       wgctl health && wgctl plan && wgctl up && wgctl verify`,
    `  Monitoring hosts get only ${t('ca.crt')}, ${t('monitor.crt')} and ${t('monitor.key')} (for \`wgctl health\`, grpc_health_probe, and Prometheus scraping an agent's --metrics-listen).`,
  ];
  if (rotated) lines.splice(1, 0, 'The agents keep using the old certificates until you copy the new ones and restart them.');
  return `${lines.join('\n')}\n`;
}

async function rotate(ctx: CommandContext, flags: InitFlags, configFile: string): Promise<number> {
  const given = (['vmAddress', 'vmAddress6', 'vmPort', 'macAgent', 'dns', 'exclude', 'allowLan', 'portalProbeUrl', 'ipv6', 'handshakeTimeout'] as const).filter((k) => flags[k] !== undefined);
  if (given.length > 0) {
    throw new UsageError(`--rotate renews certificates only; drop ${given.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} (or use --force to rewrite the config)`);
  }
  let config: WgctlConfig;
  try {
    config = loadConfig(configFile);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`--rotate needs an existing config: ${error.message}`);
    throw error;
  }
  const vmAddresses = isIpAddress(config.vm.address) ? [config.vm.address] : [];
  try {
    const result = await createPki(config.tlsDir, { rotate: true, rotateCa: flags.rotateCa, vmAddresses, macAgentAddresses: macAgentIps(config.mac.agent) });
    ctx.io.stdout.write(
      `Renewed ${result.files.filter((f) => f.endsWith('.crt')).length} certificates in ${config.tlsDir}${result.newCa ? ' under a NEW CA' : ' (same CA)'}.\n`,
    );
  } catch (error) {
    throw new UsageError(`cannot rotate the PKI in ${config.tlsDir}: ${(error as Error).message}`);
  }
  ctx.io.stdout.write(nextSteps(config, configFile, config.tlsDir, !ctx.global.config && !ctx.io.env.WGCTL_CONFIG && !flags.dir, true));
  return EXIT.ok;
}

export async function initCommand(ctx: CommandContext, flags: InitFlags): Promise<number> {
  const { configFile, dir, tlsDir } = locations(ctx, flags);
  if (flags.rotate) return rotate(ctx, flags, configFile);

  const problems = validateFlags(flags);
  if (problems.length > 0) throw new UsageError(problems.join('\n       '));

  const tlsRelative = relative(dirname(configFile), tlsDir);
  const candidate = {
    version: 1,
    vm: { address: flags.vmAddress!, ...(flags.vmAddress6 ? { address6: flags.vmAddress6 } : {}), port: flags.vmPort ?? DEFAULT_VM_AGENT_PORT },
    mac: { agent: flags.macAgent ?? DEFAULT_MAC_AGENT },
    tlsDir: tlsRelative && !tlsRelative.startsWith('..') ? tlsRelative : tlsDir,
    ...(flags.dns && flags.dns.length > 0 ? { dns: flags.dns } : {}),
    ...(flags.handshakeTimeout !== undefined ? { handshakeTimeoutMs: Math.round(flags.handshakeTimeout * 1000) } : {}),
    ...(flags.ipv6 ? { ipv6: flags.ipv6 } : {}),
    ...(flags.exclude && flags.exclude.length > 0 ? { exclude: flags.exclude } : {}),
    ...(flags.allowLan ? { allowLan: true } : {}),
    ...(flags.portalProbeUrl !== undefined ? { portal: { probeUrl: flags.portalProbeUrl } } : {}),
  };
  let config: WgctlConfig;
  try {
    config = parseWgctlConfig(candidate);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UsageError(error.problems.map((p) => `${flagFor(p.path)}: ${p.message}`).join('\n       ') || error.message);
    }
    throw error;
  }

  if (existsSync(configFile) && !flags.force) {
    throw new UsageError(`${configFile} already exists: pass --force to overwrite it, or --rotate to renew the certificates only`);
  }
  const pkiExists = existsSync(join(tlsDir, 'ca.crt'));
  if (pkiExists && !flags.force) {
    throw new UsageError(`a PKI already exists in ${tlsDir}: pass --force to reuse its CA, or --rotate to renew it`);
  }

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // With --force over an existing PKI the CA stays (agents keep trusting it) and every
  // certificate is reissued, so the SANs match the new addresses.
  const pki = await createPki(tlsDir, {
    vmAddresses: [config.vm.address],
    macAgentAddresses: macAgentIps(config.mac.agent),
    rotate: pkiExists,
  });
  writeConfigAtomically(configFile, config);
  loadConfig(configFile); // what we wrote must load: same validation as every later command

  if (ctx.global.json) {
    ctx.io.stdout.write(`${JSON.stringify({ command: 'init', config: configFile, tlsDir, newCa: pki.newCa, files: pki.files }, null, 2)}\n`);
    return EXIT.ok;
  }
  ctx.io.stdout.write(
    `Wrote ${configFile} (mode 0600) and ${pki.newCa ? 'a new' : 'renewed certificates of the existing'} PKI in ${tlsDir}:\n` +
      `  CA (ca.crt, ca.key) and certificates for controller, vm-agent (DNS:vm-agent, IP:${config.vm.address}), mac-agent, monitor; keys 0600.\n`,
  );
  ctx.io.stdout.write(nextSteps(config, configFile, tlsDir, !ctx.global.config && !ctx.io.env.WGCTL_CONFIG && !flags.dir, false));
  return EXIT.ok;
}
