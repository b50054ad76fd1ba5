/**
 * DarwinDriver.readRoutes when netstat cuts the Netif column (7 wide for IPv4 and 8 for IPv6
 * up to macOS 11, 10 on 12–13, 14 from 14): bridge100 prints as `bridge1`, which bridge101
 * also prints as, so such a row is confirmed with `route -n get` (full names) before it counts.
 * Tables and answers are laid out like the real captures in libs/parsers/src/darwin/__fixtures__.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScriptedRunner, type ScriptedCall } from '@wgctl/runner';
import { DarwinDriver } from '../darwin';
import type { RouteSpec } from '../driver';

const FIXTURES = join(__dirname, '../../../../../libs/parsers/src/darwin/__fixtures__');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const driver = () => new DarwinDriver({ stateDir: '/Library/Application Support/wgctl/mac-agent' });

async function play<T>(script: ScriptedCall[], fn: (run: ScriptedRunner) => Promise<T>): Promise<{ result: T; argv: (readonly string[])[] }> {
  const run = new ScriptedRunner(script);
  const result = await fn(run);
  run.assertDone();
  return { result, argv: run.calls.map((c) => c.argv) };
}

/**
 * A `netstat -rn` row as network_cmds prints it: `%-18s %-18s %-10.10s %*.*s` for IPv4 and
 * `%-39s %-31s …` for IPv6 up to macOS 13 (39 for both from 14), Netif cut to `netifWidth`.
 */
function netstatRow(family: 'inet' | 'inet6', netifWidth: number, [destination, gateway, flags, netif]: string[], gatewayWidth = 31): string {
  const [dst, gw] = family === 'inet' ? [18, 18] : [39, gatewayWidth];
  return `${destination.padEnd(dst)} ${gateway.padEnd(gw)} ${flags.padEnd(10)} ${netif.slice(0, netifWidth).padStart(netifWidth)}`;
}

function netstatHeader(family: 'inet' | 'inet6', netifWidth: number, gatewayWidth = 31): string {
  return netstatRow(family, netifWidth, ['Destination', 'Gateway', 'Flags', 'Netif'], gatewayWidth).replace(/Netif$/, 'Netif Expire');
}

/** A `route -n get` answer: right-aligned labels, then the metrics lines of the real capture. */
function routeGetAnswer(fields: { routeTo: string; destination: string; mask?: string; gateway?: string; interface: string; flags: string }): string {
  const metrics = fixture('route-get-host-real-world-systems.txt').split('\n').slice(-3).join('\n');
  const line = (label: string, value: string | undefined) => (value === undefined ? [] : [`${label.padStart(11)}: ${value}`]);
  return [
    ...line('route to', fields.routeTo),
    ...line('destination', fields.destination),
    ...line('mask', fields.mask),
    ...line('gateway', fields.gateway),
    ...line('interface', fields.interface),
    ...line('flags', fields.flags),
    metrics,
  ].join('\n');
}

const VM = '10.211.55.5';
const VM6 = 'fd00::5';
const SPLIT: RouteSpec[] = [
  { destination: '0.0.0.0/1', gateway: VM, interface: 'bridge100' },
  { destination: '128.0.0.0/1', gateway: VM, interface: 'bridge100' },
];
const PIN: RouteSpec = { destination: '203.0.113.10/32', gateway: '192.168.0.1', interface: 'en0' };

const lowerHalf = (iface: string) =>
  routeGetAnswer({ routeTo: 'default', destination: 'default', mask: '128.0.0.0', gateway: VM, interface: iface, flags: '<UP,GATEWAY,DONE,STATIC,PRCLONING>' });
const upperHalf = (iface: string) =>
  routeGetAnswer({ routeTo: '128.0.0.0', destination: '128.0.0.0', mask: '128.0.0.0', gateway: VM, interface: iface, flags: '<UP,GATEWAY,DONE,STATIC,PRCLONING>' });

const GET_LOWER = ['route', '-n', 'get', '-inet', '0.0.0.0/1'];
const GET_UPPER = ['route', '-n', 'get', '-inet', '128.0.0.0/1'];

