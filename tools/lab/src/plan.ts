/**
 * What createLab runs, as data: phases of command sequences (sequences of one phase run in
 * parallel, commands of one sequence in order). Pure, so a unit test can check every address
 * and name the lab would ever put on the wire or on an interface, without root.
 */
import { labVethPairs, type CafeName, type Lab, type NamespaceRole } from './topology';

/** A process that outlives the command starting it; recorded so destroyLab can find it. */
export interface ProcessSpec {
  name: string;
  ns: string;
  pidFile: string;
  logFile: string;
  /** The running process's cmdline (checked before any kill: pid files can go stale). */
  argv: string[];
}

export interface LabCommand {
  argv: string[];
  input?: string;
  env?: Record<string, string>;
  process?: ProcessSpec;
  /** After the command returns, poll until this file exists (readiness of a daemon). */
  waitForFile?: string;
}

export interface LabPhase {
  name: string;
  sequences: LabCommand[][];
}

/** Absolute paths of the programs started detached (start-stop-daemon needs them). */
export interface Binaries {
  ip: string;
  node: string;
  startStopDaemon: string;
}

/** wireguard-go without the kernel module; the variable only silences its banner. */
export const WIREGUARD_GO_ENV = {
  WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go',
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1',
};

export function inNamespace(ns: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

function ipBatch(ns: string, lines: string[]): LabCommand {
  return { argv: ['ip', '-n', ns, '-batch', '-'], input: lines.join('\n') + '\n' };
}

function nft(ns: string, ruleset: string): LabCommand {
  return { argv: inNamespace(ns, ['nft', '-f', '-']), input: ruleset };
}

/** Forwarding where the role routes; DAD off so addresses are usable at once. */
const SYSCTLS: Record<NamespaceRole, string[]> = {
  inet: ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
  cafe1: ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
  cafe2: ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
  // The hypervisor forwards (and NATs) the VM's traffic.
  mac: ['net.ipv4.ip_forward=1'],
  // Left at the new-namespace default (0): enabling it is the vm-agent's job.
  vm: [],
  srv: ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
  web: [],
};
const NO_DAD = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];

function addr(ip: string, prefix: number, dev: string): string {
  return ip.includes(':') ? `addr add ${ip}/${prefix} dev ${dev} nodad` : `addr add ${ip}/${prefix} dev ${dev}`;
}

/** The access port's LAN side and the Mac's client side for one cafe. */
export function accessPortLines(lab: Lab, cafe: CafeName): string[] {
  const c = lab.cafes[cafe];
  return [addr(c.lan.ipv4, c.lan.prefix4, lab.mac.accessPort), addr(c.lan.ipv6!, c.lan.prefix6!, lab.mac.accessPort), `link set ${lab.mac.accessPort} up`];
}

export function macUplinkLines(lab: Lab, cafe: CafeName): string[] {
  const c = lab.cafes[cafe].client;
  const dev = lab.mac.uplink;
  return [
    addr(c.ipv4, c.prefix4, dev),
    addr(c.ipv6, c.prefix6, dev),
    `link set ${dev} up`,
    `route replace default via ${c.gateway4} dev ${dev}`,
    `route replace ::/0 via ${c.gateway6} dev ${dev}`,
  ];
}

function uplinkLines(u: Lab['srv']['wan']): string[] {
  return [
    addr(u.ipv4, u.prefix4, u.interface),
    ...(u.ipv6 ? [addr(u.ipv6, u.prefix6!, u.interface)] : []),
    `link set ${u.interface} up`,
    `route add default via ${u.gateway4} dev ${u.interface}`,
    ...(u.gateway6 ? [`route add ::/0 via ${u.gateway6} dev ${u.interface}`] : []),
  ];
}

function cafeNat(lab: Lab, cafe: CafeName): string {
  const c = lab.cafes[cafe];
  return `table ip cafe {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${c.wan.interface}" ip saddr ${c.lan.subnet4} masquerade
  }
}
`;
}

/** Parallels-style shared networking: the VM's traffic leaves the uplink as the Mac's. */
export function hypervisorNat(lab: Lab): string {
  return `table ip ${lab.mac.natTable} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${lab.mac.vnic.subnet4} oifname != "${lab.mac.vnic.interface}" masquerade
  }
}
`;
}

