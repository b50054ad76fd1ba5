import ipaddr from 'ipaddr.js';
import { isDocumentationAddress } from './testing/addresses';
import { planLab, resolvConfs, vmWireGuardConfig, type LabCommand } from './plan';
import { labTopology } from './topology';

const bins = { ip: '/usr/sbin/ip', node: '/usr/bin/node', startStopDaemon: '/usr/sbin/start-stop-daemon' };
const lab = labTopology('wgl', '/tmp/wgctl-lab-wgl', { serverPublicKey: 'S'.repeat(43) + '=', vmPublicKey: 'V'.repeat(43) + '=' });
const commands: LabCommand[] = planLab(lab, bins).flatMap((phase) => phase.sequences.flat());
const inLab = (ns: string | undefined) => !!ns && Object.values(lab.ns).includes(ns);

/** Every token of a text that is an IP address (with or without a /prefix or [brackets]). */
function ipLiterals(text: string): string[] {
  return text
    .split(/[\s,="/[\]]+/)
    .filter((t) => /^[0-9a-f:.]+$/i.test(t) && /[.:]/.test(t) && ipaddr.isValid(t));
}

/** The namespaces a command acts in; null when it would act in the caller's (root) namespace. */
function targetNamespaces(argv: readonly string[]): string[] | null {
  if (argv[0] === bins.startStopDaemon) {
    const rest = argv.slice(argv.indexOf('--') + 1);
    return rest[0] === 'netns' && rest[1] === 'exec' ? [rest[2]] : null;
  }
  if (argv[0] !== 'ip') return null;
  if (argv[1] === '-n') return [argv[2]];
  if (argv[1] === 'netns' && ['add', 'exec'].includes(argv[2])) return [argv[3]];
  if (argv[1] === 'link' && argv[2] === 'add') {
    // A veth pair created with each end directly in a lab namespace.
    const peer = argv.indexOf('peer');
    const nsOf = (part: readonly string[]) => part[part.indexOf('netns') + 1];
    if (peer < 0 || !argv.slice(0, peer).includes('netns') || !argv.slice(peer).includes('netns')) return null;
    return [nsOf(argv.slice(0, peer)), nsOf(argv.slice(peer))];
  }
  return null;
}

describe('planLab', () => {
  it('acts only inside the lab namespaces, never in the root namespace', () => {
    expect(commands.length).toBeGreaterThan(20);
    const outside = commands.filter((c) => !(targetNamespaces(c.argv) ?? []).every(inLab) || targetNamespaces(c.argv) === null);
    expect(outside.map((c) => c.argv.join(' '))).toEqual([]);
  });

  it('puts only documentation-prefix addresses in arguments, scripts and rules', () => {
    const texts = commands.flatMap((c) => [c.argv.join(' '), c.input ?? '']);
    const literals = texts.flatMap(ipLiterals);
    expect(literals.length).toBeGreaterThan(40);
    // '::' and '0.0.0.0' only as default routes ('::/0', 'AllowedIPs = 0.0.0.0/0')
    const unspecified = new Set(['::', '0.0.0.0']);
    expect([...new Set(literals.filter((ip) => !isDocumentationAddress(ip) && !unspecified.has(ip)))]).toEqual([]);
  });

  it('names only lab interfaces in ip batches and nft rules', () => {
    const names = commands
      .map((c) => c.input ?? '')
      .flatMap((text) => [...text.matchAll(/\b(?:dev|master|link set|ifname(?: !=)?) "?([\w.-]+)"?/g)].map((m) => m[1]))
      .filter((n) => n !== 'up' && n !== 'lo');
    expect(names.length).toBeGreaterThan(15);
    expect(names.filter((n) => !n.startsWith('wgl-'))).toEqual([]);
  });

  it('creates every namespace before any link, and links before addresses', () => {
    const phases = planLab(lab, bins).map((p) => p.name);
    expect(phases).toEqual(['namespaces', 'links', 'addresses+routes', 'services']);
    const first = planLab(lab, bins)[0].sequences.map((s) => s[0].argv.slice(0, 3).join(' '));
    expect(new Set(first)).toEqual(new Set(['ip netns add']));
  });

  it('runs resolvers that never forward outside the lab', () => {
    const dnsmasq = commands.filter((c) => c.argv.includes('dnsmasq'));
    expect(dnsmasq).toHaveLength(3);
    for (const c of dnsmasq) {
      expect(c.argv).toContain('--no-resolv');
      expect(c.argv.some((a) => a.startsWith('--server'))).toBe(false);
      expect(c.process?.pidFile.startsWith('/tmp/wgctl-lab-wgl/pids/')).toBe(true);
    }
  });

  it('records every long-running process with its expected cmdline', () => {
    const started = commands.filter((c) => c.process);
    expect(started.map((c) => c.process!.name).sort()).toEqual(['cafe1-dns', 'cafe2-dns', 'srv-dns', 'web-http']);
    const web = started.find((c) => c.process!.name === 'web-http')!;
    // start-stop-daemon execs ip, which execs node: the pid keeps node's cmdline
    expect(web.argv.slice(-web.process!.argv.length)).toEqual(web.process!.argv);
    expect(web.waitForFile).toBe('/tmp/wgctl-lab-wgl/web/http.ready');
  });

  it('gives the tunnel IPv6: the server accepts the VM\'s /128 and NATs the tunnel\'s IPv6 out of its wan', () => {
    const setPeer = commands.find((c) => c.argv.includes('wg') && c.argv.includes('allowed-ips'))!;
    expect(setPeer.argv[setPeer.argv.indexOf('allowed-ips') + 1]).toBe(`${lab.vm.wireguard.address}/32,${lab.vm.wireguard.address6}/128`);
    const rules = commands.filter((c) => c.argv.includes('nft') && c.argv.includes(lab.srv.ns)).map((c) => c.input).join('');
    expect(rules).toContain(`oifname "${lab.srv.wan.interface}" ip6 saddr ${lab.srv.wireguard.subnet6} masquerade`);
    const batches = commands.map((c) => c.input ?? '').join('\n');
    expect(batches).toContain(`addr add ${lab.srv.wireguard.address6}/64 dev ${lab.srv.wireguard.interface} nodad`);
    expect(batches).toContain(`addr add ${lab.mac.vnic.ipv6}/64 dev ${lab.mac.vnic.interface} nodad`);
    expect(batches).toContain(`addr add ${lab.vm.eth.ipv6}/64 dev ${lab.vm.eth.interface} nodad`);
    const srvSysctl = commands.find((c) => c.argv.includes('sysctl') && c.argv.includes(lab.srv.ns))!;
    expect(srvSysctl.argv).toContain('net.ipv6.conf.all.forwarding=1');
    // The Mac does not forward IPv6 (wgctl routes its own IPv6 to the VM, nothing else).
    const macSysctl = commands.find((c) => c.argv.includes('sysctl') && c.argv.includes(lab.mac.ns))!;
    expect(macSysctl.argv).not.toContain('net.ipv6.conf.all.forwarding=1');
  });
});

describe('lab files', () => {
  it('writes a wg-quick config routing everything to the lab server', () => {
    const conf = vmWireGuardConfig(lab, 'P'.repeat(43) + '=');
    expect(conf).toContain(`Endpoint = ${lab.srv.endpoint}`);
    expect(conf).toContain('AllowedIPs = 0.0.0.0/0, ::/0');
    expect(conf).toContain(`Address = ${lab.vm.wireguard.address}/32, ${lab.vm.wireguard.address6}/128`);
    expect(conf).toContain('PersistentKeepalive = 25');
    expect(conf).toContain(`PublicKey = ${lab.srv.wireguard.publicKey}`);
    expect(conf).not.toMatch(/^DNS/m); // resolvconf is not installed: wg-quick would fail
  });

  it('points the Mac at the coffee shop resolver and the VM at the tunnel resolver', () => {
    const confs = resolvConfs(lab);
    expect(confs.mac).toMatch(/^nameserver 192\.0\.2\.1$/m);
    expect(confs.vm).toMatch(new RegExp(`^nameserver ${lab.srv.dns.replace(/\./g, '\\.')}$`, 'm'));
    for (const text of Object.values(confs)) for (const ip of ipLiterals(text)) expect(isDocumentationAddress(ip) || ip === '127.0.0.1').toBe(true);
  });
});