describe('the test layouts are the real captures\' layouts', () => {
  it('Big Sur IPv4 (Netif 7), old IPv6 (Netif 8), Ventura (Netif 10), route get', () => {
    const bigSur = fixture('netstat-rn-bigsur-11.3-default-hatenablog.txt').split('\n');
    expect(netstatHeader('inet', 7)).toBe(bigSur[3]);
    expect(netstatRow('inet', 7, ['default', '192.168.0.1', 'UGScg', 'en0'])).toBe(bigSur[4]);
    const inet6 = fixture('netstat-rn-inet6-openwrt-blog-excerpt.txt').split('\n');
    expect(netstatHeader('inet6', 8)).toBe(inet6[1]);
    expect(netstatRow('inet6', 8, ['default', 'fe80::e6f4:c6ff:fee9:d5a%en0', 'UGc', 'en0'])).toBe(inet6[2]);
    const ventura = fixture('netstat-rn-vpn-default-scoped-jackpal-gateway.txt').split('\n');
    expect(netstatHeader('inet', 10)).toBe(ventura[3]);
    expect(netstatRow('inet', 10, ['default', 'link#17', 'UCSg', 'utun3'])).toBe(ventura[4]);
    const answer = routeGetAnswer({
      routeTo: '192.0.43.10',
      destination: 'default',
      mask: 'default',
      gateway: '192.168.1.1',
      interface: 'en1',
      flags: '<UP,GATEWAY,DONE,STATIC,PRCLONING>',
    });
    expect(answer).toBe(fixture('route-get-host-real-world-systems.txt'));
  });
});

