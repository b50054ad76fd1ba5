/**
 * DarwinDriver.readRoutingTable: one `netstat -rn` (the very command discoverUplink runs), the
 * read-back readRoutes gives where netstat settles it (`unsure` where only `route -n get`
 * could), and a fingerprint that ignores our routes and what moves on a Mac by itself (ARP and
 * NDP entries, cloned routes, the Refs/Use/Expire columns) but changes with anything discover
 * depends on. Tables are the real captures in libs/parsers/src/darwin/__fixtures__.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuleRunner, SharedReadRunner } from '@wgctl/runner';
import { DarwinDriver } from '../darwin';
import type { RouteSpec } from '../driver';

const FIXTURES = join(__dirname, '../../../../../libs/parsers/src/darwin/__fixtures__');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

/** Mojave, with the Refs/Use columns, ARP and NDP entries and four IPv6 defaults (en1 and three utun). */
const MOJAVE = fixture('netstat-rn-mojave-with-inet6-evidence-pack.txt');
const driver = () => new DarwinDriver({ stateDir: '/Library/Application Support/wgctl/mac-agent' });

function tables(netstat: string): RuleRunner {
  return new RuleRunner([
    { match: (a) => a.join(' ') === 'netstat -rn', reply: { stdout: netstat } },
    { match: (a) => a.join(' ') === 'ifconfig', reply: { stdout: fixture('ifconfig-lo0-en-mojave-evidence-pack.txt') } },
  ]);
}

/** A Mojave row (Refs/Use columns) as that capture lays them out. */
const row = (destination: string, gateway: string, flags: string, refs: number, use: number, netif: string, expire = '') =>
  `${destination.padEnd(18)} ${gateway.padEnd(18)} ${flags.padEnd(10)} ${String(refs).padStart(6)} ${String(use).padStart(8)} ${netif.padStart(7)} ${expire.padStart(6)}`.trimEnd();
/** Rows inserted after the IPv4 default (the table's first row). */
const withRows = (rows: string[], base = MOJAVE) => base.replace(/^(default {12}192\.168\.1\.1 .*)$/m, (line) => [line, ...rows].join('\n'));
const withoutLine = (pattern: RegExp, base = MOJAVE) => base.replace(pattern, '');

/** What Up adds on that Mac: the pin via the uplink, the /1s via the vnic. */
const PIN = row('203.0.113.10', '192.168.1.1', 'UGHS', 0, 0, 'en1');
const SPLITS = [row('0/1', '10.211.55.5', 'UGSc', 0, 0, 'bridge100'), row('128.0/1', '10.211.55.5', 'UGSc', 0, 0, 'bridge100')];
const OURS = ['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1'];

describe('DarwinDriver.readRoutingTable', () => {
  const fingerprint = async (netstat: string) => (await driver().readRoutingTable(tables(netstat))).fingerprint(OURS);
  /** The fingerprint of a table edited from the capture (the edit must have changed it: a pattern that misses proves nothing). */
  const edited = (netstat: string) => {
    expect(netstat).not.toBe(MOJAVE);
    return fingerprint(netstat);
  };

  it('reads netstat -rn once, shared with discoverUplink, and reads routes back as readRoutes does', async () => {
    const run = tables(withRows([PIN]));
    const shared = new SharedReadRunner(run);
    const [table, uplink] = await Promise.all([driver().readRoutingTable(shared), driver().discoverUplink(shared)]);
    expect(run.calls.map((a) => a.join(' '))).toEqual(['netstat -rn', 'ifconfig']);
    expect(uplink).toMatchObject({ interface: 'en1', gateway: '192.168.1.1' });
    const wanted: RouteSpec[] = [
      { destination: '203.0.113.10/32', gateway: '192.168.1.1', interface: 'en1' },
      { destination: '0.0.0.0/1', gateway: '10.211.55.5', interface: 'bridge100' },
      { destination: '0.0.0.0/0', gateway: '192.168.1.1', interface: 'en1' },
    ];
    expect(table.readback(wanted)).toEqual(await driver().readRoutes(tables(withRows([PIN])), wanted));
    expect(table.readback(wanted).map((r) => [r.present, r.unsure])).toEqual([
      [true, undefined],
      [false, undefined],
      [true, undefined],
    ]);
  });

  it('a row netstat cut (bridge100 as `bridge1`, up to macOS 11) is unsure, where readRoutes asks route -n get', async () => {
    const [title, blank, section, header, defaultRow] = fixture('netstat-rn-bigsur-11.3-default-hatenablog.txt').split('\n');
    const cut = (destination: string) => `${destination.padEnd(18)} ${'10.211.55.5'.padEnd(18)} ${'UGSc'.padEnd(10)} ${'bridge1'}`;
    const bigSur = [title, blank, section, header, cut('0/1'), defaultRow, cut('128.0/1'), ''].join('\n');
    const table = await driver().readRoutingTable(tables(bigSur));
    const split = { destination: '0.0.0.0/1', gateway: '10.211.55.5', interface: 'bridge100' };
    expect(table.readback([split, { ...split, interface: 'en0' }])).toEqual([
      { ...split, present: false, unsure: true, evidence: '0/1 10.211.55.5 UGSc bridge1' },
      { ...split, interface: 'en0', present: false, evidence: '0/1 10.211.55.5 UGSc bridge1' },
    ]);
  });

  it('fingerprints every route but ours and what moves by itself; a default route, an interface route or a static route change it', async () => {
    const before = await fingerprint(MOJAVE);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    // Ours come and go unseen.
    expect(await edited(withRows([PIN, ...SPLITS]))).toBe(before);
    // What a Mac changes by itself between two reads: counters, expiries, neighbours, clones.
    expect(await edited(MOJAVE.replace(/(default {12}192\.168\.1\.1 +UGSc +)61/, '$162'))).toBe(before);
    expect(await edited(MOJAVE.replace(/(192\.168\.1\.1 {8}74:37:5f:96:ab:30  UHLWIir +13 +)2649( +en1 +)1192/, '$12650$2900'))).toBe(before);
    expect(await edited(withoutLine(/^192\.168\.1\.14 .*\n/m))).toBe(before);
    expect(await edited(withRows([row('192.168.1.250', 'a4:83:e7:1:2:3', 'UHLWI', 0, 1, 'en1', '1200')]))).toBe(before);
    expect(await edited(withRows([row('198.51.100.7', '192.168.1.1', 'UGHWIig', 1, 17, 'en1', '3600')]))).toBe(before);
    // Anything discover depends on: another.
    expect(await edited(MOJAVE.replace(/^(default {12})192\.168\.1\.1 /m, '$1192.168.1.2 '))).not.toBe(before);
    expect(await edited(withoutLine(/^192\.168\.1 {10}link#8 .*\n/m))).not.toBe(before);
    expect(await edited(withoutLine(/^192\.168\.1\.98\/32 .*\n/m))).not.toBe(before);
    expect(await edited(withRows([row('10.211.55', 'link#23', 'UC', 2, 0, 'bridge100', '!')]))).not.toBe(before);
    expect(await edited(withRows([row('198.51.100.0/24', '192.168.1.1', 'UGSc', 0, 0, 'en1')]))).not.toBe(before);
    expect(await edited(withoutLine(/^default {33}fe80::7637:5fff:fe96:ab30%en1 .*\n/m))).not.toBe(before);
  });
});
