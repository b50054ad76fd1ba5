/**
 * The lab's picture: every namespace, interface name and address in one typed object.
 * Pure (no I/O), so the names and the address plan can be unit-tested without root.
 *
 * Every name starts with `<prefix>-` (namespaces, veths, bridges, WireGuard interfaces), so
 * two labs with different prefixes never collide and `destroyLab(prefix)` can find all of
 * a lab's leftovers by name. The prefix holds no '-' so `wgl-…` never matches `wgl2-…`.
 *
 * Addresses come only from documentation prefixes (RFC 5737 / RFC 3849):
 *   192.0.2.0/24     coffee-shop LANs (cafe1 the lower /25, cafe2 the upper /25)
 *   203.0.113.0/24   the "internet": one /28 per link to the internet router
 *   198.51.100.0/24  the Mac↔VM vnic (/29) and the WireGuard tunnel (/27)
 *   2001:db8::/32    IPv6 on the LANs and the internet; 2001:db8:6::/48 for the vnic (:1::/64)
 *                    and the tunnel (:64::/64)
 */

export const CAFE_NAMES = ['cafe1', 'cafe2'] as const;
export type CafeName = (typeof CAFE_NAMES)[number];

export const NAMESPACE_ROLES = ['inet', 'cafe1', 'cafe2', 'mac', 'vm', 'srv', 'web'] as const;
export type NamespaceRole = (typeof NAMESPACE_ROLES)[number];

export const DEFAULT_PREFIX = 'wgl';
/** Longest suffix appended to the prefix is `-cafe1` (6), and Linux allows 15 chars. */
export const MAX_PREFIX_LENGTH = 9;
const PREFIX_PATTERN = /^[a-z][a-z0-9]*$/;

export const WEB_HOSTNAME = 'web.lab.test';
export const WIREGUARD_PORT = 51820;
export const HTTP_PORT = 80;

/** An interface with its addresses (IPv6 optional), as plain IPs plus prefix lengths. */
export interface IfAddr {
  interface: string;
  ipv4: string;
  prefix4: number;
  ipv6?: string;
  prefix6?: number;
}

/** A host's uplink: an interface plus the next hops of its default routes. */
export interface Uplink extends IfAddr {
  gateway4: string;
  gateway6?: string;
}

export interface InternetRouter {
  ns: string;
  /** The router's port towards each attached namespace (named after that namespace). */
  ports: Record<'cafe1' | 'cafe2' | 'srv' | 'web', IfAddr>;
}

export interface Cafe {
  name: CafeName;
  ns: string;
  wan: Uplink;
  /** The LAN bridge holding the router's LAN addresses (also the LAN's DNS resolver). */
  lan: IfAddr & { subnet4: string; subnet6: string };
  /** What the Mac is configured with while it sits on this LAN ("DHCP" done statically). */
  client: { ipv4: string; prefix4: number; ipv6: string; prefix6: number; gateway4: string; gateway6: string; dns: string };
}

export interface MacHost {
  ns: string;
  /** The uplink interface name; the LAN it is plugged into is `Lab.state.macCafe`. */
  uplink: string;
  /** The "access point" veth end, peer of the uplink, moved between cafes by roam(). */
  accessPort: string;
  vnic: Required<IfAddr> & { subnet4: string; subnet6: string };
  /** nft table (family ip) doing the hypervisor's NAT of VM traffic out of the uplink. */
  natTable: string;
}

export interface VmHost {
  ns: string;
  /** The vnic: IPv4 default route via the Mac; IPv6 on-link only (the VM's IPv6 leaves through the tunnel). */
  eth: Uplink;
  wireguard: {
    interface: string;
    /** wg-quick config; its basename must be `<interface>.conf`. */
    configPath: string;
    address: string;
    prefix: number;
    /** The VM's IPv6 tunnel address (a /128 in its wg-quick config, AllowedIPs ::/0 too). */
    address6: string;
    prefix6: number;
    publicKey: string;
  };
}

