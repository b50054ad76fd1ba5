/** connect: both agents described side by side, protocol checked, the Mac's source and the IPv6 decision. */
import { type AppliedIpv6Mode, Ipv6Mode, type MacDescription, PROTOCOL_VERSION, type VmDescription } from '@wgctl/proto';
import { type MacAgentApi, SIDE_LABEL, type Side, type VmAgentApi } from '../agents';
import type { ProbeVerdict } from './portal-probe';
import { Sequencer, messageOf } from './steps';

export interface UpOptions {
  /** config vm.address: the VM's vnic address, next hop of the Mac's split routes. */
  vmAddress: string;
  /** config vm.address6: the VM's IPv6 on the vnic, next hop of the Mac's IPv6 split routes. */
  vmAddress6?: string;
  /** The Mac's address facing the VM (SNAT source on the VM). Default: mac-agent Describe. */
  macSource?: string;
  /** Last resort for macSource: this host's source address towards the VM (same-host only). */
  localSource?: () => Promise<string | undefined>;
  /** Resolvers through the tunnel. Default: the DNS of the VM's WireGuard config. */
  dnsServers?: string[];
  /** Excluded destinations (CIDRs, checked): the Mac routes them via its own gateway, in clear. */
  exclude?: string[];
  /** --allow-lan: the Mac's kill switch lets its uplink's private subnets and mDNS through. */
  allowLan?: boolean;
  handshakeTimeoutMs?: number;
  lanInterface?: string;
  /** Default: auto (Ipv6Mode.IPV6_MODE_UNSPECIFIED). */
  ipv6?: Ipv6Mode;
  /** Aborting stops before the next step (the one in flight completes), then rolls back. */
  signal?: AbortSignal;
  now?: () => number;
  /**
   * Asked once the Up failed for want of a handshake and was rolled back (the Mac is as before
   * `up`): is a captive portal holding the network? Absent: no probe (portal-probe.ts).
   */
  probePortal?: () => Promise<ProbeVerdict>;
  /**
   * `wgctl portal`: the Mac's fail-closed Up opens a captive-portal sign-in window this long and
   * the VM waits as long for its handshake; the full Up that follows the handshake closes it.
   */
  portalWindowMs?: number;
}

function checkAgent(side: Side, agent: { agent: string; protocolVersion: string; version: string } | undefined): void {
  const expected = SIDE_LABEL[side];
  if (!agent) throw new Error(`${expected} sent no AgentInfo in Describe`);
  if (agent.protocolVersion !== PROTOCOL_VERSION) {
    throw new Error(
      `${expected} speaks protocol "${agent.protocolVersion || '(none)'}" (version ${agent.version || '?'}), ` +
        `this wgctl needs "${PROTOCOL_VERSION}": upgrade the agent or wgctl so they match`,
    );
  }
  if (agent.agent && agent.agent !== expected) {
    throw new Error(`the address configured for the ${expected} answers as "${agent.agent}": check vm/mac addresses in the config`);
  }
}

export interface Connected {
  vm?: VmDescription;
  mac?: MacDescription;
  /** Per side: why it is not usable (unreachable, wrong protocol). */
  errors: Partial<Record<Side, string>>;
}

/** Both agents' Describes, each checked (protocol, role) as it comes. */
export interface Describing {
  vm: Promise<VmDescription>;
  mac: Promise<MacDescription>;
}

export function describeBoth(vm: VmAgentApi, mac: MacAgentApi): Describing {
  const attempt = async <T extends { agent?: { agent: string; protocolVersion: string; version: string } }>(
    side: Side,
    api: { describe(): Promise<T> },
  ): Promise<T> => {
    const description = await api.describe();
    checkAgent(side, description.agent);
    return description;
  };
  const described = { vm: attempt('vm', vm), mac: attempt('mac', mac) };
  // Each is awaited by connectBoth; one may fail while nobody waits on it yet.
  described.vm.catch(() => undefined);
  described.mac.catch(() => undefined);
  return described;
}

/** Waits for both channels and describes both agents, in parallel; never throws. */
export async function connectBoth(vm: VmAgentApi, mac: MacAgentApi, described: Describing = describeBoth(vm, mac)): Promise<Connected> {
  const [v, m] = await Promise.allSettled([described.vm, described.mac]);
  const result: Connected = { errors: {} };
  if (v.status === 'fulfilled') result.vm = v.value;
  else result.errors.vm = messageOf(v.reason);
  if (m.status === 'fulfilled') result.mac = m.value;
  else result.errors.mac = messageOf(m.reason);
  return result;
}

export function connectDetail(c: Connected): string {
  const parts: string[] = [];
  if (c.vm?.agent) parts.push(`vm-agent ${c.vm.agent.version} on ${c.vm.agent.hostname}`);
  if (c.mac?.agent) parts.push(`mac-agent ${c.mac.agent.version} (${c.mac.agent.driver}) on ${c.mac.agent.hostname}`);
  return parts.join(', ');
}

export function requireBoth(c: Connected): { vm: VmDescription; mac: MacDescription } {
  const problems = (Object.entries(c.errors) as [Side, string][]).map(([, e]) => e);
  if (problems.length > 0 || !c.vm || !c.mac) throw new Error(problems.join('; '));
  return { vm: c.vm, mac: c.mac };
}

