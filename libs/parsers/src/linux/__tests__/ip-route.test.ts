import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ParseError } from '../../errors';
import { formatIpRouteLine, normalizeIpRouteDestination, parseIpRouteJson, usableDefaultRoutes } from '../ip-route';

const fixture = (name: string) => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

describe('parseIpRouteJson', () => {
  it('reads a real `ip -j route show table main` and normalises destinations to CIDR', () => {
    const routes = parseIpRouteJson(fixture('ip-route-main.json'));
    expect(routes.map((r) => r.destination)).toEqual([
      '0.0.0.0/1',
      '0.0.0.0/0',
      '0.0.0.0/0',
      '192.0.2.0/26',
      '198.51.100.0/24',
      '198.51.100.128/25',
      '203.0.113.10/32',
    ]);
    expect(routes[2]).toMatchObject({ gateway: '192.0.2.5', dev: 'wtmx0', metric: 600, family: 'inet' });
    expect(routes[4].nexthops).toEqual([
      { gateway: '192.0.2.1', dev: 'wtmx0', weight: 1, flags: [] },
      { gateway: '192.0.2.3', dev: 'wtmx0', weight: 2, flags: [] },
    ]);
    expect(routes[5].type).toBe('unreachable');
  });

  it('formats each single-path route exactly as `ip route show` printed it', () => {
    for (const [json, text, family] of [
      ['ip-route-main.json', 'ip-route-main.txt', 'inet'],
      ['ip-6-route-main.json', 'ip-6-route-main.txt', 'inet6'],
    ] as const) {
      const routes = parseIpRouteJson(fixture(json), family).filter((r) => r.nexthops.length === 0);
      const lines = fixture(text)
        .split('\n')
        .filter((l) => l.trim() && !/^\s/.test(l) && !l.trim().endsWith('198.51.100.0/24'))
        .map((l) => l.trim());
      expect(routes.map(formatIpRouteLine)).toEqual(lines);
    }
  });

  it('reads IPv6 defaults and picks the usable default with the lowest metric', () => {
    const routes = parseIpRouteJson(fixture('ip-6-route-main.json'), 'inet6');
    const defaults = usableDefaultRoutes(routes);
    expect(defaults.map((r) => [r.gateway, r.metric])).toEqual([
      ['fe80::1', 50],
      ['2001:db8:a::1', 1024],
    ]);
    expect(usableDefaultRoutes(parseIpRouteJson(fixture('ip-route-main.json')))[0].gateway).toBe('192.0.2.1');
  });

  it('skips linkdown defaults', () => {
    const routes = parseIpRouteJson(
      JSON.stringify([
        { dst: 'default', gateway: '192.0.2.1', dev: 'a', flags: ['linkdown'] },
        { dst: 'default', gateway: '192.0.2.65', dev: 'b', metric: 700, flags: [] },
      ]),
    );
    expect(usableDefaultRoutes(routes).map((r) => r.dev)).toEqual(['b']);
  });

  it('reads `ip -j route get`', () => {
    const [route] = parseIpRouteJson(fixture('ip-route-get.json'));
    expect(route).toMatchObject({ destination: '198.51.100.7/32', prefsrc: '192.0.2.2' });
  });

  it('treats empty output as no routes and rejects garbage clearly', () => {
    expect(parseIpRouteJson('')).toEqual([]);
    expect(() => parseIpRouteJson('default via 1.2.3.4')).toThrow(ParseError);
    expect(() => parseIpRouteJson('{}')).toThrow(/array/);
    expect(() => parseIpRouteJson('[{"gateway":"192.0.2.1"}]')).toThrow(/no "dst"/);
    expect(() => parseIpRouteJson('[{"dst":"nonsense"}]')).toThrow(/not an address/);
  });

  it('normalises any IPv4 host or prefix (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.option(fc.integer({ min: 0, max: 32 }), { nil: undefined }), (ip, len) => {
        const dst = len === undefined ? ip : `${ip}/${len}`;
        const [route] = parseIpRouteJson(JSON.stringify([{ dst, gateway: '192.0.2.1', dev: 'eth0', flags: [] }]));
        expect(route.destination).toBe(`${ip}/${len ?? 32}`);
        expect(route.family).toBe('inet');
        expect(formatIpRouteLine(route)).toBe(`${len === undefined || len === 32 ? ip : dst} via 192.0.2.1 dev eth0`);
      }),
    );
  });

  it('normalises IPv6 destinations to their canonical form (property)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        expect(normalizeIpRouteDestination(ip, 'inet6')).toMatch(/\/128$/);
        expect(normalizeIpRouteDestination(`${ip}/64`, 'inet6').endsWith('/64')).toBe(true);
      }),
    );
  });

  it('a zone separator with no zone (fe80::%/64, found by the fuzzer) is a ParseError, not an ipaddr crash', () => {
    expect(() => normalizeIpRouteDestination('fe80::%/64', 'inet6')).toThrow(ParseError);
    expect(() => parseIpRouteJson(JSON.stringify([{ dst: 'fe80::%/64', dev: 'wtmx0', flags: [] }]), 'inet6')).toThrow(/not an address: "fe80::%\/64"/);
  });
});
