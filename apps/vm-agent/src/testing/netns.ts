/**
 * A self-contained lab for the vm-agent's namespace tests: three network namespaces with the
 * agent's `wtv` prefix and documentation addresses only.
 *
 *   mac ns  ── wtv<id>m 198.51.100.2/24 ═ wtv<id>l 198.51.100.1/24 ──  vm ns  ── wtv<id>u 203.0.113.2/24 ═ wtv<id>v 203.0.113.1/24 ── srv ns
 *   (default via 198.51.100.1)                                          WireGuard wtv<id>c 192.0.2.2/24        WireGuard wtv<id>s 192.0.2.1/24 :51820
 *
 * The VM's wg-quick config is full-tunnel (AllowedIPs 0.0.0.0/0, like a real VPN client):
 * wg-quick adds its policy rules and nft table, which the agent must leave as it found them.
 * Every command goes through the runner (`ip netns exec NS …` via NetnsRunner).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner, spawnStreaming, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';
import { derivePublicKey } from '../host/config';

export const WG_USERSPACE_ENV = {
  WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go',
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1',
};

/** Runs every command inside a network namespace: argv is prefixed with `ip netns exec NS`. */
export class NetnsRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    readonly namespace: string,
  ) {}

  run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.inner.run(['ip', 'netns', 'exec', this.namespace, ...argv], options);
  }
}

/** Root (or CI, where the suite must not silently skip) is needed for namespaces. */
export function canUseNetns(): boolean {
  return process.getuid?.() === 0 || process.env.CI === 'true';
}

export interface WgKeyPair {
  privateKey: string;
  publicKey: string;
}

export function generateKeyPair(): WgKeyPair {
  const privateKey = randomBytes(32).toString('base64');
  return { privateKey, publicKey: derivePublicKey(privateKey) };
}

export interface LabOptions {
  /** PersistentKeepalive on the VM's server peer (0 = none). Default 25. */
  keepalive?: number;
  /** Bring the server's WireGuard up (false: an endpoint that never answers). Default true. */
  serverUp?: boolean;
  /** Name prefix of every netns, veth and WireGuard interface (3 characters). Default `wtv`. */
  prefix?: string;
  /**
   * IPv6 too (2001:db8:6::/48): Mac 2001:db8:6:1::2/64 on the vnic (default via the VM), VM
   * uplink 2001:db8:6:2::2/64, tunnel 2001:db8:6:64::2/64 ↔ 2001:db8:6:64::1/64, full tunnel
   * for both families (AllowedIPs 0.0.0.0/0, ::/0).
   */
  ipv6?: boolean;
}

export class VmLab {
  readonly id = randomBytes(2).toString('hex');
  readonly nsMac: string;
  readonly nsVm: string;
  readonly nsSrv: string;
  readonly wgVm: string;
  readonly wgSrv: string;
  readonly vethMac: string;
  readonly vethLan: string;
  readonly vethUp: string;
  readonly vethSrv: string;
  readonly macAddress = '198.51.100.2';
  readonly vmLanAddress = '198.51.100.1';
  readonly vmUplinkAddress = '203.0.113.2';
  readonly serverAddress = '203.0.113.1';
  readonly vmTunnelAddress = '192.0.2.2';
  readonly serverTunnelAddress = '192.0.2.1';
  readonly macAddress6 = '2001:db8:6:1::2';
  readonly vmLanAddress6 = '2001:db8:6:1::1';
  readonly vmUplinkAddress6 = '2001:db8:6:2::2';
  readonly serverAddress6 = '2001:db8:6:2::1';
  readonly vmTunnelAddress6 = '2001:db8:6:64::2';
  readonly serverTunnelAddress6 = '2001:db8:6:64::1';
  readonly dir: string;
  readonly vmConfigPath: string;
  readonly serverConfigPath: string;
  readonly stateDir: string;
  readonly vmKeys = generateKeyPair();
  readonly serverKeys = generateKeyPair();
  readonly host: Runner = new ExecRunner({ ...process.env, ...WG_USERSPACE_ENV });
  readonly vm: Runner;
  readonly mac: Runner;
  readonly srv: Runner;