function serverRules(lab: Lab): string {
  const s = lab.srv;
  // NAT66 too: the web host sees the server's own IPv6 for tunnelled IPv6, as for IPv4.
  return `table ip6 lab6 {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${s.wan.interface}" ip6 saddr ${s.wireguard.subnet6} masquerade
  }
}
table ip lab {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${s.wan.interface}" ip saddr ${s.wireguard.subnet} masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    # the resolver answers only through the tunnel
    ip daddr ${s.dns} iifname != "${s.wireguard.interface}" drop
  }
}
`;
}

/**
 * dnsmasq answering only web.lab.test (A and AAAA), logging every query (a DNS-leak probe).
 * `dynamic`: listen once the address appears (a cafe's LAN address exists only while the
 * Mac's access port is plugged in there).
 */
export function dnsmasqProcess(lab: Lab, name: string, ns: string, listen: string, bind: 'interfaces' | 'dynamic' = 'interfaces'): { command: LabCommand; spec: ProcessSpec } {
  const pidFile = `${lab.paths.pids}/${name}.pid`;
  const logFile = `${lab.paths.logs}/${name}.log`;
  const args = [
    'dnsmasq',
    '--conf-file=/dev/null',
    '--no-resolv', // never forward anywhere: only the lab's names exist
    '--no-hosts',
    `--address=/${lab.web.hostname}/${lab.web.wan.ipv4}`,
    `--address=/${lab.web.hostname}/${lab.web.wan.ipv6}`,
    `--listen-address=${listen}`,
    bind === 'dynamic' ? '--bind-dynamic' : '--bind-interfaces',
    `--pid-file=${pidFile}`,
    '--log-queries',
    `--log-facility=${logFile}`,
  ];
  const spec: ProcessSpec = { name, ns, pidFile, logFile, argv: args };
  return { command: { argv: inNamespace(ns, args), process: spec, waitForFile: pidFile }, spec };
}

/** Starts `argv` inside `ns`, detached, with a pid file and its output in a log file. */
export function detachedCommand(bins: Binaries, spec: Omit<ProcessSpec, 'argv'> & { argv: string[] }, env?: Record<string, string>): LabCommand {
  return {
    argv: [
      bins.startStopDaemon,
      '--start',
      '--background',
      '--make-pidfile',
      '--pidfile',
      spec.pidFile,
      '--output',
      spec.logFile,
      '--exec',
      bins.ip,
      '--',
      'netns',
      'exec',
      spec.ns,
      ...spec.argv,
    ],
    env,
    process: spec,
  };
}

export function webServerCommand(lab: Lab, bins: Binaries): LabCommand {
  const readyFile = `${lab.paths.dir}/web/http.ready`;
  const spec: ProcessSpec = {
    name: 'web-http',
    ns: lab.web.ns,
    pidFile: `${lab.paths.pids}/web-http.pid`,
    logFile: `${lab.paths.logs}/web-http.log`,
    argv: [bins.node, `${lab.paths.bin}/web-server.js`, String(lab.web.httpPort), readyFile],
  };
  return { ...detachedCommand(bins, spec), waitForFile: readyFile };
}