export interface WireGuardServer {
  ns: string;
  wan: Uplink;
  wireguard: {
    interface: string;
    address: string;
    prefix: number;
    subnet: string;
    /** IPv6 in the tunnel: the server forwards it to the internet with NAT66 (masquerade). */
    address6: string;
    prefix6: number;
    subnet6: string;
    listenPort: number;
    publicKey: string;
    privateKeyPath: string;
  };
  /** `ip:port` the VM's wg-quick config uses. */
  endpoint: string;
  /** dnsmasq on the server's tunnel address: reachable only through the tunnel. */
  dns: string;
}

export interface WebHost {
  ns: string;
  wan: Uplink;
  hostname: string;
  httpPort: number;
  url4: string;
  url6: string;
}

export interface LabPaths {
  dir: string;
  labJson: string;
  logs: string;
  pids: string;
  bin: string;
  /** `/etc/netns/<ns>/resolv.conf`: what `ip netns exec` bind-mounts over /etc/resolv.conf. */
  resolvConf: Record<NamespaceRole, string>;
}

export interface Lab {
  version: 1;
  prefix: string;
  paths: LabPaths;
  ns: Record<NamespaceRole, string>;
  inet: InternetRouter;
  cafes: Record<CafeName, Cafe>;
  mac: MacHost;
  vm: VmHost;
  srv: WireGuardServer;
  web: WebHost;
  /** What changes while the lab runs (roam()). */
  state: { macCafe: CafeName };
  /** Milliseconds per creation phase, filled by createLab. */
  timings?: Record<string, number>;
}

export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}

export function validatePrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix) || prefix.length > MAX_PREFIX_LENGTH) {
    throw new LabError(
      `invalid lab prefix '${prefix}': use 1-${MAX_PREFIX_LENGTH} characters [a-z0-9], starting with a letter ` +
        `(names are '<prefix>-cafe1' etc. and Linux caps interface names at 15 characters)`,
    );
  }
}

/** Default lab directory for a prefix (also where `down --prefix` looks for pid files). */
export function defaultLabDir(prefix: string, tmp = '/tmp'): string {
  return `${tmp}/wgctl-lab-${prefix}`;
}

/** One link of the internet router: .1 on the router's side, .2 on the far side. */
const INTERNET_LINKS = {
  cafe1: { base4: '203.0.113.0', router4: '203.0.113.1', far4: '203.0.113.2', router6: '2001:db8:0:1::1', far6: '2001:db8:0:1::2' },
  cafe2: { base4: '203.0.113.16', router4: '203.0.113.17', far4: '203.0.113.18', router6: '2001:db8:0:2::1', far6: '2001:db8:0:2::2' },
  srv: { base4: '203.0.113.48', router4: '203.0.113.49', far4: '203.0.113.50', router6: '2001:db8:0:3::1', far6: '2001:db8:0:3::2' },
  web: { base4: '203.0.113.80', router4: '203.0.113.81', far4: '203.0.113.82', router6: '2001:db8:0:4::1', far6: '2001:db8:0:4::2' },
} as const;
const INTERNET_PREFIX4 = 28;
const PREFIX6 = 64;

const LANS: Record<CafeName, { subnet4: string; router4: string; client4: string; subnet6: string; router6: string; client6: string }> = {
  cafe1: { subnet4: '192.0.2.0/25', router4: '192.0.2.1', client4: '192.0.2.100', subnet6: '2001:db8:c1::/64', router6: '2001:db8:c1::1', client6: '2001:db8:c1::100' },
  cafe2: { subnet4: '192.0.2.128/25', router4: '192.0.2.129', client4: '192.0.2.200', subnet6: '2001:db8:c2::/64', router6: '2001:db8:c2::1', client6: '2001:db8:c2::100' },
};
const LAN_PREFIX4 = 25;

const VNIC = {
  subnet4: '198.51.100.0/29', mac: '198.51.100.1', vm: '198.51.100.2', prefix4: 29,
  subnet6: '2001:db8:6:1::/64', mac6: '2001:db8:6:1::1', vm6: '2001:db8:6:1::2', prefix6: 64,
};
const TUNNEL = {
  subnet: '198.51.100.64/27', server: '198.51.100.65', client: '198.51.100.66', prefix: 27,
  subnet6: '2001:db8:6:64::/64', server6: '2001:db8:6:64::1', client6: '2001:db8:6:64::2', prefix6: 64,
};

