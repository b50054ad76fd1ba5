/**
 * `wgctl debug parse KIND FILE|-`: runs one of @wgctl/parsers on a saved command output and
 * prints the result as JSON. PARSERS is the one table: adding a kind is one line.
 * Bad input is a clear message on stderr and exit 2, never a stack trace. Private and
 * preshared keys never reach the output.
 */
import { readFileSync } from 'node:fs';
import * as parsers from '@wgctl/parsers';
import { redactAllKeys, secretValueRedactor } from '@wgctl/logging';
import type { CommandContext } from '../command-context';
import { EXIT, UsageError } from '../errors';

interface ParseKind {
  /** What to feed it (the command whose output this is). */
  input: string;
  parse: (text: string, now: Date) => unknown;
  /** Secrets present in the raw input that must not appear in the output. */
  secrets?: (text: string) => string[];
}

/** Private key (field 1) and preshared keys (peer field 2) of `wg show [all] dump`. */
function wgDumpSecrets(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length === 4 || f.length === 5) out.push(f[f.length - 4]!);
    else if (f.length === 8 || f.length === 9) out.push(f[f.length - 7]!);
  }
  return out.filter((k) => k && k !== '(none)');
}

function wgConfigSecrets(text: string): string[] {
  return [...text.matchAll(/^\s*(?:PrivateKey|PresharedKey)\s*=\s*(\S+)/gim)].map((m) => m[1]!);
}

function isAllDump(text: string): boolean {
  const first = text.split('\n', 1)[0] ?? '';
  return first.split('\t').length === 5;
}

export const PARSERS: Record<string, ParseKind> = {
  // macOS
  netstat: { input: 'netstat -rn [-f inet|inet6]', parse: (t) => parsers.parseNetstatRoutes(t) },
  'route-get': { input: 'route -n get DEST', parse: (t) => parsers.parseRouteGet(t) },
  'route-monitor': { input: 'route -n monitor (saved lines)', parse: (t) => parsers.parseRouteMonitor(t) },
  'pf-rules': { input: 'pfctl [-a ANCHOR] -s rules', parse: (t) => parsers.parsePfRules(t) },
  'pf-info': { input: 'pfctl -s info', parse: (t, now) => parsers.parsePfInfo(t, now) },
  'pf-anchors': { input: 'pfctl -s Anchors', parse: (t) => parsers.parsePfAnchors(t) },
  'pf-references': { input: 'pfctl -s References', parse: (t) => parsers.parsePfReferences(t) },
  'pf-enable': { input: 'pfctl -E (its stderr)', parse: (t) => parsers.parsePfEnableOutput(t) },
  'networksetup-dns': { input: 'networksetup -getdnsservers SERVICE', parse: (t) => parsers.parseDnsServers(t) },
  'networksetup-search': { input: 'networksetup -getsearchdomains SERVICE', parse: (t) => parsers.parseSearchDomains(t) },
  'networksetup-services': { input: 'networksetup -listallnetworkservices', parse: (t) => parsers.parseNetworkServices(t) },
  'networksetup-routes': { input: 'networksetup -getadditionalroutes SERVICE', parse: (t) => parsers.parseAdditionalRoutes(t) },
  ifconfig: { input: 'ifconfig [-a]', parse: (t) => parsers.parseIfconfig(t) },
  'scutil-nwi': { input: 'scutil --nwi', parse: (t) => parsers.parseScutilNwi(t) },
  // WireGuard
  'wg-dump': {
    input: 'wg show IF dump, or wg show all dump',
    parse: (t) => (isAllDump(t) ? parsers.parseWgDumpAll(t) : parsers.parseWgDump(t)),
    secrets: wgDumpSecrets,
  },
  'wg-handshakes': { input: 'wg show IF latest-handshakes', parse: (t) => parsers.parseWgLatestHandshakes(t) },
  'wg-transfer': { input: 'wg show IF transfer', parse: (t) => parsers.parseWgTransfer(t) },
  'wg-config': { input: 'a wg-quick config (/etc/wireguard/IF.conf)', parse: (t) => parsers.parseWgQuickConfig(t), secrets: wgConfigSecrets },
  // Linux
  'iptables-save': { input: 'iptables-save', parse: (t) => parsers.parseIptablesSave(t) },
  iptables: { input: 'iptables [-t TABLE] -S [CHAIN]', parse: (t) => parsers.parseIptablesRules(t) },
  'iptables-version': { input: 'iptables --version', parse: (t) => parsers.parseIptablesVersion(t) },
  'ip-route': { input: 'ip -j route show', parse: (t) => parsers.parseIpRouteJson(t) },
  'ip-addr': { input: 'ip -j addr show', parse: (t) => parsers.parseIpAddrJson(t) },
  'ip-monitor': { input: 'ip monitor (saved lines)', parse: (t) => parsers.parseIpMonitorLines(t) },
  nft: { input: 'nft -j list ruleset', parse: (t) => parsers.parseNftJson(t) },
  'resolv-conf': { input: '/etc/resolv.conf', parse: (t) => parsers.parseResolvConf(t) },
  resolvectl: { input: 'resolvectl status', parse: (t) => parsers.parseResolvectlScopes(t) },
  tcpdump: { input: 'tcpdump -nn -l (saved lines)', parse: (t) => parsers.parseTcpdumpOutput(t) },
};

export function kindsHelp(): string {
  const names = Object.keys(PARSERS);
  const width = Math.max(...names.map((n) => n.length));
  return ['Kinds:', ...names.map((n) => `  ${n.padEnd(width)}  ${PARSERS[n]!.input}`)].join('\n');
}

/** Maps and Sets become plain JSON; bigint becomes a string. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function readInput(ctx: CommandContext, file: string): Promise<string> {
  if (file !== '-') {
    try {
      return Promise.resolve(readFileSync(file, 'utf8'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
      throw new UsageError(`debug parse: cannot read ${file}: ${why}`);
    }
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    ctx.io.stdin.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    ctx.io.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    ctx.io.stdin.on('error', (e) => reject(new UsageError(`debug parse: cannot read stdin: ${e.message}`)));
  });
}

export async function debugParseCommand(ctx: CommandContext, _flags: unknown, kind: string, file: string): Promise<number> {
  const entry = Object.hasOwn(PARSERS, kind) ? PARSERS[kind] : undefined;
  if (!entry) throw new UsageError(`debug parse: unknown kind "${kind}"; one of: ${Object.keys(PARSERS).join(', ')}`);
  const text = await readInput(ctx, file);
  let parsed: unknown;
  try {
    parsed = entry.parse(text, new Date());
  } catch (error) {
    // ParseError messages name the kind and line; anything else is still the input's fault
    // from the user's point of view (and a parser bug to report), never a stack trace.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`debug parse ${kind}: ${file === '-' ? 'stdin' : file}: ${redactAllKeys(message)}`);
  }
  const json = JSON.stringify(parsed === undefined ? null : parsed, jsonReplacer, 2);
  // One pass over the output for all the keys (a pass per key was quadratic in the peers).
  const redact = secretValueRedactor((entry.secrets?.(text) ?? []).filter((secret) => secret.length >= 8));
  ctx.io.stdout.write(`${redact(json)}\n`);
  return EXIT.ok;
}
