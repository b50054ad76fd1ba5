import fc from 'fast-check';
import {
  NETSTAT_NETIF_WIDTHS,
  ParseError,
  classifyNetstatGateway,
  findDefaultGateway,
  netifMatches,
  normalizeNetstatIpv4Destination,
  normalizeNetstatIpv6Destination,
  parseNetstatRoutes,
  type DarwinFamily,
} from '@wgctl/parsers';

/** Lays out rows the way network_cmds prints them (`%-18s %-18s %-10.10s [%6u %8u ]%*s %6s`). */
function table(options: { refsUse?: boolean; netif: number; dst6?: number; gw6?: number }, v4: string[][], v6: string[][] = []): string {
  const row = (cols: string[], dst: number, gw: number): string => {
    const [d, g, f, netif, expire = '', refs = '1', use = '0'] = cols;
    const middle = options.refsUse ? `${refs.padStart(6)} ${use.padStart(8)} ` : '';
    return `${d.padEnd(dst)} ${g.padEnd(gw)} ${f.padEnd(10)} ${middle}${netif.padStart(options.netif)} ${expire.padStart(6)}`;
  };
  const header = (dst: number, gw: number): string =>
    `${'Destination'.padEnd(dst)} ${'Gateway'.padEnd(gw)} ${'Flags'.padEnd(10)} ${options.refsUse ? `${'Refs'.padStart(6)} ${'Use'.padStart(8)} ` : ''}${'Netif'.padStart(options.netif)} Expire`;
  const lines = ['Routing tables', '', 'Internet:', header(18, 18), ...v4.map((c) => row(c, 18, 18))];
  if (v6.length > 0) lines.push('', 'Internet6:', header(options.dst6 ?? 39, options.gw6 ?? 39), ...v6.map((c) => row(c, options.dst6 ?? 39, options.gw6 ?? 39)));
  return `${lines.join('\n')}\n`;
}

// A Mac with wgctl up: split routes via the VM, the server pinned to the original gateway.
const OURS_V4 = [
  ['0/1', '10.211.55.5', 'UGSc', 'bridge100'],
  ['default', '192.168.1.1', 'UGScg', 'en0'],
  ['default', '192.168.1.1', 'UGScIg', 'en0'],
  ['10.211.55/24', 'link#23', 'UC', 'bridge100', '!'],
  ['127', '127.0.0.1', 'UCS', 'lo0'],
  ['128.0/1', '10.211.55.5', 'UGSc', 'bridge100'],
  ['192.168.1.1', '0:1c:42:8a:1f:e', 'UHLWIir', 'en0', '1199'],
  ['203.0.113.10', '192.168.1.1', 'UGHS', 'en0'],
  ['224.0.0/4', 'link#6', 'UmCS', 'en0', '!'],
];
const OURS_V6 = [
  ['default', 'fe80::1%en0', 'UGcg', 'en0'],
  ['default', 'fe80::%utun0', 'UGcIg', 'utun0'],
  ['::/1', 'fe80::1%bridge100', 'UGSc', 'bridge100'],
  ['::1', '::1', 'UHL', 'lo0'],
  ['2001:db8:1::/64', 'link#6', 'UC', 'en0'],
  ['8000::/1', 'fe80::1%bridge100', 'UGSc', 'bridge100'],
  ['fe80::%en0/64', 'link#6', 'UCI', 'en0'],
];