export interface LabKeys {
  serverPublicKey: string;
  vmPublicKey: string;
}

/**
 * Builds the lab description for a prefix and directory. Pure. Over 80 lines: one literal of the
 * whole lab (every namespace, link, address and path), so each is named in one place.
 */
export function labTopology(prefix: string, dir: string, keys: LabKeys = { serverPublicKey: '', vmPublicKey: '' }): Lab {
  validatePrefix(prefix);
  const name = (suffix: string) => `${prefix}-${suffix}`;
  const ns = Object.fromEntries(NAMESPACE_ROLES.map((r) => [r, name(r)])) as Record<NamespaceRole, string>;
  const wan = name('wan');

  const port = (to: keyof typeof INTERNET_LINKS): IfAddr => ({
    interface: name(to),
    ipv4: INTERNET_LINKS[to].router4,
    prefix4: INTERNET_PREFIX4,
    ipv6: INTERNET_LINKS[to].router6,
    prefix6: PREFIX6,
  });
  const farSide = (to: keyof typeof INTERNET_LINKS): Uplink => ({
    interface: wan,
    ipv4: INTERNET_LINKS[to].far4,
    prefix4: INTERNET_PREFIX4,
    ipv6: INTERNET_LINKS[to].far6,
    prefix6: PREFIX6,
    gateway4: INTERNET_LINKS[to].router4,
    gateway6: INTERNET_LINKS[to].router6,
  });
  const cafe = (c: CafeName): Cafe => ({
    name: c,
    ns: ns[c],
    wan: farSide(c),
    lan: {
      interface: name('lan'),
      ipv4: LANS[c].router4,
      prefix4: LAN_PREFIX4,
      ipv6: LANS[c].router6,
      prefix6: PREFIX6,
      subnet4: LANS[c].subnet4,
      subnet6: LANS[c].subnet6,
    },
    client: {
      ipv4: LANS[c].client4,
      prefix4: LAN_PREFIX4,
      ipv6: LANS[c].client6,
      prefix6: PREFIX6,
      gateway4: LANS[c].router4,
      gateway6: LANS[c].router6,
      dns: LANS[c].router4,
    },
  });

  const vmWgInterface = name('wg0');
  const web = farSide('web');
  return {
    version: 1,
    prefix,
    paths: {
      dir,
      labJson: `${dir}/lab.json`,
      logs: `${dir}/logs`,
      pids: `${dir}/pids`,
      bin: `${dir}/bin`,
      resolvConf: Object.fromEntries(NAMESPACE_ROLES.map((r) => [r, `/etc/netns/${ns[r]}/resolv.conf`])) as Record<NamespaceRole, string>,
    },
    ns,
    inet: { ns: ns.inet, ports: { cafe1: port('cafe1'), cafe2: port('cafe2'), srv: port('srv'), web: port('web') } },
    cafes: { cafe1: cafe('cafe1'), cafe2: cafe('cafe2') },
    mac: {
      ns: ns.mac,
      uplink: name('en0'),
      accessPort: name('ap'),
      vnic: {
        interface: name('vnic'),
        ipv4: VNIC.mac,
        prefix4: VNIC.prefix4,
        subnet4: VNIC.subnet4,
        ipv6: VNIC.mac6,
        prefix6: VNIC.prefix6,
        subnet6: VNIC.subnet6,
      },
      natTable: 'hypervisor',
    },
    vm: {
      ns: ns.vm,
      eth: { interface: name('eth0'), ipv4: VNIC.vm, prefix4: VNIC.prefix4, ipv6: VNIC.vm6, prefix6: VNIC.prefix6, gateway4: VNIC.mac },
      wireguard: {
        interface: vmWgInterface,
        configPath: `${dir}/vm/${vmWgInterface}.conf`,
        address: TUNNEL.client,
        prefix: 32,
        address6: TUNNEL.client6,
        prefix6: 128,
        publicKey: keys.vmPublicKey,
      },
    },
    srv: {
      ns: ns.srv,
      wan: farSide('srv'),
      wireguard: {
        interface: name('wgs'),
        address: TUNNEL.server,
        prefix: TUNNEL.prefix,
        subnet: TUNNEL.subnet,
        address6: TUNNEL.server6,
        prefix6: TUNNEL.prefix6,
        subnet6: TUNNEL.subnet6,
        listenPort: WIREGUARD_PORT,
        publicKey: keys.serverPublicKey,
        privateKeyPath: `${dir}/srv/private.key`,
      },
      endpoint: `${INTERNET_LINKS.srv.far4}:${WIREGUARD_PORT}`,
      dns: TUNNEL.server,
    },
    web: {
      ns: ns.web,
      wan: web,
      hostname: WEB_HOSTNAME,
      httpPort: HTTP_PORT,
      url4: `http://${web.ipv4}:${HTTP_PORT}/`,
      url6: `http://[${web.ipv6}]:${HTTP_PORT}/`,
    },
    state: { macCafe: 'cafe1' },
  };
}

