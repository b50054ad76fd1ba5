/**
 * WireGuard on the live system: link state, wg-quick up/down (directly, or through systemd
 * so that wireguard-go does not live in the agent's cgroup), `wg show`, the leftovers of a
 * crashed wg-quick, and the diagnosis of a handshake that does not come.
 *
 * Decisions are taken on exit codes and `ip -j` output, never on error text.
 */
import {
  parseIpAddrJson,
  parseIpRouteJson,
  parseWgDump,
  parseWgLatestHandshakes,
  parseWgTransfer,
  parseWgUapiHandshakes,
  type WgDumpInterface,
} from '@wgctl/parsers';
import { type Runner, readTogether } from '@wgctl/runner';
import { connect } from 'node:net';
import { join } from 'node:path';

export type InterfaceMethod = 'wg-quick' | 'systemd-unit' | 'systemd-run';

export interface LinkState {
  exists: boolean;
  /** Administratively up (flag UP). WireGuard links report operstate UNKNOWN: never use it. */
  up: boolean;
  flags: string[];
  mtu?: number;
  addresses: string[];
}

/** `ip -j addr show dev IF`: exit 0 = exists; exit 1 = no such device (ip's answer, not its text). */
export async function linkState(runner: Runner, ifname: string): Promise<LinkState> {
  const result = await runner.run(['ip', '-j', 'addr', 'show', 'dev', ifname], { readOnly: true, okExitCodes: [0, 1] });
  if (result.exitCode === 1) return { exists: false, up: false, flags: [], addresses: [] };
  const link = parseIpAddrJson(result.stdout).find((l) => l.ifname === ifname);
  if (!link) return { exists: false, up: false, flags: [], addresses: [] };
  return {
    exists: true,
    up: link.flags.includes('UP'),
    flags: link.flags,
    mtu: link.mtu,
    addresses: link.addresses.map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** The interface a packet to `address` would leave by (`ip -j route get`), or an unreachable reason. */
export async function routeGet(
  runner: Runner,
  address: string,
  options: { mark?: number; family?: 6 } = {},
): Promise<{ dev: string; gateway?: string } | { unreachable: string }> {
  const argv = options.family === 6 ? ['ip', '-j', '-6', 'route', 'get', address] : ['ip', '-j', 'route', 'get', address];
  if (options.mark) argv.push('mark', String(options.mark));
  const result = await runner.run(argv, { readOnly: true, allowFailure: true });
  if (result.exitCode !== 0) return { unreachable: `ip route get ${address}: exit code ${result.exitCode} (${result.stderr.trim()})` };
  const route = parseIpRouteJson(result.stdout)[0];
  if (!route?.dev) return { unreachable: `ip route get ${address}: no device in the answer` };
  return { dev: route.dev, gateway: route.gateway };
}

// ---------------------------------------------------------------------------------------------
// wg show

/** `wg show IF dump`, parsed: the private key and preshared keys stay inside the parser. */
export async function wgShowDump(runner: Runner, ifname: string): Promise<WgDumpInterface> {
  const result = await runner.run(['wg', 'show', ifname, 'dump'], { readOnly: true });
  return parseWgDump(result.stdout);
}

export async function wgLatestHandshakes(runner: Runner, ifname: string): Promise<Map<string, number>> {
  return parseWgLatestHandshakes((await runner.run(['wg', 'show', ifname, 'latest-handshakes'], { readOnly: true })).stdout);
}

/** Where wireguard-go keeps each interface's control socket, `IF.sock` (wireguard-tools' ipc-uapi-unix.h: the socket `wg` reads). */
export const WG_SOCKET_DIR = '/var/run/wireguard';

/** A UAPI answer that does not come in this long is given up (the daemon answers in ~1 ms). */
const UAPI_TIMEOUT_MS = 1_000;

/**
 * `wg show IF latest-handshakes` for an interface wireguard-go serves, from its control socket
 * (a UAPI `get=1`, what `wg` itself sends) rather than a process: ~0.5 ms against ~5 ms here
 * (the agent's fork, then `wg`). Undefined when there is no such socket (the kernel module, which
 * `wg` reads over netlink) or its answer is not usable: the caller runs `wg show` then. The
 * answer holds the private key: it is parsed at once and only public keys and times are kept.
 */
export function uapiLatestHandshakes(socketDir: string, ifname: string): Promise<Map<string, number> | undefined> {
  return new Promise((resolve) => {
    let answer = '';
    let settled = false;
    const finish = (value: Map<string, number> | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const socket = connect(join(socketDir, `${ifname}.sock`));
    const timer = setTimeout(() => finish(undefined), UAPI_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('error', () => finish(undefined));
    socket.on('data', (chunk: string) => {
      answer += chunk;
      // The end of the answer, looked for in its tail only (a large answer comes in many chunks).
      if (!/(^|\n)errno=\d+\n\n$/.test(answer.slice(-32))) return;
      try {
        finish(parseWgUapiHandshakes(answer));
      } catch {
        finish(undefined);
      }
    });
    socket.on('end', () => finish(undefined));
    socket.write('get=1\n\n');
  });
}

export async function wgTransfer(runner: Runner, ifname: string): Promise<Map<string, { rxBytes: string; txBytes: string }>> {
  return parseWgTransfer((await runner.run(['wg', 'show', ifname, 'transfer'], { readOnly: true })).stdout);
}

/** `wg show IF fwmark` → number (0 = off). */
export async function wgFwmark(runner: Runner, ifname: string): Promise<number> {
  const text = (await runner.run(['wg', 'show', ifname, 'fwmark'], { readOnly: true })).stdout.trim();
  if (text === 'off' || text === '') return 0;
  return text.startsWith('0x') ? Number.parseInt(text.slice(2), 16) : Number(text);
}

// ---------------------------------------------------------------------------------------------
// wg-quick up/down

function transientUnitName(ifname: string): string {
  return `wgctl-wg-quick-${ifname.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

/** The systemd flavour for a config: wg-quick@IF when the file is where that unit looks for it. */
export function systemdMethodFor(configPath: string, ifname: string): InterfaceMethod {
  return configPath === `/etc/wireguard/${ifname}.conf` ? 'systemd-unit' : 'systemd-run';
}

export function upArgv(method: InterfaceMethod, configPath: string, ifname: string): string[] {
  switch (method) {
    case 'wg-quick':
      return ['wg-quick', 'up', configPath];
    case 'systemd-unit':
      return ['systemctl', 'start', `wg-quick@${ifname}.service`];
    case 'systemd-run':
      // A transient oneshot unit owns wireguard-go's cgroup, not the agent's service.
      return [
        'systemd-run',
        `--unit=${transientUnitName(ifname)}`,
        '--service-type=oneshot',
        '--property=RemainAfterExit=yes',
        '--collect',
        'wg-quick',
        'up',
        configPath,
      ];
  }
}

/** Commands that take the interface down again, in order. */
export function downArgvs(method: InterfaceMethod, configPath: string, ifname: string): string[][] {
  switch (method) {
    case 'wg-quick':
      return [['wg-quick', 'down', configPath]];
    case 'systemd-unit':
      return [['systemctl', 'stop', `wg-quick@${ifname}.service`]];
    case 'systemd-run':
      // wg-quick down first (routes, rules, DNS), then the unit (which would otherwise just kill wireguard-go).
      return [
        ['wg-quick', 'down', configPath],
        ['systemctl', 'stop', `${transientUnitName(ifname)}.service`],
      ];
  }
}

// ---------------------------------------------------------------------------------------------
// Leftovers of a wg-quick that died half-way (only looked at while the interface is absent)

interface IpRuleEntry {
  priority?: number;
  not?: null;
  fwmark?: string;
  table?: string;
  suppress_prefixlen?: number;
}

function parseIpRules(text: string): IpRuleEntry[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const data: unknown = JSON.parse(trimmed);
  if (!Array.isArray(data)) throw new Error('ip -j rule show: expected a JSON array');
  return data as IpRuleEntry[];
}

/** The routing table wg-quick uses for a full-tunnel config (Table=N, else its default 51820). */
export function wgQuickTable(table: string | undefined): number | undefined {
  if (table === undefined || table === 'auto') return 51820;
  if (/^[0-9]+$/.test(table)) return Number(table);
  return undefined; // off / a named table: wg-quick adds no policy rules
}

/** What `readWgQuickLeftovers` found; `removeWgQuickLeftovers` removes it. */
export interface WgQuickLeftovers {
  ifname: string;
  table: number | undefined;
  /** nft tables named `wg-quick-IF` (family, name). */
  nftTables: { family: string; name: string }[];
  /** `nft` is installed: wg-quick uses it for its own rules, else `iptables-restore` (which takes the xtables lock). */
  nftInstalled: boolean;
  /** `ip -j rule show` per family (empty when wg-quick adds no policy rules for this config). */
  rules: { family: '-4' | '-6'; rules: IpRuleEntry[] }[];
}

/**
 * The reads that find what a crashed wg-quick left behind for `ifname`, side by side:
 * `nft list tables` and, for a full-tunnel table, `ip -j -4/-6 rule show` (started in that
 * order). Changes nothing.
 */
export async function readWgQuickLeftovers(runner: Runner, ifname: string, table: number | undefined): Promise<WgQuickLeftovers> {
  const families = table === undefined ? [] : (['-4', '-6'] as const);
  const [tables, ...ruleTexts] = await readTogether([
    runner.run(['nft', 'list', 'tables'], { readOnly: true, allowFailure: true }),
    ...families.map((family) => runner.run(['ip', '-j', family, 'rule', 'show'], { readOnly: true })),
  ]);
  const nftTables: WgQuickLeftovers['nftTables'] = [];
  if (tables.exitCode === 0) {
    for (const line of tables.stdout.split('\n')) {
      const m = /^table (ip6?|inet) (\S+)$/.exec(line.trim());
      if (m && m[2] === `wg-quick-${ifname}`) nftTables.push({ family: m[1], name: m[2] });
    }
  }
  const rules = families.map((family, i) => ({ family, rules: parseIpRules(ruleTexts[i].stdout) }));
  return { ifname, table, nftTables, nftInstalled: tables.exitCode !== 127, rules };
}

/**
 * Removes what `readWgQuickLeftovers` found, one command after the other: the nft table
 * `wg-quick-IF`, then per family the policy rules `not fwmark T lookup T` and `lookup main
 * suppress_prefixlength 0` — the latter only when no other full-tunnel rule remains. A rule
 * whose table still has routes belongs to a live tunnel and is left alone. Returns one line
 * per removal.
 */
export async function removeWgQuickLeftovers(runner: Runner, found: WgQuickLeftovers): Promise<string[]> {
  const removed: string[] = [];
  for (const { family, name } of found.nftTables) {
    await runner.run(['nft', 'delete', 'table', family, name]);
    removed.push(`nft table ${family} ${name}`);
  }
  const { table } = found;
  if (table === undefined) return removed;
  for (const { family, rules } of found.rules) {
    const mark = `0x${table.toString(16)}`;
    const markRules = rules.filter((r) => 'not' in r && r.fwmark === mark && r.table === String(table));
    if (markRules.length > 0) {
      const routes = await runner.run(['ip', family, 'route', 'show', 'table', String(table)], { readOnly: true, allowFailure: true });
      if (routes.stdout.trim() !== '') continue; // a live tunnel uses this table
      for (const r of markRules) {
        await runner.run(['ip', family, 'rule', 'delete', 'priority', String(r.priority), 'not', 'fwmark', mark, 'table', String(table)]);
        removed.push(`ip ${family} rule ${r.priority}: not fwmark ${mark} lookup ${table}`);
      }
    }
    const otherMarkRules = rules.filter((r) => 'not' in r && r.fwmark !== undefined && !markRules.includes(r));
    if (markRules.length > 0 && otherMarkRules.length === 0) {
      for (const r of rules.filter((x) => x.table === 'main' && x.suppress_prefixlen === 0)) {
        await runner.run(['ip', family, 'rule', 'delete', 'priority', String(r.priority), 'table', 'main', 'suppress_prefixlength', '0']);
        removed.push(`ip ${family} rule ${r.priority}: lookup main suppress_prefixlength 0`);
      }
    }
  }
  return removed;
}

/** Finds (reads side by side) and removes (in order) what a crashed wg-quick left for `ifname`. */
export async function cleanWgQuickLeftovers(runner: Runner, ifname: string, table: number | undefined): Promise<string[]> {
  return removeWgQuickLeftovers(runner, await readWgQuickLeftovers(runner, ifname, table));
}
