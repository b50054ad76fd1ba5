// The benchmark's generated tables must stay what the parsers accept, in every shape they
// cover: a parser change that rejects them would otherwise only show up as a failed bench run.
import { parseIpRouteJson, parseIptablesRules, parseNetstatRoutes, parsePfRules, parseWgDump, parseWgDumpAll } from '@wgctl/parsers';
import { ipRouteJson, iptablesS, netstatRn, pfctlRules, prng, wgDump, wgDumpAll } from './tables';

describe('benchmark tables', () => {
  it('are deterministic', () => {
    expect(wgDump(50)).toBe(wgDump(50));
    expect(netstatRn(50, true)).toBe(netstatRn(50, true));
    const a = prng(7);
    const b = prng(7);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });

  it('wg show dump: every peer parses, with both endpoint families, (none) and keepalive', () => {
    const dump = parseWgDump(wgDump(500));
    expect(dump.peers).toHaveLength(500);
    expect(dump.listenPort).toBe(51820);
    const families = new Set(dump.peers.map((p) => p.endpoint?.family ?? 'none'));
    expect(families).toEqual(new Set([4, 6, 'none']));
    expect(dump.peers.some((p) => p.hasPresharedKey)).toBe(true);
    expect(dump.peers.some((p) => p.persistentKeepalive === 25)).toBe(true);
    expect(Math.min(...dump.peers.map((p) => p.allowedIps.length))).toBeGreaterThanOrEqual(2);
  });

  it('wg show all dump: the same peers under wg0', () => {
    const all = parseWgDumpAll(wgDumpAll(300));
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ name: 'wg0', listenPort: 51820 });
    expect(all[0]!.peers).toEqual(parseWgDump(wgDump(300)).peers);
  });

  it('netstat -rn: both layouts, both families, the default route and expiring ARP entries', () => {
    for (const modern of [true, false]) {
      const routes = parseNetstatRoutes(netstatRn(500, modern));
      expect(routes).toHaveLength(500);
      expect(routes.filter((r) => r.family === 'inet6')).toHaveLength(100);
      expect(routes.find((r) => r.isDefault && r.family === 'inet')?.gateway).toMatchObject({ kind: 'ip', address: '192.0.2.1' });
      expect(routes.some((r) => r.gateway.kind === 'mac' && typeof r.expire === 'number')).toBe(true);
      expect(routes.some((r) => r.refs !== undefined)).toBe(!modern);
    }
  });

  it('pfctl -sr and -v -sr: every rule, counters under each in -v', () => {
    expect(parsePfRules(pfctlRules(300, false))).toHaveLength(300);
    const verbose = parsePfRules(pfctlRules(300, true));
    expect(verbose).toHaveLength(300);
    expect(verbose.every((r) => r.counters?.Evaluations !== undefined && r.counters.pid !== undefined)).toBe(true);
  });

  it('ip -j route and iptables -S: every entry', () => {
    expect(parseIpRouteJson(ipRouteJson(300))).toHaveLength(300);
    const rules = parseIptablesRules(iptablesS(300));
    expect(rules.rules).toHaveLength(300);
    expect(rules.chains.map((c) => c.name)).toEqual(['INPUT', 'FORWARD', 'OUTPUT', 'WGCTL-FWD']);
  });
});