/** The commands that build `lab`, in phases. Over 80 lines: the four phases as one declarative list, in the order they run. */
export function planLab(lab: Lab, bins: Binaries): LabPhase[] {
  const { inet, cafes, mac, vm, srv, web } = lab;

  const namespaces: LabPhase = {
    name: 'namespaces',
    sequences: (Object.entries(lab.ns) as [NamespaceRole, string][]).map(([role, ns]) => [
      { argv: ['ip', 'netns', 'add', ns] },
      { argv: inNamespace(ns, ['sysctl', '-q', '-w', ...SYSCTLS[role], ...NO_DAD]) },
    ]),
  };

  const links: LabPhase = {
    name: 'links',
    sequences: labVethPairs(lab).map(([a, b]) => [
      {
        argv: ['ip', 'link', 'add', a.interface, 'index', String(a.index), 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.interface, 'index', String(b.index), 'netns', b.ns],
      },
    ]),
  };

  const cafeSequence = (name: CafeName): LabCommand[] => {
    const c = cafes[name];
    return [
      ipBatch(c.ns, ['link set lo up', ...uplinkLines(c.wan), ...(lab.state.macCafe === name ? accessPortLines(lab, name) : [])]),
      nft(c.ns, cafeNat(lab, name)),
    ];
  };
  const configure: LabPhase = {
    name: 'addresses+routes',
    sequences: [
      [
        ipBatch(inet.ns, [
          'link set lo up',
          ...Object.values(inet.ports).flatMap((p) => [addr(p.ipv4, p.prefix4, p.interface), addr(p.ipv6!, p.prefix6!, p.interface), `link set ${p.interface} up`]),
          // The LANs are NATed for IPv4 (as a coffee shop does) but routed for IPv6.
          ...(['cafe1', 'cafe2'] as const).map((c) => `route add ${cafes[c].lan.subnet6} via ${cafes[c].wan.ipv6} dev ${inet.ports[c].interface}`),
        ]),
      ],
      cafeSequence('cafe1'),
      cafeSequence('cafe2'),
      [
        ipBatch(mac.ns, [
          'link set lo up',
          addr(mac.vnic.ipv4, mac.vnic.prefix4, mac.vnic.interface),
          addr(mac.vnic.ipv6, mac.vnic.prefix6, mac.vnic.interface),
          `link set ${mac.vnic.interface} up`,
          ...macUplinkLines(lab, lab.state.macCafe),
        ]),
        nft(mac.ns, hypervisorNat(lab)),
      ],
      [ipBatch(vm.ns, ['link set lo up', ...uplinkLines(vm.eth)])],
      [ipBatch(srv.ns, ['link set lo up', ...uplinkLines(srv.wan)]), nft(srv.ns, serverRules(lab))],
      [ipBatch(web.ns, ['link set lo up', ...uplinkLines(web.wan)])],
    ],
  };

  const wg = srv.wireguard;
  const services: LabPhase = {
    name: 'services',
    sequences: [
      [
        // wireguard-go daemonizes itself once the TUN device and its UAPI socket exist.
        { argv: inNamespace(srv.ns, ['wireguard-go', wg.interface]), env: WIREGUARD_GO_ENV },
        {
          argv: inNamespace(srv.ns, [
            'wg', 'set', wg.interface,
            'listen-port', String(wg.listenPort),
            'private-key', wg.privateKeyPath,
            'peer', vm.wireguard.publicKey,
            'allowed-ips', `${vm.wireguard.address}/32,${vm.wireguard.address6}/${vm.wireguard.prefix6}`,
          ]),
        },
        ipBatch(srv.ns, [addr(wg.address, wg.prefix, wg.interface), addr(wg.address6, wg.prefix6, wg.interface), `link set ${wg.interface} up`]),
        dnsmasqProcess(lab, 'srv-dns', srv.ns, srv.dns).command,
      ],
      [dnsmasqProcess(lab, 'cafe1-dns', cafes.cafe1.ns, cafes.cafe1.lan.ipv4, 'dynamic').command],
      [dnsmasqProcess(lab, 'cafe2-dns', cafes.cafe2.ns, cafes.cafe2.lan.ipv4, 'dynamic').command],
      [webServerCommand(lab, bins)],
    ],
  };

  return [namespaces, links, configure, services];
}

/** resolv.conf per namespace: the Mac starts with the coffee shop's resolver, the VM uses the tunnel's. */
export function resolvConfs(lab: Lab): Record<NamespaceRole, string> {
  // Short timeouts: a lookup that cannot succeed (a blocked resolver) fails in about a second.
  const line = (ip: string) => `# written by the wgctl lab (${lab.prefix})\nnameserver ${ip}\noptions timeout:1 attempts:1\n`;
  return {
    inet: line('127.0.0.1'),
    cafe1: line(lab.cafes.cafe1.lan.ipv4),
    cafe2: line(lab.cafes.cafe2.lan.ipv4),
    mac: line(lab.cafes[lab.state.macCafe].client.dns),
    vm: line(lab.srv.dns),
    srv: line('127.0.0.1'),
    web: line('127.0.0.1'),
  };
}

/** The VM's wg-quick config (no DNS= line: resolvconf is not installed; the lab sets the VM's resolv.conf). */
export function vmWireGuardConfig(lab: Lab, vmPrivateKey: string): string {
  return `# written by the wgctl lab (${lab.prefix})
[Interface]
PrivateKey = ${vmPrivateKey}
Address = ${lab.vm.wireguard.address}/${lab.vm.wireguard.prefix}, ${lab.vm.wireguard.address6}/${lab.vm.wireguard.prefix6}

[Peer]
PublicKey = ${lab.srv.wireguard.publicKey}
Endpoint = ${lab.srv.endpoint}
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
`;
}