describe('parseNetstatRoutes layouts', () => {
  const layouts = {
    'Mojave (Refs/Use, Netif 7/8)': { refsUse: true, netif: 7, gw6: 31 },
    'Catalina/Big Sur (Netif 7/8)': { netif: 7, gw6: 31 },
    'Monterey/Ventura (Netif 10)': { netif: 10, gw6: 31 },
    'Sonoma+ (Netif 14, IPv6 gateway 39)': { netif: 14, gw6: 39 },
  };
  for (const [name, layout] of Object.entries(layouts)) {
    it(`reads ${name} by its header`, () => {
      const routes = parseNetstatRoutes(table(layout, OURS_V4, OURS_V6));
      expect(routes).toHaveLength(OURS_V4.length + OURS_V6.length);
      expect(routes.map((r) => [r.family, r.destination, r.netif])).toEqual([
        ['inet', '0.0.0.0/1', 'bridge100'],
        ['inet', '0.0.0.0/0', 'en0'],
        ['inet', '0.0.0.0/0', 'en0'],
        ['inet', '10.211.55.0/24', 'bridge100'],
        ['inet', '127.0.0.0/8', 'lo0'],
        ['inet', '128.0.0.0/1', 'bridge100'],
        ['inet', '192.168.1.1/32', 'en0'],
        ['inet', '203.0.113.10/32', 'en0'],
        ['inet', '224.0.0.0/4', 'en0'],
        ['inet6', '::/0', 'en0'],
        ['inet6', '::/0', 'utun0'],
        ['inet6', '::/1', 'bridge100'],
        ['inet6', '::1/128', 'lo0'],
        ['inet6', '2001:db8:1::/64', 'en0'],
        ['inet6', '8000::/1', 'bridge100'],
        ['inet6', 'fe80::/64', 'en0'],
      ]);
      expect(routes[3].expire).toBe('expired');
      expect(routes[6]).toMatchObject({ expire: 1199, gateway: { kind: 'mac', mac: '00:1c:42:8a:1f:0e' } });
      expect(routes[0].refs).toBe(layout === layouts['Mojave (Refs/Use, Netif 7/8)'] ? 1 : undefined);
      // Not fooled by our /1 halves (0/1 sorts before default) nor by the pinned server route.
      expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '192.168.1.1', interface: 'en0', source: 'unscoped' });
      expect(findDefaultGateway(routes, 'inet6')).toMatchObject({ gateway: 'fe80::1%en0', interface: 'en0' });
    });
  }

  it('reads `netstat -rn -f inet` style output with a header but no section title', () => {
    const text = table({ netif: 14 }, OURS_V4).split('\n').slice(3).join('\n');
    expect(text.startsWith('Destination')).toBe(true);
    const routes = parseNetstatRoutes(text);
    expect(routes.every((r) => r.family === 'inet')).toBe(true);
    expect(findDefaultGateway(routes, 'inet')?.gateway).toBe('192.168.1.1');
  });

  it('infers the columns of `netstat -rn | grep default` (no header at all, either family, either layout)', () => {
    const grepped = [
      'default            192.168.1.1        UGSc           12        0     en0',
      'default            10.0.0.1           UGScI           0        0     en7   1200',
      'default            192.168.1.1        UGScg             en0       ',
      'default                                 fe80::1%en0                     UGcg            en0       ',
      'default                                 link#19                         UCSIg         utun3       ',
      'default            link#19            UCSIg         utun3       ',
    ].join('\n');
    const routes = parseNetstatRoutes(grepped);
    expect(routes.map((r) => [r.family, r.gateway.kind, r.netif, r.refs ?? null, r.expire ?? null])).toEqual([
      ['inet', 'ip', 'en0', 12, null],
      ['inet', 'ip', 'en7', 0, 1200],
      ['inet', 'ip', 'en0', null, null],
      ['inet6', 'ip', 'en0', null, null],
      ['inet6', 'link', 'utun3', null, null], // only its column position says IPv6
      ['inet', 'link', 'utun3', null, null],
    ]);
  });

  it('reads the `netstat -rnl` layout (RT_IFA, Refs, Use, Mtu)', () => {
    const text = [
      'Internet:',
      'Destination        Gateway            RT_IFA             Flags        Refs      Use    Mtu          Netif Expire',
      'default            192.168.1.1        192.168.1.20       UGScg          12       30   1500            en0       ',
      '127                127.0.0.1          127.0.0.1          UCS             0        0  16384            lo0       ',
      '192.168.1.7/32     link#6                                UCS             0        0                   en0      !',
    ].join('\n');
    const routes = parseNetstatRoutes(text);
    expect(routes.map((r) => [r.destination, r.refs, r.use, r.mtu ?? null, r.netif, r.expire ?? null])).toEqual([
      ['0.0.0.0/0', 12, 30, 1500, 'en0', null],
      ['127.0.0.0/8', 0, 0, 16384, 'lo0', null],
      ['192.168.1.7/32', 0, 0, null, 'en0', 'expired'],
    ]);
  });

  it('refuses rows it cannot read, naming the line', () => {
    expect(() => parseNetstatRoutes('Internet:\nDestination Gateway Flags Netif Expire\ndefault 192.168.1.1\n')).toThrow(/line 3/);
    expect(() => parseNetstatRoutes('default 192.168.1.1 UGSc en0 123 extra stuff\n')).toThrow(ParseError);
    expect(() => parseNetstatRoutes('Destination Flags\n')).toThrow(/header/);
    expect(() => parseNetstatRoutes('There is nothing here\n')).toThrow(ParseError);
    expect(parseNetstatRoutes('')).toEqual([]);
  });
});

