/**
 * A Mac in memory that answers the DarwinDriver's commands the way macOS prints them: a routing
 * table (netstat -rn, route add/delete), PF (pfctl: info, References, the main ruleset, our
 * anchor, -E/-X tokens, -f/-F), ifconfig and networksetup — with state, so that tests can
 * change the Mac behind the agent's back (`pfctl -d`, a flushed anchor, a deleted route) and
 * see what the agent does about it, whatever exact commands it issues. Outputs are the layouts
 * of the captures in libs/parsers/src/darwin/__fixtures__ (macOS 14+ netstat columns, pfctl's
 * ALTQ chatter on stderr), with documentation addresses:
 *   Wi-Fi en0 192.0.2.10/24 via 192.0.2.1, the VM 198.51.100.5 on bridge100 (198.51.100.1/24).
 *
 * PF verdicts come from the PF evaluator (pf-evaluator.ts) over the rules as pfctl prints them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizePfRuleset } from '@wgctl/parsers';
import type { RunOptions, RunResult, Runner } from '@wgctl/runner';
import { evaluatePf, type PfPacket, type PfVerdict } from './pf-evaluator';

const FIXTURES = join(__dirname, '../../../../libs/parsers/src/darwin/__fixtures__');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const ALTQ = 'No ALTQ support in kernel\nALTQ related functions disabled\n';
const PF_INFO_ENABLED = fixture('pfctl-s-info-enabled-macos26-capture.txt');
const PF_INFO_DISABLED = fixture('pfctl-s-info-disabled-macos26-capture.txt');
/** The stock main ruleset (/etc/pf.conf) as `pfctl -sr` prints it. */
const MAIN_STOCK = fixture('pfctl-s-rules-main-default-apple-stackexchange-221058.txt').replace(ALTQ, '');

const row = (destination: string, gateway: string, flags: string, netif: string, expire = ''): string =>
  `${destination.padEnd(18)} ${gateway.padEnd(18)} ${flags.padEnd(10)} ${netif.padStart(14)} ${expire.padStart(6)}`;

/** The Wi-Fi network's own rows (the default and our routes are added from state). */
const LINK_ROWS = [
  row('127', '127.0.0.1', 'UCS', 'lo0'),
  row('127.0.0.1', '127.0.0.1', 'UH', 'lo0'),
  row('192.0.2', 'link#11', 'UCS', 'en0', '!'),
  row('192.0.2.1', '0:0:5e:0:1:1', 'UHLWIir', 'en0', '1197'),
  row('192.0.2.10/32', 'link#11', 'UCS', 'en0', '!'),
  row('198.51.100', 'link#22', 'UC', 'bridge100', '!'),
  row('198.51.100.5', '0:1c:42:8a:1f:e', 'UHLWI', 'bridge100', '1178'),
];

const IFCONFIG: Record<string, string> = {
  lo0: 'lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n\tinet 127.0.0.1 netmask 0xff000000\n\tinet6 ::1 prefixlen 128 \n',
  en0: [
    'en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
    '\tether a4:83:e7:12:34:56',
    '\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255',
    '\tstatus: active',
    '',
  ].join('\n'),
  bridge100: [
    'bridge100: flags=8a63<UP,BROADCAST,SMART,RUNNING,ALLMULTI,SIMPLEX,MULTICAST> mtu 1500',
    '\tether 3e:22:fb:8a:1f:64',
    '\tinet 198.51.100.1 netmask 0xffffff00 broadcast 198.51.100.255',
    '\tstatus: active',
    '',
  ].join('\n'),
};

export interface FakeMacRoute {
  destination: string; // CIDR or `default`
  gateway: string;
}

/** How netstat prints a destination: `0/1`, `128.0/1`, a host without its /32. */
function netstatDestination(cidr: string): string {
  if (cidr === '0.0.0.0/1') return '0/1';
  if (cidr === '128.0.0.0/1') return '128.0/1';
  return cidr.replace(/\/32$/, '');
}