describe('DarwinDriver.readRoutes with a Big Sur table (Netif cut to 7)', () => {
  // The real Big Sur capture plus what Up adds; 0/1 sorts before default, as netstat prints it.
  const [title, blank, section, header, defaultRow] = fixture('netstat-rn-bigsur-11.3-default-hatenablog.txt').split('\n');
  const bigSur = [
    title,
    blank,
    section,
    header,
    netstatRow('inet', 7, ['0/1', VM, 'UGSc', 'bridge100']),
    defaultRow,
    netstatRow('inet', 7, ['10.211.55/24', 'link#23', 'UC', 'bridge100']),
    netstatRow('inet', 7, ['128.0/1', VM, 'UGSc', 'bridge100']),
    netstatRow('inet', 7, ['203.0.113.10', '192.168.0.1', 'UGHS', 'en0']),
    '',
  ].join('\n');

  it('the table shows bridge100 as `bridge1`', () => {
    expect(bigSur).toContain('0/1                10.211.55.5        UGSc       bridge1\n');
  });

  it('confirms the ambiguous split routes with route get (bridge100), and only those', async () => {
    const { result, argv } = await play(
      [
        { argv: ['netstat', '-rn'], stdout: bigSur },
        { argv: GET_LOWER, stdout: lowerHalf('bridge100') },
        { argv: GET_UPPER, stdout: upperHalf('bridge100') },
      ],
      (run) => driver().readRoutes(run, [PIN, ...SPLIT]),
    );
    expect(argv).toEqual([['netstat', '-rn'], GET_LOWER, GET_UPPER]); // none for the pin: en0 is never cut
    expect(result).toEqual([
      { ...PIN, present: true, evidence: '203.0.113.10 192.168.0.1 UGHS en0' },
      {
        ...SPLIT[0],
        present: true,
        evidence: '0/1 10.211.55.5 UGSc bridge1 (confirmed: route -n get -inet 0.0.0.0/1 shows 0.0.0.0/1 via 10.211.55.5 dev bridge100)',
      },
      {
        ...SPLIT[1],
        present: true,
        evidence: '128.0/1 10.211.55.5 UGSc bridge1 (confirmed: route -n get -inet 128.0.0.0/1 shows 128.0.0.0/1 via 10.211.55.5 dev bridge100)',
      },
    ]);
  });

  it.each([
    ['another bridge (bridge101)', { stdout: lowerHalf('bridge101') }, 'route -n get -inet 0.0.0.0/1 shows 0.0.0.0/1 via 10.211.55.5 dev bridge101'],
    [
      'route get failing (nothing on stdout, exit 0)',
      { stdout: '', stderr: 'route: writing to routing socket: not in table\n' },
      'route -n get -inet 0.0.0.0/1 found no such route (not in table)',
    ],
    ['route get exiting non-zero', { exitCode: 1 }, 'route -n get -inet 0.0.0.0/1 found no such route'],
    [
      'the default route (`destination: default` again, but `mask: default`)',
      { stdout: lowerHalf('bridge100').replace('mask: 128.0.0.0', 'mask: default') },
      'route -n get -inet 0.0.0.0/1 shows 0.0.0.0/0 via 10.211.55.5 dev bridge100',
    ],
    [
      'another gateway',
      { stdout: lowerHalf('bridge100').replace(`gateway: ${VM}`, 'gateway: 10.211.55.6') },
      'route -n get -inet 0.0.0.0/1 shows 0.0.0.0/1 via 10.211.55.6 dev bridge100',
    ],
    [
      'a scoped route',
      { stdout: lowerHalf('bridge100').replace('STATIC,', 'STATIC,IFSCOPE,') },
      'route -n get -inet 0.0.0.0/1 shows 0.0.0.0/1 via 10.211.55.5 dev bridge100 (scoped)',
    ],
    ['an answer it cannot read', { stdout: '   route to: default\n' }, 'route -n get -inet 0.0.0.0/1 answered unreadably'],
  ])('absent when route get shows %s', async (_name, reply, evidence) => {
    const { result } = await play(
      [
        { argv: ['netstat', '-rn'], stdout: bigSur },
        { argv: GET_LOWER, ...reply },
        { argv: GET_UPPER, stdout: upperHalf('bridge100') },
      ],
      (run) => driver().readRoutes(run, SPLIT),
    );
    expect(result.map((r) => r.present)).toEqual([false, true]);
    expect(result[0].evidence).toContain(`0/1 10.211.55.5 UGSc bridge1 (not confirmed: ${evidence}`);
  });

  it('a host route on an interface named exactly 7 long (Thunderbolt bridge0): route get -host', async () => {
    const viaBridge0 = { destination: '203.0.113.10/32', gateway: '192.168.2.1', interface: 'bridge0' };
    const pinRow = (gateway: string, netif: string) => netstatRow('inet', 7, ['203.0.113.10', gateway, 'UGHS', netif]);
    const table = bigSur.replace(pinRow('192.168.0.1', 'en0'), pinRow('192.168.2.1', 'bridge0'));
    const getHost = ['route', '-n', 'get', '-inet', '-host', '203.0.113.10'];
    const pinned = routeGetAnswer({
      routeTo: '203.0.113.10',
      destination: '203.0.113.10',
      gateway: '192.168.2.1',
      interface: 'bridge0',
      flags: '<UP,GATEWAY,HOST,DONE,STATIC>',
    });
    const { result, argv } = await play(
      [
        { argv: ['netstat', '-rn'], stdout: table },
        { argv: getHost, stdout: pinned },
      ],
      (run) => driver().readRoutes(run, [viaBridge0]),
    );
    expect(argv).toEqual([['netstat', '-rn'], getHost]);
    expect(result[0]).toEqual({
      ...viaBridge0,
      present: true,
      evidence: '203.0.113.10 192.168.2.1 UGHS bridge0 (confirmed: route -n get -inet -host 203.0.113.10 shows 203.0.113.10/32 via 192.168.2.1 dev bridge0)',
    });

    // A host lookup is longest-match: gone meanwhile, route get answers with the covering half.
    const { result: gone } = await play(
      [
        { argv: ['netstat', '-rn'], stdout: table },
        { argv: getHost, stdout: upperHalf('bridge100').replace('route to: 128.0.0.0', 'route to: 203.0.113.10') },
      ],
      (run) => driver().readRoutes(run, [viaBridge0]),
    );
    expect(gone[0]).toMatchObject({ present: false, evidence: expect.stringContaining('shows 128.0.0.0/1 via 10.211.55.5 dev bridge100') });
  });

  it('IPv6 (Netif cut to 8: `bridge10`): route get -inet6', async () => {
    const split6: RouteSpec[] = [
      { destination: '::/1', gateway: VM6, interface: 'bridge100' },
      { destination: '8000::/1', gateway: VM6, interface: 'bridge100' },
    ];
    const table = [
      bigSur.trimEnd(),
      '',
      'Internet6:',
      netstatHeader('inet6', 8),
      netstatRow('inet6', 8, ['::/1', VM6, 'UGSc', 'bridge100']),
      netstatRow('inet6', 8, ['8000::/1', VM6, 'UGSc', 'bridge100']),
      '',
    ].join('\n');
    const answer6 = (destination: string, mask: string, iface: string) =>
      routeGetAnswer({ routeTo: destination, destination, mask, gateway: VM6, interface: iface, flags: '<UP,GATEWAY,DONE,STATIC>' });
    const getLower6 = ['route', '-n', 'get', '-inet6', '::/1'];
    const getUpper6 = ['route', '-n', 'get', '-inet6', '8000::/1'];
    const { result, argv } = await play(
      [
        { argv: ['netstat', '-rn'], stdout: table },
        { argv: getLower6, stdout: answer6('default', '8000::', 'bridge100') },
        { argv: getUpper6, stdout: answer6('8000::', '8000::', 'bridge101') },
      ],
      (run) => driver().readRoutes(run, split6),
    );
    expect(argv).toEqual([['netstat', '-rn'], getLower6, getUpper6]);
    expect(result.map((r) => [r.present, r.evidence])).toEqual([
      [true, '::/1 fd00::5 UGSc bridge10 (confirmed: route -n get -inet6 ::/1 shows ::/1 via fd00::5 dev bridge100)'],
      [false, '8000::/1 fd00::5 UGSc bridge10 (not confirmed: route -n get -inet6 8000::/1 shows 8000::/1 via fd00::5 dev bridge101)'],
    ]);
  });

  it('a row for another interface altogether is absent without asking route get', async () => {
    const onVnic = bigSur.replace(/bridge1\n/g, '  vnic0\n');
    const { result, argv } = await play([{ argv: ['netstat', '-rn'], stdout: onVnic }], (run) => driver().readRoutes(run, SPLIT));
    expect(argv).toEqual([['netstat', '-rn']]);
    expect(result.map((r) => [r.present, r.evidence])).toEqual([
      [false, '0/1 10.211.55.5 UGSc vnic0'],
      [false, '128.0/1 10.211.55.5 UGSc vnic0'],
    ]);
  });
});

