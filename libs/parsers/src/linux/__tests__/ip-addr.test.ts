import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseIpAddrJson, primaryIpAddress } from '../ip-addr';

const fixture = (name: string) => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

describe('parseIpAddrJson', () => {
  it('reads a real `ip -j addr`', () => {
    const links = parseIpAddrJson(fixture('ip-addr.json'));
    expect(links.map((l) => l.ifname)).toEqual(['lo', 'wtmx0']);
    const wtm = links[1];
    expect(wtm.flags).toContain('UP');
    expect(primaryIpAddress(wtm, 'inet')).toMatchObject({ local: '192.0.2.2', prefixlen: 26 });
    expect(primaryIpAddress(wtm, 'inet6')).toMatchObject({ local: '2001:db8:a::2', prefixlen: 64 });
    expect(primaryIpAddress(links[0], 'inet')).toBeUndefined(); // 127.0.0.1 is scope host
  });

  it('ignores tentative and link-local addresses when choosing the primary one', () => {
    const [link] = parseIpAddrJson(
      JSON.stringify([
        {
          ifindex: 4,
          ifname: 'v',
          flags: ['UP'],
          addr_info: [
            { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
            { family: 'inet6', local: '2001:db8::1', prefixlen: 64, scope: 'global', tentative: true },
            { family: 'inet6', local: '2001:db8::2', prefixlen: 64, scope: 'global' },
          ],
        },
      ]),
    );
    expect(link.addresses[1].flags).toEqual(['tentative']);
    expect(primaryIpAddress(link, 'inet6')?.local).toBe('2001:db8::2');
  });

  it('keeps every address it is given (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 32 })), { maxLength: 5 }), (addrs) => {
        const json = JSON.stringify([
          { ifindex: 2, ifname: 'eth0', flags: [], addr_info: addrs.map(([local, prefixlen]) => ({ family: 'inet', local, prefixlen, scope: 'global' })) },
        ]);
        const [link] = parseIpAddrJson(json);
        expect(link.addresses.map((a) => [a.local, a.prefixlen])).toEqual(addrs);
      }),
    );
  });

  it('rejects non-JSON', () => {
    expect(() => parseIpAddrJson('2: eth0: <UP>')).toThrow(/not JSON/);
  });
});