describe('netstat destinations and gateways', () => {
  it.each([
    ['default', '0.0.0.0/0'],
    ['127', '127.0.0.0/8'],
    ['169.254', '169.254.0.0/16'],
    ['192.168.1', '192.168.1.0/24'],
    ['10.211.55/24', '10.211.55.0/24'],
    ['100.64/10', '100.64.0.0/10'],
    ['12/7', '12.0.0.0/7'],
    ['0/1', '0.0.0.0/1'],
    ['128.0/1', '128.0.0.0/1'],
    ['224.0.0/4', '224.0.0.0/4'],
    ['192.168.1.1', '192.168.1.1/32'],
    ['192.168.1.1/32', '192.168.1.1/32'],
    ['10.0.0&0xff00ff00', null], // non-contiguous mask
    ['10.0&0xffff0000', '10.0.0.0/16'],
    ['localhost', null],
    ['300.1', null],
  ])('IPv4 %s → %s', (text, cidr) => {
    expect(normalizeNetstatIpv4Destination(text)).toBe(cidr);
  });

  it.each([
    ['default', { cidr: '::/0' }],
    ['fe80::%en0/64', { cidr: 'fe80::/64', scope: 'en0' }],
    ['ff02::%utun3/32', { cidr: 'ff02::/32', scope: 'utun3' }],
    ['2001:DB8:0::1', { cidr: '2001:db8::1/128' }],
    ['::/1', { cidr: '::/1' }],
    ['2001:db8::/129', null],
    ['fe80::1%', { cidr: 'fe80::1/128' }],
  ])('IPv6 %s', (text, expected) => {
    expect(normalizeNetstatIpv6Destination(text)).toEqual(expected);
  });

  it.each([
    ['192.168.1.1', 'ip'],
    ['fe80::1%en0', 'ip'],
    ['link#17', 'link'],
    ['0:1c:42:8a:1f:e', 'mac'],
    ['utun4', 'interface'],
    ['router.lan', 'name'],
  ])('gateway %s is %s', (text, kind) => {
    expect(classifyNetstatGateway(text).kind).toBe(kind);
  });
});