  constructor(private readonly options: LabOptions = {}) {
    const p = options.prefix ?? 'wtv';
    this.nsMac = `${p}-${this.id}-mac`;
    this.nsVm = `${p}-${this.id}-vm`;
    this.nsSrv = `${p}-${this.id}-srv`;
    this.wgVm = `${p}${this.id}c`;
    this.wgSrv = `${p}${this.id}s`;
    this.vethMac = `${p}${this.id}m`;
    this.vethLan = `${p}${this.id}l`;
    this.vethUp = `${p}${this.id}u`;
    this.vethSrv = `${p}${this.id}v`;
    this.dir = mkdtempSync(join(tmpdir(), `${p}-lab-`));
    this.vmConfigPath = join(this.dir, `${this.wgVm}.conf`);
    this.serverConfigPath = join(this.dir, `${this.wgSrv}.conf`);
    this.stateDir = join(this.dir, 'state');
    this.vm = new NetnsRunner(this.host, this.nsVm);
    this.mac = new NetnsRunner(this.host, this.nsMac);
    this.srv = new NetnsRunner(this.host, this.nsSrv);
  }

  async create(): Promise<this> {
    const h = this.host;
    for (const ns of [this.nsMac, this.nsVm, this.nsSrv]) {
      await h.run(['ip', 'netns', 'add', ns]);
      await h.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await h.run(['ip', 'link', 'add', this.vethMac, 'netns', this.nsMac, 'type', 'veth', 'peer', 'name', this.vethLan, 'netns', this.nsVm]);
    await h.run(['ip', 'link', 'add', this.vethUp, 'netns', this.nsVm, 'type', 'veth', 'peer', 'name', this.vethSrv, 'netns', this.nsSrv]);
    const addr = async (ns: string, dev: string, cidr: string): Promise<void> => {
      await h.run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
      await h.run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    };
    await addr(this.nsMac, this.vethMac, `${this.macAddress}/24`);
    await addr(this.nsVm, this.vethLan, `${this.vmLanAddress}/24`);
    await addr(this.nsVm, this.vethUp, `${this.vmUplinkAddress}/24`);
    await addr(this.nsSrv, this.vethSrv, `${this.serverAddress}/24`);
    await h.run(['ip', '-n', this.nsMac, 'route', 'add', 'default', 'via', this.vmLanAddress]);
    if (this.options.ipv6) {
      // nodad: usable at once (no duplicate address detection wait).
      const addr6 = (ns: string, dev: string, cidr: string): Promise<unknown> => h.run(['ip', '-n', ns, '-6', 'addr', 'add', cidr, 'dev', dev, 'nodad']);
      await addr6(this.nsMac, this.vethMac, `${this.macAddress6}/64`);
      await addr6(this.nsVm, this.vethLan, `${this.vmLanAddress6}/64`);
      await addr6(this.nsVm, this.vethUp, `${this.vmUplinkAddress6}/64`);
      await addr6(this.nsSrv, this.vethSrv, `${this.serverAddress6}/64`);
      await h.run(['ip', '-n', this.nsMac, '-6', 'route', 'add', 'default', 'via', this.vmLanAddress6]);
    }
    this.writeConfigs();
    if (this.options.serverUp !== false) await this.serverUp();
    return this;
  }

  writeConfigs(overrides: { vmPeerExtra?: string } = {}): void {
    const keepalive = this.options.keepalive ?? 25;
    writeFileSync(
      this.vmConfigPath,
      [
        '[Interface]',
        `PrivateKey = ${this.vmKeys.privateKey}`,
        `Address = ${this.vmTunnelAddress}/24${this.options.ipv6 ? `, ${this.vmTunnelAddress6}/64` : ''}`,
        '',
        '[Peer]',
        `PublicKey = ${this.serverKeys.publicKey}`,
        `Endpoint = ${this.serverAddress}:51820`,
        `AllowedIPs = 0.0.0.0/0${this.options.ipv6 ? ', ::/0' : ''}`,
        ...(keepalive ? [`PersistentKeepalive = ${keepalive}`] : []),
        ...(overrides.vmPeerExtra ? [overrides.vmPeerExtra] : []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    writeFileSync(
      this.serverConfigPath,
      [
        '[Interface]',
        `PrivateKey = ${this.serverKeys.privateKey}`,
        'ListenPort = 51820',
        `Address = ${this.serverTunnelAddress}/24${this.options.ipv6 ? `, ${this.serverTunnelAddress6}/64` : ''}`,
        '',
        '[Peer]',
        `PublicKey = ${this.vmKeys.publicKey}`,
        `AllowedIPs = ${this.vmTunnelAddress}/32${this.options.ipv6 ? `, ${this.vmTunnelAddress6}/128` : ''}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  }

  async serverUp(): Promise<void> {
    await this.srv.run(['wg-quick', 'up', this.serverConfigPath]);
  }

  async serverDown(): Promise<void> {
    await this.srv.run(['wg-quick', 'down', this.serverConfigPath], { allowFailure: true });
  }

  /** iptables-save of the VM namespace without its timestamp comments (for before/after comparison). */
  async vmRuleset(): Promise<string> {
    const out = await this.vm.run(['iptables-save'], { readOnly: true });
    return out.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  }

  /** ip6tables-save of the VM namespace without its timestamp comments. */
  async vmRuleset6(): Promise<string> {
    const out = await this.vm.run(['ip6tables-save'], { readOnly: true });
    return out.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  }

  async vmIpRules(): Promise<string> {
    const v4 = await this.vm.run(['ip', '-4', 'rule', 'show']);
    const v6 = await this.vm.run(['ip', '-6', 'rule', 'show']);
    return `${v4.stdout}${v6.stdout}`;
  }

  async vmNftTables(): Promise<string> {
    return (await this.vm.run(['nft', 'list', 'tables'])).stdout;
  }

  async vmSysctl(name: string): Promise<string> {
    return (await this.vm.run(['sysctl', '-n', name])).stdout.trim();
  }

  async vmLinkExists(ifname: string): Promise<boolean> {
    const r = await this.vm.run(['ip', 'link', 'show', 'dev', ifname], { okExitCodes: [0, 1] });
    return r.exitCode === 0;
  }

  /**
   * tcpdump in a namespace while `during` runs: starts it, waits until it is listening (its
   * "listening on" line), runs `during`, then returns the packet lines it printed.
   */
  async capture(namespace: string, args: string[], during: () => Promise<void>): Promise<string[]> {
    const lines: string[] = [];
    let ready!: () => void;
    const listening = new Promise<void>((resolve) => (ready = resolve));
    const proc = spawnStreaming(['ip', 'netns', 'exec', namespace, 'tcpdump', '-nn', '-l', ...args], {
      onLine: (line) => lines.push(line),
      onStderrLine: (line) => {
        if (line.includes('listening on')) ready();
      },
    });
    const timeout = setTimeout(ready, 10_000);
    try {
      await listening;
      await during();
      await new Promise((r) => setTimeout(r, 300)); // last packets reach the buffer
    } finally {
      clearTimeout(timeout);
      await proc.stop(1000);
    }
    return lines;
  }

  /** ping from the Mac namespace; true when at least one reply came back. */
  async macPing(target: string, count = 3): Promise<boolean> {
    const r = await this.mac.run(['ping', '-n', ...(target.includes(':') ? ['-6'] : []), '-c', String(count), '-i', '0.2', '-W', '1', target], {
      allowFailure: true,
    });
    return r.exitCode === 0;
  }

  async destroy(): Promise<void> {
    // Deleting a wireguard-go link makes the daemon exit and remove its socket in /run/wireguard.
    await this.vm.run(['ip', 'link', 'del', this.wgVm], { allowFailure: true });
    await this.srv.run(['ip', 'link', 'del', this.wgSrv], { allowFailure: true });
    for (const ns of [this.nsMac, this.nsVm, this.nsSrv]) await this.host.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