async function resolveMacSource(opts: UpOptions, mac: MacDescription): Promise<string> {
  const source = opts.macSource || mac.vnicAddress || (opts.localSource ? await opts.localSource() : undefined);
  if (!source) {
    throw new Error(
      'cannot tell the Mac\'s address facing the VM: mac-agent did not report one (vnic_address); ' +
        'pass --mac-source ADDRESS (the Mac\'s address on the VM network)',
    );
  }
  return source;
}

export interface Ipv6Decision {
  mode: AppliedIpv6Mode;
  /** Set when routing: the Mac's IPv6 on the vnic (the VM forwards and NATs it) and the VM's. */
  macSource6?: string;
  vmAddress6?: string;
  /** Why (for block under auto: what was missing), for progress and status. */
  reason: string;
}

/**
 * The Mac's IPv6 is routed through the tunnel only when every piece is there: the VM's IPv6 on
 * the vnic (config vm.address6), an IPv6 tunnel address in the VM's WireGuard config (its NAT66
 * source) and the Mac's global IPv6 on the vnic (the source the VM forwards). `route` insists
 * on them; `auto` blocks without them; `block` always blocks. Pure.
 */
export function decideIpv6(opts: Pick<UpOptions, 'ipv6' | 'vmAddress6'>, vm: VmDescription, mac: MacDescription): Ipv6Decision {
  const requested = opts.ipv6 ?? Ipv6Mode.IPV6_MODE_UNSPECIFIED;
  if (requested === Ipv6Mode.IPV6_MODE_BLOCK) return { mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: 'ipv6: block' };
  const tunnel6 = vm.tunnelAddresses.find((a) => a.includes(':'));
  const missing: string[] = [];
  if (!opts.vmAddress6) missing.push('vm.address6 in the config (the VM\'s IPv6 on the vnic: wgctl init --vm-address6 IP)');
  if (!tunnel6) {
    const have = vm.tunnelAddresses.length > 0 ? `has only ${vm.tunnelAddresses.join(', ')}` : 'has none';
    missing.push(`an IPv6 Address in the VM's WireGuard config (vm-agent's tunnel addresses: ${have})`);
  }
  if (!mac.vnicAddress6) missing.push(`a global IPv6 address on the Mac's vnic${mac.vnicInterface ? ` ${mac.vnicInterface}` : ''} (mac-agent reports none)`);
  if (missing.length === 0) {
    return {
      mode: Ipv6Mode.IPV6_MODE_ROUTE,
      macSource6: mac.vnicAddress6,
      vmAddress6: opts.vmAddress6,
      reason: `routed: ${mac.vnicAddress6} via ${opts.vmAddress6}, NAT66 to ${stripPrefix(tunnel6!)}`,
    };
  }
  if (requested === Ipv6Mode.IPV6_MODE_ROUTE) {
    throw new Error(`ipv6: route cannot route the Mac's IPv6 through the tunnel: missing ${missing.join('; ')}`);
  }
  return { mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: `ipv6: auto blocks IPv6: missing ${missing.join('; ')}` };
}

/** The first step of up and plan: both agents described, the Mac's address facing the VM, the IPv6 mode. */
/** What connect found: both agents described, the Mac's source address, the IPv6 decision. */
export interface Described {
  vm: VmDescription;
  mac: MacDescription;
  macSource: string;
  ipv6: Ipv6Decision;
}

/**
 * When the VM's Up need not wait for the Mac's Describe: the IPv6 decision needs nothing from
 * the Mac (blocked: `ipv6: block`, or auto without vm.address6), and the Mac's source address
 * is known without it — --mac-source, or, with the mac-agent on this host, this host's source
 * address towards the VM (the kernel's choice, local-source.ts: the very source the Mac's
 * traffic routed via the VM leaves with, so the one the VM must SNAT). Resolves to undefined
 * when that source cannot be told; undefined when the Up must wait for the Mac anyway.
 */
export function sourceWithoutMac(opts: UpOptions): Promise<string | undefined> | undefined {
  const ipv6 = opts.ipv6 ?? Ipv6Mode.IPV6_MODE_UNSPECIFIED;
  const blockedWithoutMac = ipv6 === Ipv6Mode.IPV6_MODE_BLOCK || (ipv6 === Ipv6Mode.IPV6_MODE_UNSPECIFIED && !opts.vmAddress6);
  if (!blockedWithoutMac) return undefined;
  if (opts.macSource) return Promise.resolve(opts.macSource);
  return opts.localSource?.().catch(() => undefined);
}

/**
 * `earlySource` (sourceWithoutMac's): the source an Up begun before the Mac's Describe was sent
 * with (that Describe then vouches for the agent only); resolved to undefined, the usual order.
 */
export function connectStep(seq: Sequencer, vm: VmAgentApi, mac: MacAgentApi, opts: UpOptions, described?: Describing, earlySource?: Promise<string | undefined>): Promise<Described> {
  return seq.run('connect', async () => {
    const c = await connectBoth(vm, mac, described);
    const both = requireBoth(c);
    const source = (await earlySource) ?? (await resolveMacSource(opts, both.mac));
    const ipv6 = decideIpv6(opts, both.vm, both.mac);
    const shown = ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? `IPv6 routed (Mac ${ipv6.macSource6} via ${ipv6.vmAddress6})` : 'IPv6 blocked';
    const vnic = both.mac.vnicAddress;
    const aside = vnic && stripPrefix(vnic) !== stripPrefix(source) ? ` (the mac-agent reports ${vnic} on its vnic)` : '';
    return { value: { ...both, macSource: source, ipv6 }, detail: `${connectDetail(c)}; Mac source ${source}${aside}; ${shown}` };
  }, opts.signal);
}

function stripPrefix(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}