describe('findDefaultGateway', () => {
  const routes = (rows: string[][], v6: string[][] = []) => parseNetstatRoutes(table({ netif: 14 }, rows, v6));

  it('takes the unscoped default among several defaults', () => {
    const found = findDefaultGateway(
      routes([
        ['default', '10.0.0.1', 'UGScIg', 'en7'],
        ['default', '192.168.1.1', 'UGScg', 'en0'],
        ['default', '192.168.1.1', 'UGScIg', 'en0'],
        ['default', 'link#19', 'UCSIg', 'utun3'],
      ]),
      'inet',
    );
    expect(found).toMatchObject({ gateway: '192.168.1.1', interface: 'en0', source: 'unscoped' });
    expect(found?.displacedBy).toBeUndefined();
  });

  it('falls back to the scoped physical default when another VPN owns the default (utun with an IP gateway)', () => {
    const found = findDefaultGateway(
      routes([
        ['default', '10.8.0.1', 'UGSc', 'utun4'],
        ['default', '172.16.5.1', 'UGScI', 'utun4'],
        ['default', '192.168.1.1', 'UGScIg', 'en0'],
      ]),
      'inet',
    );
    expect(found).toMatchObject({ gateway: '192.168.1.1', interface: 'en0', source: 'scoped-fallback', displacedBy: { interface: 'utun4', gateway: '10.8.0.1' } });
  });

  it('returns null with no physical default at all, and honours ignoreInterfaces', () => {
    expect(findDefaultGateway(routes([['default', 'link#19', 'UCSg', 'utun3']]), 'inet')).toBeNull();
    expect(findDefaultGateway(routes([['127', '127.0.0.1', 'UCS', 'lo0']]), 'inet')).toBeNull();
    const table2 = routes([
      ['default', '192.168.2.1', 'UGScg', 'en9'],
      ['default', '192.168.1.1', 'UGScIg', 'en0'],
    ]);
    expect(findDefaultGateway(table2, 'inet', { ignoreInterfaces: ['en9'] })).toMatchObject({ interface: 'en0', source: 'scoped-fallback' });
  });

  it('does not take the VM bridge as the uplink', () => {
    expect(findDefaultGateway(routes([['default', '192.168.64.1', 'UGScg', 'bridge100']]), 'inet')).toBeNull();
  });

  it('does not take the VM bridge as the uplink when netstat cut its name (macOS 11 and earlier: bridge1, bridge10)', () => {
    const bigSur = parseNetstatRoutes(table({ netif: 7 }, [['default', '192.168.64.1', 'UGScg', 'bridge1'], ['default', '192.168.1.1', 'UGScIg', 'en0']]));
    expect(findDefaultGateway(bigSur, 'inet')).toMatchObject({ interface: 'en0', source: 'scoped-fallback' });
    const v6 = parseNetstatRoutes(table({ netif: 7 }, [['default', '192.168.1.1', 'UGScg', 'en0']], [['default', 'fe80::1%bridge100', 'UGcg', 'bridge10']]));
    expect(findDefaultGateway(v6, 'inet6')).toBeNull();
  });
});