/** Every network-interface name the lab creates (for checks and cleanup). */
export function labInterfaceNames(lab: Lab): string[] {
  return [
    ...Object.values(lab.inet.ports).map((p) => p.interface),
    lab.cafes.cafe1.wan.interface,
    lab.cafes.cafe1.lan.interface,
    lab.mac.uplink,
    lab.mac.accessPort,
    lab.mac.vnic.interface,
    lab.vm.eth.interface,
    lab.vm.wireguard.interface,
    lab.srv.wireguard.interface,
  ].filter((n, i, all) => all.indexOf(n) === i);
}

export interface VethEnd {
  ns: string;
  interface: string;
  /**
   * Explicit ifindex, distinct from its peer's: the kernel treats a carrier change as urgent
   * only when a device's ifindex differs from its peer's (iflink). Fresh namespaces hand out
   * the same index (2) to both ends, and then carrier-on waits in linkwatch for up to 1 s,
   * dropping packets meanwhile (measured: first pings lost after roaming).
   */
  index: number;
}

/** The lab's veth pairs (created with each end directly in its namespace). */
export function labVethPairs(lab: Lab): [VethEnd, VethEnd][] {
  const pairs: [string, string, string, string][] = [
    [lab.inet.ns, lab.inet.ports.cafe1.interface, lab.cafes.cafe1.ns, lab.cafes.cafe1.wan.interface],
    [lab.inet.ns, lab.inet.ports.cafe2.interface, lab.cafes.cafe2.ns, lab.cafes.cafe2.wan.interface],
    [lab.inet.ns, lab.inet.ports.srv.interface, lab.srv.ns, lab.srv.wan.interface],
    [lab.inet.ns, lab.inet.ports.web.interface, lab.web.ns, lab.web.wan.interface],
    // The Mac's uplink starts plugged into cafe1; roam() moves the access-port end.
    [lab.mac.ns, lab.mac.uplink, lab.cafes.cafe1.ns, lab.mac.accessPort],
    [lab.mac.ns, lab.mac.vnic.interface, lab.vm.ns, lab.vm.eth.interface],
  ];
  return pairs.map(([nsA, ifA, nsB, ifB], i) => [
    { ns: nsA, interface: ifA, index: 10 + 2 * i },
    { ns: nsB, interface: ifB, index: 11 + 2 * i },
  ]);
}

/** Resolves a role ('mac') or a full namespace name ('wgl-mac') to the namespace name. */
export function resolveNamespace(lab: Lab, nsOrRole: string): string {
  if ((NAMESPACE_ROLES as readonly string[]).includes(nsOrRole)) return lab.ns[nsOrRole as NamespaceRole];
  if (Object.values(lab.ns).includes(nsOrRole)) return nsOrRole;
  throw new LabError(`unknown lab namespace '${nsOrRole}': use one of ${NAMESPACE_ROLES.join(', ')} (or ${Object.values(lab.ns).join(', ')})`);
}
