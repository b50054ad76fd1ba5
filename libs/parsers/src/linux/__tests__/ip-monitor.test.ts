import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ParseError } from '../../errors';
import { parseIpMonitorLine, parseIpMonitorLines, splitIpMonitorOutput } from '../ip-monitor';

const fixture = (name: string) => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

describe('ip monitor', () => {
  it('reads a real plain capture: routes, link and address events, Deleted prefixes', () => {
    const events = parseIpMonitorLines(fixture('ip-monitor.txt'));
    expect(events).toHaveLength(20);
    expect(events[0]).toMatchObject({ object: 'route', deleted: false, route: { destination: '0.0.0.0/1', gateway: '192.0.2.1', dev: 'wtmx0' } });
    expect(events[1]).toMatchObject({ object: 'route', route: { destination: '203.0.113.10/32' } });
    expect(events[2]).toMatchObject({ object: 'route', deleted: true, route: { destination: '0.0.0.0/0', gateway: '192.0.2.1' } });
    expect(events[3]).toMatchObject({ route: { destination: '0.0.0.0/0', gateway: '192.0.2.3', metric: 100 } });
    expect(events[5]).toMatchObject({ object: 'address', address: { ifname: 'wtmx0', family: 'inet6', local: '2001:db8:a::2', prefixlen: 64 } });
    expect(events[6]).toMatchObject({ route: { family: 'inet6', destination: '::/0', gateway: '2001:db8:a::1' } });
    expect(events[7]).toMatchObject({ object: 'link', link: { ifindex: 2, ifname: 'wtmx1', state: 'DOWN', flags: ['BROADCAST', 'MULTICAST'] } });
    expect(events[9]).toMatchObject({ deleted: true, route: { type: 'local', table: 'local' } });
    expect(events[13]).toMatchObject({ object: 'address', deleted: true, address: { local: '192.0.2.2', prefixlen: 26, scope: 'global' } });
    expect(events[14]).toMatchObject({ deleted: true, route: { destination: '192.0.2.0/26', flags: ['linkdown'] } });
  });

  it('reads `ip -o monitor label` to the same events as the plain form', () => {
    const plain = parseIpMonitorLines(fixture('ip-monitor.txt'));
    const oneline = fixture('ip-monitor-oneline-label.txt')
      .split('\n')
      .filter(Boolean)
      .map(parseIpMonitorLine);
    const strip = (e: object) => ({ ...e, line: undefined });
    expect(oneline.map(strip)).toEqual(plain.map(strip));
  });

  it('groups indented continuation lines with their event', () => {
    const blocks = splitIpMonitorOutput('3: eth0    inet 192.0.2.2/24 scope global eth0\n       valid_lft forever preferred_lft forever\ndefault via 192.0.2.1 dev eth0\n');
    expect(blocks).toHaveLength(2);
  });

  it('tells neighbour events from routes and rejects unreadable labelled events', () => {
    expect(parseIpMonitorLine('192.0.2.1 dev eth0 lladdr 2e:a4:93:48:59:6a REACHABLE').object).toBe('other');
    expect(parseIpMonitorLine('[NEIGH]192.0.2.1 dev eth0 lladdr 2e:a4:93:48:59:6a STALE').object).toBe('other');
    expect(() => parseIpMonitorLine('[ROUTE]garbage here')).toThrow(ParseError);
    expect(() => parseIpMonitorLine('   ')).toThrow(ParseError);
  });

  it('reads any generated IPv4 route event (property)', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.option(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })), { nil: undefined }),
        fc.ipV4(),
        fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/),
        fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
        (deleted, dst, via, dev, metric) => {
          const dstText = dst ? `${dst[0]}/${dst[1]}` : 'default';
          const line = `${deleted ? 'Deleted ' : ''}${dstText} via ${via} dev ${dev}${metric === undefined ? '' : ` metric ${metric}`} `;
          const event = parseIpMonitorLine(line);
          expect(event).toMatchObject({
            object: 'route',
            deleted,
            route: { family: 'inet', destination: dst ? dstText : '0.0.0.0/0', gateway: via, dev, metric },
          });
        },
      ),
    );
  });
});