describe('netifMatches (Netif cut to 7/8, 10 or 14 columns)', () => {
  it.each([
    // Printed whole at every width: certain.
    ['en0', 'en0', 'inet', 'exact'],
    ['vnic0', 'vnic0', 'inet', 'exact'],
    ['utun10', 'utun10', 'inet', 'exact'],
    ['bridge100', 'bridge100', 'inet', 'exact'], // macOS 12+: 9 is no width, nothing longer prints so
    ['bridge100', 'bridge100', 'inet6', 'exact'],
    ['bridge10', 'bridge10', 'inet', 'exact'], // 8 is a width for inet6 only
    // Cut to 7 (inet, macOS 10.13–11): bridge1 could be bridge1, bridge100, bridge101…
    ['bridge1', 'bridge100', 'inet', 'ambiguous'],
    ['bridge1', 'bridge101', 'inet', 'ambiguous'],
    ['bridge1', 'bridge1', 'inet', 'ambiguous'], // exactly 7: bridge100 prints the same
    ['utun100', 'utun1000', 'inet', 'ambiguous'],
    // Cut to 8 (inet6, macOS 10.13–11), not to 7.
    ['bridge10', 'bridge100', 'inet6', 'ambiguous'],
    ['bridge10', 'bridge10', 'inet6', 'ambiguous'],
    ['bridge1', 'bridge100', 'inet6', 'no'],
    ['bridge10', 'bridge100', 'inet', 'no'],
    // Cut to 10 (macOS 12–13) and 14 (macOS 14+; names go up to 15 characters).
    ['bridge1000', 'bridge10000', 'inet', 'ambiguous'],
    ['bridge1000', 'bridge1000', 'inet6', 'ambiguous'],
    ['vmenet12345678', 'vmenet123456789', 'inet', 'ambiguous'],
    ['vmenet12345678', 'vmenet12345678', 'inet6', 'ambiguous'],
    ['vmenet12345', 'vmenet123456789', 'inet', 'no'], // 11 is no width
    // Different interfaces.
    ['vnic0', 'vnic1', 'inet', 'no'],
    ['utun1', 'utun10', 'inet', 'no'], // utun10 is never cut: utun1 is utun1
    ['utun10', 'utun1', 'inet', 'no'],
    ['bridge0', 'bridge100', 'inet', 'no'],
    ['bridge101', 'bridge100', 'inet', 'no'],
    ['bridge', 'bridge100', 'inet', 'no'], // shorter than any width bridge100 is cut to
    ['bridge1000', 'bridge100', 'inet', 'no'],
    ['', '', 'inet', 'no'],
  ] as [string, string, DarwinFamily, string][])('%s as %s (%s): %s', (shown, wanted, family, expected) => {
    expect(netifMatches(shown, wanted, family)).toBe(expected);
  });

  it('is told the Netif as parseNetstatRoutes reads it from a Big Sur row (`%7.7s`)', () => {
    const row = `${'0/1'.padEnd(18)} ${'10.211.55.5'.padEnd(18)} ${'UGSc'.padEnd(10)} ${'bridge100'.slice(0, 7).padStart(7)}`;
    const [route] = parseNetstatRoutes(`Internet:\nDestination        Gateway            Flags        Netif Expire\n${row}\n`);
    expect(route.netif).toBe('bridge1');
    expect(netifMatches(route.netif, 'bridge100', route.family)).toBe('ambiguous');
    expect(netifMatches(route.netif, 'vnic0', route.family)).toBe('no');
  });

  describe('properties', () => {
    // Few letters and digits so that different names often share a cut.
    const name = fc
      .tuple(fc.constantFrom('bridge', 'utun', 'en', 'vnic', 'vmenet'), fc.array(fc.constantFrom('0', '1'), { minLength: 1, maxLength: 9 }))
      .map(([prefix, digits]) => prefix + digits.join(''));
    const family = fc.constantFrom<DarwinFamily>('inet', 'inet6');
    const widthOf = (f: DarwinFamily) => fc.constantFrom(...NETSTAT_NETIF_WIDTHS[f]);
    /** What `%W.Ws` leaves of a name (the padding is whitespace, dropped by the parser). */
    const printed = (interfaceName: string, width: number) => interfaceName.slice(0, width);

    it('an interface as netstat prints it at any width matches it', () => {
      fc.assert(
        fc.property(name, family.chain((f) => fc.tuple(fc.constant(f), widthOf(f))), (wanted, [f, width]) => {
          const match = netifMatches(printed(wanted, width), wanted, f);
          expect(match).not.toBe('no');
          if (wanted.length > width) expect(match).toBe('ambiguous'); // a cut is never certain
        }),
        { numRuns: 500 },
      );
    });

    it('"exact" is never said of another interface printed at any width', () => {
      fc.assert(
        fc.property(name, name, family.chain((f) => fc.tuple(fc.constant(f), widthOf(f))), (actual, wanted, [f, width]) => {
          if (netifMatches(printed(actual, width), wanted, f) === 'exact') expect(actual).toBe(wanted);
        }),
        { numRuns: 2000 },
      );
    });

    it('"ambiguous" only when the printed name is as long as a width and is the wanted one cut or whole', () => {
      fc.assert(
        fc.property(name, name, family, (shown, wanted, f) => {
          if (netifMatches(shown, wanted, f) !== 'ambiguous') return;
          expect(NETSTAT_NETIF_WIDTHS[f]).toContain(shown.length);
          expect(wanted.startsWith(shown)).toBe(true);
        }),
        { numRuns: 2000 },
      );
    });
  });
});
