import ipaddr from 'ipaddr.js';
import { isDocumentationAddress } from './testing/addresses';
import { LabError, MAX_PREFIX_LENGTH, NAMESPACE_ROLES, labInterfaceNames, labTopology, labVethPairs, resolveNamespace, validatePrefix } from './topology';

const longest = 'a'.repeat(MAX_PREFIX_LENGTH);

describe('lab prefix', () => {
  it.each(['wgl', 'lab2', longest])('accepts %s', (p) => expect(() => validatePrefix(p)).not.toThrow());
  it.each(['', 'Wgl', 'wg-l', '2lab', 'wg_l', `${longest}a`])('rejects %p', (p) => expect(() => validatePrefix(p)).toThrow(LabError));
});

describe('labTopology names', () => {
  it.each(['wgl', longest])('prefixes every namespace and interface with "%s-" and keeps them within 15 chars', (prefix) => {
    const lab = labTopology(prefix, '/tmp/x');
    const names = [...Object.values(lab.ns), ...labInterfaceNames(lab)];
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      expect(name.startsWith(`${prefix}-`)).toBe(true);
      expect(name.length).toBeLessThanOrEqual(15);
    }
  });

  it('gives the VM config the basename wg-quick requires', () => {
    const lab = labTopology('wgl', '/tmp/x');
    expect(lab.vm.wireguard.configPath.endsWith(`/${lab.vm.wireguard.interface}.conf`)).toBe(true);
  });

  it('gives each veth end an ifindex distinct from its peer and unique within its namespace', () => {
    const lab = labTopology('wgl', '/tmp/x');
    const perNs = new Map<string, number[]>();
    for (const [a, b] of labVethPairs(lab)) {
      expect(a.index).not.toBe(b.index);
      for (const end of [a, b]) perNs.set(end.ns, [...(perNs.get(end.ns) ?? []), end.index]);
    }
    for (const indexes of perNs.values()) expect(new Set(indexes).size).toBe(indexes.length);
  });

  it('resolves roles and full namespace names, and rejects others', () => {
    const lab = labTopology('wgl', '/tmp/x');
    expect(resolveNamespace(lab, 'mac')).toBe('wgl-mac');
    expect(resolveNamespace(lab, 'wgl-vm')).toBe('wgl-vm');
    expect(() => resolveNamespace(lab, 'wgx-vm')).toThrow(LabError);
    expect(NAMESPACE_ROLES.map((r) => resolveNamespace(lab, r))).toEqual(Object.values(lab.ns));
  });
});

/** Every IP-looking string in the description, with its JSON path. */
function addressesIn(value: unknown, path = '$'): { path: string; ip: string }[] {
  if (typeof value === 'string') {
    const candidate = value.replace(/^\[|\]$/g, '').replace(/\/\d+$/, '');
    return ipaddr.isValid(candidate) && /[.:]/.test(candidate) ? [{ path, ip: candidate }] : [];
  }
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => addressesIn(v, `${path}.${k}`));
  return [];
}

describe('labTopology addresses', () => {
  const lab = labTopology('wgl', '/tmp/x');
  const cidr = (ip: string, prefix: number) => ipaddr.parseCIDR(`${ip}/${prefix}`);
  const inside = (ip: string, subnet: string) => {
    const addr = ipaddr.parse(ip);
    const net = ipaddr.parseCIDR(subnet);
    return addr.kind() === net[0].kind() && addr.match(net);
  };

  it('uses documentation prefixes only', () => {
    const found = addressesIn(lab);
    expect(found.length).toBeGreaterThan(30);
    expect(found.filter((a) => !isDocumentationAddress(a.ip))).toEqual([]);
    // URLs and the endpoint carry addresses too
    expect(isDocumentationAddress(lab.srv.endpoint.split(':')[0])).toBe(true);
  });

  it('puts every host address inside its subnet', () => {
    for (const c of Object.values(lab.cafes)) {
      expect(inside(c.lan.ipv4, c.lan.subnet4)).toBe(true);
      expect(inside(c.client.ipv4, c.lan.subnet4)).toBe(true);
      expect(inside(c.client.ipv6, c.lan.subnet6)).toBe(true);
      expect(c.client.gateway4).toBe(c.lan.ipv4);
    }
    expect(inside(lab.mac.vnic.ipv4, lab.mac.vnic.subnet4)).toBe(true);
    expect(inside(lab.vm.eth.ipv4, lab.mac.vnic.subnet4)).toBe(true);
    expect(lab.vm.eth.gateway4).toBe(lab.mac.vnic.ipv4);
    expect(inside(lab.vm.wireguard.address, lab.srv.wireguard.subnet)).toBe(true);
    expect(inside(lab.srv.wireguard.address, lab.srv.wireguard.subnet)).toBe(true);
    // IPv6 on the vnic (the Mac routes it to the VM) and in the tunnel (the VM's /128)
    expect(inside(lab.mac.vnic.ipv6, lab.mac.vnic.subnet6)).toBe(true);
    expect(inside(lab.vm.eth.ipv6!, lab.mac.vnic.subnet6)).toBe(true);
    expect(lab.vm.eth.gateway6).toBeUndefined(); // the VM's IPv6 leaves only through its tunnel
    expect(inside(lab.vm.wireguard.address6, lab.srv.wireguard.subnet6)).toBe(true);
    expect(inside(lab.srv.wireguard.address6, lab.srv.wireguard.subnet6)).toBe(true);
    expect(lab.vm.wireguard.prefix6).toBe(128);
    for (const host of [lab.srv.wan, lab.web.wan, lab.cafes.cafe1.wan, lab.cafes.cafe2.wan]) {
      const [net, bits] = cidr(host.ipv4, host.prefix4);
      expect(ipaddr.parse(host.gateway4).match(net, bits)).toBe(true);
    }
  });

  it('keeps the subnets disjoint', () => {
    const subnets = [
      lab.cafes.cafe1.lan.subnet4,
      lab.cafes.cafe2.lan.subnet4,
      lab.mac.vnic.subnet4,
      lab.srv.wireguard.subnet,
      lab.cafes.cafe1.lan.subnet6,
      lab.cafes.cafe2.lan.subnet6,
      lab.mac.vnic.subnet6,
      lab.srv.wireguard.subnet6,
      ...Object.values(lab.inet.ports).map((p) => `${p.ipv6}/${p.prefix6}`),
      ...Object.values(lab.inet.ports).map((p) => {
        const [net, bits] = cidr(p.ipv4, p.prefix4);
        return `${ipaddr.IPv4.networkAddressFromCIDR(`${net.toString()}/${bits}`).toString()}/${bits}`;
      }),
    ];
    for (const [i, a] of subnets.entries()) {
      for (const b of subnets.slice(i + 1)) {
        const [na] = ipaddr.parseCIDR(a);
        const [nb] = ipaddr.parseCIDR(b);
        expect(`${a} ∩ ${b}: ${inside(na.toString(), b) || inside(nb.toString(), a)}`).toBe(`${a} ∩ ${b}: false`);
      }
    }
  });
});