describe('DarwinDriver.readRoutes where bridge100 fits the Netif column', () => {
  it.each([
    ['macOS 14+ (Netif 14)', 14],
    ['macOS 12–13 (Netif 10)', 10],
  ])('%s: present from netstat alone, no route get', async (_name, width) => {
    const table = [
      'Routing tables',
      '',
      'Internet:',
      netstatHeader('inet', width),
      netstatRow('inet', width, ['0/1', VM, 'UGSc', 'bridge100']),
      netstatRow('inet', width, ['default', '192.168.0.1', 'UGScg', 'en0']),
      netstatRow('inet', width, ['128.0/1', VM, 'UGSc', 'bridge100']),
      netstatRow('inet', width, ['203.0.113.10', '192.168.0.1', 'UGHS', 'en0']),
      '',
    ].join('\n');
    const { result, argv } = await play([{ argv: ['netstat', '-rn'], stdout: table }], (run) =>
      driver().readRoutes(run, [...SPLIT, PIN, { ...SPLIT[0], interface: 'bridge101' }]),
    );
    expect(argv).toEqual([['netstat', '-rn']]);
    expect(result.map((r) => [r.interface, r.present, r.evidence])).toEqual([
      ['bridge100', true, '0/1 10.211.55.5 UGSc bridge100'],
      ['bridge100', true, '128.0/1 10.211.55.5 UGSc bridge100'],
      ['en0', true, '203.0.113.10 192.168.0.1 UGHS en0'],
      ['bridge101', false, '0/1 10.211.55.5 UGSc bridge100'],
    ]);
  });
});