export class FakeMac implements Runner {
  routes: FakeMacRoute[] = [{ destination: 'default', gateway: '192.0.2.1' }];
  pfEnabled = false;
  /** Tokens of `pfctl -E`, in order. */
  tokens: string[] = [];
  /** Rules of our anchor as pfctl prints them (null: never created). */
  anchorRules: string[] | null = null;
  dns: string[] = [];
  /** `pfctl -n -a … -f FILE` rejects the file (a kill switch that cannot be loaded). */
  refuseLoads = false;
  files = new Map<string, string>();
  /** Every command run, as argv. */
  readonly commands: string[][] = [];
  /** A command matching `match` waits for `until` before it is answered (an operation caught mid-way). */
  hold?: { match: (argv: readonly string[]) => boolean; until: Promise<void> };
  private nextToken = 11012949885072952621n;

  constructor(readonly anchor = 'com.apple/000.wgctl') {}

  // ---------------------------------------------------------- what someone else does

  /** `pfctl -d`: PF stopped, every token freed (xnu DIOCSTOP: invalidate_all_tokens). */
  disablePf(): void {
    this.pfEnabled = false;
    this.tokens = [];
  }

  /** `pfctl -a ANCHOR -F all`. */
  flushAnchor(): void {
    this.anchorRules = [];
  }

  deleteRoute(destination: string): void {
    this.routes = this.routes.filter((r) => r.destination !== destination);
  }

  /** The PF verdict on a packet now: PF off passes everything. */
  verdict(packet: PfPacket): PfVerdict {
    if (!this.pfEnabled) return { action: 'pass', decidedBy: 'default', stateCreated: false };
    return evaluatePf({ '': normalizePfRuleset(MAIN_STOCK), [this.anchor]: this.anchorRules ?? [] }, packet);
  }

