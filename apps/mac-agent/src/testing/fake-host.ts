/**
 * An in-memory host for engine unit tests: a routing table, a kill switch and DNS that the
 * FakeDriver changes, with a call log and fault injection. No commands run (the runner it is
 * handed is ignored), so these tests are fast and need no privileges.
 */
import type { Runner } from '@wgctl/runner';
import type { ConcurrencyGate } from './concurrency-gate';
import type {
  DnsContext,
  DnsSnapshot,
  HostNetworkDriver,
  KillSwitchHandle,
  KillSwitchPolicy,
  KillSwitchStatus,
  RouteChange,
  RouteReadback,
  RouteSpec,
  Uplink,
  UplinkOptions,
  Vnic,
} from '../host/driver';

export interface FakeHostState {
  uplink: Uplink | null;
  vnic: Vnic;
  routes: RouteSpec[];
  killSwitch: KillSwitchPolicy | null;
  dns: string[];
  /** The uplink's DHCP lease server; when set, the driver reads it like the darwin one. */
  leaseServer?: string;
}

/** As the real drivers match: a wanted route without an interface matches it on any. */
const same = (route: RouteSpec, wanted: RouteSpec) =>
  route.destination === wanted.destination && route.gateway === wanted.gateway && (wanted.interface === undefined || (route.interface ?? '') === wanted.interface);

export class FakeDriver implements HostNetworkDriver {
  readonly name = 'linux' as const;
  readonly calls: string[] = [];
  /** Method name (or `addRoute:<destination>`) → error to throw on its next call. */
  readonly failures = new Map<string, string>();

  /** Optional: reads wait here after being logged (tests of concurrency, see ConcurrencyGate). */
  gate?: ConcurrencyGate;

  constructor(readonly host: FakeHostState) {}

  private async read(call: string): Promise<void> {
    this.enter(call);
    await this.gate?.pass(call);
  }

  private enter(call: string, key = call.split(' ')[0]): void {
    this.calls.push(call);
    const failure = this.failures.get(key) ?? this.failures.get(call);
    if (failure) {
      this.failures.delete(key);
      this.failures.delete(call);
      throw new Error(failure);
    }
  }

  async discoverUplink(_run: Runner, _options?: UplinkOptions): Promise<Uplink | null> {
    await this.read('discoverUplink');
    return this.host.uplink ? { ...this.host.uplink } : null;
  }

  async discoverVnic(_run: Runner, vmAddress: string): Promise<Vnic> {
    await this.read(`discoverVnic ${vmAddress}`);
    return { ...this.host.vnic };
  }

  async readRoutes(_run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
    await this.read('readRoutes');
    return wanted.map((w) => {
      const present = this.host.routes.some((r) => same(r, w));
      return { ...w, present, evidence: present ? `${w.destination} via ${w.gateway} dev ${w.interface ?? '?'}` : '' };
    });
  }

  async addRoute(_run: Runner, route: RouteSpec): Promise<void> {
    this.enter(`addRoute ${route.destination} via ${route.gateway}`, `addRoute:${route.destination}`);
    if (this.host.routes.some((r) => r.destination === route.destination && !same(r, route))) throw new Error(`a different route to ${route.destination} is in the way`);
    if (!this.host.routes.some((r) => same(r, route))) this.host.routes.push({ ...route });
  }

  async deleteRoute(_run: Runner, route: RouteSpec): Promise<void> {
    this.enter(`deleteRoute ${route.destination} via ${route.gateway}`);
    if (route.destination === '0.0.0.0/0') throw new Error('refusing to delete a default route');
    this.host.routes = this.host.routes.filter((r) => !same(r, route));
  }

  renderKillSwitch(policy: KillSwitchPolicy): string {
    return `block on ${policy.uplink} except ${policy.endpoints.map((e) => `${e.ip}:${e.port}`).join(',')}`;
  }

  async loadKillSwitch(_run: Runner, policy: KillSwitchPolicy): Promise<KillSwitchHandle> {
    this.enter(`loadKillSwitch ${policy.uplink}`);
    this.host.killSwitch = JSON.parse(JSON.stringify(policy)) as KillSwitchPolicy;
    return { nftTable: 'inet fake' };
  }

  async readDhcpServer(_run: Runner, _uplink: string): Promise<string | undefined> {
    if (this.host.leaseServer === undefined) return undefined;
    await this.read('readDhcpServer');
    return this.host.leaseServer;
  }

  async unloadKillSwitch(): Promise<void> {
    this.enter('unloadKillSwitch');
    this.host.killSwitch = null;
  }

  async readKillSwitch(_run: Runner, policy?: KillSwitchPolicy): Promise<KillSwitchStatus> {
    await this.read('readKillSwitch');
    const live = this.host.killSwitch;
    const problems: string[] = [];
    if (policy && !live) problems.push('not loaded');
    if (policy && live && JSON.stringify(live) !== JSON.stringify(policy)) problems.push(`loaded for ${live.uplink}, wanted ${policy.uplink}`);
    return {
      loaded: live !== null,
      enabled: live !== null,
      referenced: live !== null,
      tokenHeld: live !== null,
      interface: live?.uplink,
      rules: live ? [this.renderKillSwitch(live)] : [],
      problems,
    };
  }

  async readDns(_run: Runner, _context?: DnsContext): Promise<DnsSnapshot> {
    this.enter('readDns');
    return { services: [{ name: 'fake', servers: [...this.host.dns] }] };
  }

  async setDns(_run: Runner, servers: string[]): Promise<void> {
    this.enter(`setDns ${servers.join(' ')}`, 'setDns');
    this.host.dns = [...servers];
  }

  async restoreDns(_run: Runner, snapshot: DnsSnapshot): Promise<void> {
    this.enter('restoreDns');
    this.host.dns = [...(snapshot.services[0]?.servers ?? [])];
  }

  monitorArgv(): string[] {
    return ['fake-monitor'];
  }

  /** Lines: `default <gw> <dev>`, `deleted <dst>`, `added <dst>`, `link <dev>`, anything else = other. */
  classifyMonitorEvent(block: string): RouteChange {
    const [word, dst] = block.split(' ');
    if (word === 'default') return { kind: 'default-changed', line: block, destination: '0.0.0.0/0' };
    if (word === 'link') return { kind: 'link-changed', line: block };
    if (word === 'deleted') return { kind: 'other', line: block, destination: dst, deleted: true };
    if (word === 'added') return { kind: 'other', line: block, destination: dst, deleted: false };
    return { kind: 'other', line: block };
  }
}

export function fakeHost(): FakeHostState {
  return {
    uplink: { interface: 'en0', gateway: '192.0.2.1', address: '192.0.2.2' },
    vnic: { interface: 'bridge100', address: '192.0.2.129' },
    routes: [{ destination: '0.0.0.0/0', gateway: '192.0.2.1', interface: 'en0' }],
    killSwitch: null,
    dns: ['192.0.2.1'],
  };
}
