import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ParseError } from '../../errors';
import { parseNftJson, renderNftRule } from '../nft';

const fixture = (name: string) => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

describe('parseNftJson', () => {
  it('renders every rule of a real table exactly as `nft list table` printed it', () => {
    const ruleset = parseNftJson(fixture('nft-list-table.json'));
    expect(ruleset.version).toBe('1.0.6');
    expect(ruleset.tables).toEqual([{ family: 'inet', name: 'wgctl', handle: expect.any(Number) }]);
    expect(ruleset.chains.map((c) => [c.name, c.hook, c.prio, c.policy])).toEqual([
      ['output', 'output', 0, 'accept'],
      ['input', 'input', 0, 'accept'],
    ]);
    const listed = fixture('nft-list-table.txt')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^(oifname|iifname)/.test(l))
      .map((l) => l.replace(/ comment ".*"$/, '').replace(/ counter packets \d+ bytes \d+/, ' counter'));
    expect(ruleset.rules.map((r) => r.text)).toEqual(listed);
    expect(ruleset.rules[3].comment).toBe('endpoint 203.0.113.10:51820');
  });

  it('renders negation, prefixes, ranges, ct states and jumps', () => {
    expect(
      renderNftRule([
        { match: { op: '!=', left: { meta: { key: 'oifname' } }, right: { set: ['lo', 'wtmv0'] } } },
        { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: { prefix: { addr: 'fe80::', len: 10 } } } },
        { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: { range: [67, 68] } } },
        { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } },
        { jump: { target: 'uplink' } },
      ]),
    ).toBe('oifname != { "lo", "wtmv0" } ip6 saddr fe80::/10 udp dport 67-68 ct state established,related jump uplink');
    expect(renderNftRule([{ reject: { type: 'icmpx', expr: 'admin-prohibited' } }])).toBe('reject with icmpx admin-prohibited');
  });

  it('rejects input that is not nft JSON', () => {
    expect(() => parseNftJson('table inet wgctl {')).toThrow(ParseError);
    expect(() => parseNftJson('{"tables":[]}')).toThrow(/nftables/);
    expect(() => parseNftJson('{"nftables":[{"rule":{"chain":"x"}}]}')).toThrow(/expr/);
  });

  it('renders any address + port accept rule (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.stringMatching(/^[a-z][a-z0-9]{0,12}$/), (ip, port, dev) => {
        const json = JSON.stringify({
          nftables: [
            {
              rule: {
                family: 'inet',
                table: 't',
                chain: 'output',
                expr: [
                  { match: { op: '==', left: { meta: { key: 'oifname' } }, right: dev } },
                  { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: ip } },
                  { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: port } },
                  { accept: null },
                ],
              },
            },
          ],
        });
        expect(parseNftJson(json).rules[0].text).toBe(`oifname "${dev}" ip daddr ${ip} udp dport ${port} accept`);
      }),
    );
  });
});