  // ------------------------------------------------------------------------ commands

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.commands.push([...argv]);
    const hold = this.hold;
    if (hold?.match(argv)) {
      this.hold = undefined;
      await hold.until;
    }
    const out = this.answer([...argv], options.input);
    const result: RunResult = { argv: [...argv], stdout: out.stdout ?? '', stderr: out.stderr ?? '', exitCode: out.exitCode ?? 0, signal: null, timedOut: false, durationMs: 1, dryRun: false };
    if (result.exitCode !== 0 && !options.allowFailure) throw new Error(`fake Mac: ${argv.join(' ')} exited ${result.exitCode}: ${result.stderr}`);
    return result;
  }

  private answer(argv: string[], input?: string): { stdout?: string; stderr?: string; exitCode?: number } {
    const [command, ...args] = argv;
    switch (command) {
      case 'netstat':
        return { stdout: this.netstat() };
      case 'ifconfig':
        return { stdout: args[0] ? (IFCONFIG[args[0]] ?? '') : Object.values(IFCONFIG).join('') };
      case 'route':
        return this.route(args);
      case 'pfctl':
        return this.pfctl(args);
      case 'networksetup':
        return this.networksetup(args);
      case 'mkdir':
      case 'rm':
        return {};
      case 'tee':
        this.files.set(args[0], input ?? '');
        return {};
      default:
        return { exitCode: 127, stderr: `fake Mac: no ${command}\n` };
    }
  }

  private netstat(): string {
    const ours = this.routes.map((r) =>
      r.destination === 'default' ? row('default', r.gateway, 'UGScg', 'en0') : row(netstatDestination(r.destination), r.gateway, r.destination.endsWith('/32') ? 'UGHS' : 'UGSc', r.gateway.startsWith('198.51.100.') ? 'bridge100' : 'en0'),
    );
    return ['Routing tables', '', 'Internet:', row('Destination', 'Gateway', 'Flags', 'Netif', 'Expire'), ...ours, ...LINK_ROWS, '', 'Internet6:', '', ''].join('\n');
  }

  /** `route -q -n add|delete -inet [-host] DEST GATEWAY`: route's text on stdout, exit 0 even for kernel errors. */
  private route(args: string[]): { stdout?: string; stderr?: string } {
    const verb = args[2];
    const host = args[4] === '-host';
    const [destination, gateway] = host ? [`${args[5]}/32`, args[6]] : [args[4], args[5]];
    const shown = `${verb} ${host ? 'host' : 'net'} ${destination.replace(/\/(1|32)$/, '')}: gateway ${gateway}`;
    const exists = this.routes.some((r) => r.destination === destination);
    if (verb === 'add') {
      if (exists) return { stdout: `${shown}: File exists\n`, stderr: 'route: writing to routing socket: File exists\n' };
      this.routes.push({ destination, gateway });
      return { stdout: `${shown}\n` };
    }
    if (!exists) return { stdout: `${shown}: not in table\n`, stderr: 'route: writing to routing socket: not in table\n' };
    this.deleteRoute(destination);
    return { stdout: `${shown}\n` };
  }

  private pfctl(args: string[]): { stdout?: string; stderr?: string; exitCode?: number } {
    const words = args.join(' ');
    if (words === '-s info') return { stdout: this.pfEnabled ? PF_INFO_ENABLED : PF_INFO_DISABLED, stderr: ALTQ };
    if (words === '-s References') return { stdout: this.references(), stderr: ALTQ };
    if (words === '-sr') return { stdout: MAIN_STOCK, stderr: ALTQ };
    if (words === `-a ${this.anchor} -sr`) {
      if (this.anchorRules === null) return { exitCode: 1, stderr: `${ALTQ}pfctl: DIOCGETRULES: Invalid argument\n` };
      return { stdout: this.anchorRules.map((r) => `${r}\n`).join(''), stderr: ALTQ };
    }
    if (args[0] === '-n') return this.refuseLoads ? { exitCode: 1, stderr: `${ALTQ}${args[4]}:3: syntax error\n` } : { stderr: ALTQ };
    if (args[0] === '-a' && args[2] === '-f') {
      this.anchorRules = normalizePfRuleset(this.files.get(args[3]) ?? '');
      return { stderr: ALTQ };
    }
    if (args[0] === '-a' && words.endsWith('-F all')) {
      if (args[1] === this.anchor) this.flushAnchor();
      return { stderr: `${ALTQ}rules cleared\n` };
    }
    if (words === '-E') {
      const token = String(this.nextToken++);
      this.tokens.push(token);
      this.pfEnabled = true;
      return { stderr: `${ALTQ}pf enabled\nToken : ${token}\n` };
    }
    if (args[0] === '-X') {
      if (!this.pfEnabled) return { exitCode: 1, stderr: `${ALTQ}pfctl: pf not enabled\n` };
      if (!this.tokens.includes(args[1])) return { exitCode: 1, stderr: `${ALTQ}pfctl: pf: token invalid\n` };
      this.tokens = this.tokens.filter((t) => t !== args[1]);
      if (this.tokens.length === 0) this.pfEnabled = false;
      return { stderr: `${ALTQ}${this.pfEnabled ? 'disable request successful.' : 'pf disabled'}\n` };
    }
    if (args[0] === '-k') return { stderr: `${ALTQ}killed 0 states from 1 sources and 0 destinations\n` };
    return { exitCode: 1, stderr: `fake Mac: pfctl ${words} not modelled\n` };
  }

  private references(): string {
    if (this.tokens.length === 0) return 'No pf starter references held\n';
    const rows = this.tokens.map((t, i) => `${String(4251 + i).padEnd(8)} ${'pfctl'.padEnd(28)} ${t}     0 days 00:00:03`);
    return ['TOKENS:', 'PID      Process Name                 TOKEN                    TIMESTAMP', ...rows, ''].join('\n');
  }

  private networksetup(args: string[]): { stdout?: string } {
    switch (args[0]) {
      case '-listallnetworkservices':
        return { stdout: 'An asterisk (*) denotes that a network service is disabled.\nWi-Fi\n' };
      case '-getdnsservers':
        return { stdout: this.dns.length ? `${this.dns.join('\n')}\n` : `There aren't any DNS Servers set on ${args[1]}.\n` };
      case '-getsearchdomains':
        return { stdout: `There aren't any Search Domains set on ${args[1]}.\n` };
      case '-setdnsservers':
        this.dns = args[2] === 'Empty' ? [] : args.slice(2);
        return {};
      default:
        return {};
    }
  }
}
