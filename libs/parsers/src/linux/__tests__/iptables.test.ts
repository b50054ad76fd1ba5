import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParseError } from '../../errors';
import { formatIptablesArgs } from '../../testing/iptables-args';
import { parseIptablesRules, parseIptablesSave, parseIptablesVersion, tokenizeIptablesLine } from '../iptables';

const fixture = (name: string): string => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

describe('parseIptablesSave', () => {
  it('parses iptables-nft-save -c: tables, policies, user chains, counters, quoted comments', () => {
    const tables = parseIptablesSave(fixture('iptables-save-nft-c.txt'));
    expect(tables.map((t) => t.name)).toEqual(['mangle', 'filter', 'nat']);
    const filter = tables.find((t) => t.name === 'filter')!;
    expect(filter.chains).toEqual([
      { name: 'INPUT', policy: 'ACCEPT', builtin: true },
      { name: 'FORWARD', policy: 'DROP', builtin: true },
      { name: 'OUTPUT', policy: 'ACCEPT', builtin: true },
      { name: 'WGCTL-FWD', policy: null, builtin: false },
    ]);
    const forward = filter.rules.filter((r) => r.chain === 'FORWARD');
    expect(forward.map((r) => [r.comment, r.target])).toEqual([
      ['wgctl', 'WGCTL-FWD'],
      ['user rule "x" y', 'ACCEPT'],
    ]);
    expect(forward[0].counters).toEqual({ packets: '0', bytes: '0' });
    expect(filter.rules.filter((r) => r.chain === 'WGCTL-FWD').map((r) => r.args)).toEqual([
      ['-s', '198.51.100.2/32', '-i', 'wtvl0', '-o', 'wtv0', '-j', 'ACCEPT'],
      ['-d', '198.51.100.2/32', '-i', 'wtv0', '-o', 'wtvl0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-s', '198.51.100.2/32', '!', '-o', 'wtv0', '-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'],
    ]);
    const nat = tables.find((t) => t.name === 'nat')!;
    expect(nat.rules.map((r) => r.target)).toEqual(['WGCTL-POST', 'MASQUERADE', 'SNAT']);
  });

  it('parses iptables-legacy-save without counters', () => {
    const [filter] = parseIptablesSave(fixture('iptables-legacy-save.txt'));
    expect(filter.rules).toEqual([
      { chain: 'INPUT', args: ['-p', 'udp', '-m', 'udp', '--dport', '51820', '-j', 'USERCHAIN'], target: 'USERCHAIN', line: 7 },
      { chain: 'USERCHAIN', args: ['-j', 'ACCEPT'], target: 'ACCEPT', line: 8 },
    ]);
  });

  it('returns no tables for empty output (fresh namespace)', () => {
    expect(parseIptablesSave('')).toEqual([]);
    expect(parseIptablesSave('# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n')).toEqual([]);
  });

  it.each([
    [':INPUT ACCEPT [0:0]\n', /outside of a \*table/],
    ['*filter\n:INPUT ACCEPT [0:0]\n', /no COMMIT/],
    ['*filter\n*nat\n', /starts before COMMIT/],
    ['*filter\n-I INPUT -j ACCEPT\nCOMMIT\n', /expected "-A CHAIN/],
    ['*filter\n:BAD\nCOMMIT\n', /bad chain line/],
    ['*filter\n-A X -m comment --comment "open\nCOMMIT\n', /unterminated/],
  ])('rejects %j', (text, message) => {
    expect(() => parseIptablesSave(text)).toThrow(ParseError);
    expect(() => parseIptablesSave(text)).toThrow(message);
  });
});

describe('parseIptablesRules (-S)', () => {
  it('parses a whole table listing', () => {
    const ruleset = parseIptablesRules(fixture('iptables-S-filter.txt'));
    expect(ruleset.chains.map((c) => [c.name, c.policy])).toEqual([
      ['INPUT', 'ACCEPT'],
      ['FORWARD', 'DROP'],
      ['OUTPUT', 'ACCEPT'],
      ['WGCTL-FWD', null],
    ]);
    expect(ruleset.rules).toHaveLength(5);
    expect(ruleset.rules[1].comment).toBe('user rule "x" y');
  });

  it('parses one user chain', () => {
    const ruleset = parseIptablesRules(fixture('iptables-S-nat-chain.txt'));
    expect(ruleset.chains).toEqual([{ name: 'WGCTL-POST', policy: null, builtin: false }]);
    expect(ruleset.rules[0].args).toEqual(['-s', '198.51.100.2/32', '-o', 'wtv0', '-j', 'SNAT', '--to-source', '192.0.2.2']);
  });

  it('rejects unknown lines', () => {
    expect(() => parseIptablesRules('-X FOO\n')).toThrow(/unexpected line start "-X"/);
    expect(() => parseIptablesRules('-P INPUT\n')).toThrow(/-P CHAIN POLICY/);
  });
});

describe('tokenizer and formatting', () => {
  it('round-trips quoted arguments', () => {
    const line = '-A FORWARD -m comment --comment "a \\"quoted\\" \\\\ comment" -j ACCEPT';
    const tokens = tokenizeIptablesLine(line);
    expect(tokens).toEqual(['-A', 'FORWARD', '-m', 'comment', '--comment', 'a "quoted" \\ comment', '-j', 'ACCEPT']);
    expect(formatIptablesArgs(tokens)).toBe(line);
    expect(tokenizeIptablesLine('-m comment --comment ""')).toEqual(['-m', 'comment', '--comment', '']);
  });
});

describe('parseIptablesVersion', () => {
  it('detects the backend', () => {
    expect(parseIptablesVersion(fixture('iptables-version-nft.txt'))).toEqual({ version: '1.8.9', backend: 'nft' });
    expect(parseIptablesVersion(fixture('iptables-version-legacy.txt'))).toEqual({ version: '1.8.9', backend: 'legacy' });
    expect(parseIptablesVersion('iptables v1.6.1\n')).toEqual({ version: '1.6.1', backend: 'legacy' });
    expect(() => parseIptablesVersion('command not found')).toThrow(ParseError);
  });
});
