import {
  ParseError,
  classifyPfRelease,
  normalizePfRule,
  normalizePfRuleset,
  parsePfEnableOutput,
  parsePfInfo,
  parsePfReferences,
  parsePfRules,
  parsePfSyntaxErrors,
  pfRulesReferenceAnchor,
} from '@wgctl/parsers';

describe('normalizePfRule (what pfctl prints for what we write)', () => {
  it.each([
    ['block in on en0', 'block drop in on en0 all'],
    ['block return out on en0 all', 'block return out on en0 all'],
    ['block out quick on en0 inet6 all', 'block drop out quick on en0 inet6 all'],
    ['pass quick on lo0', 'pass quick on lo0 all flags S/SA keep state'],
    ['pass quick on lo0 all no state', 'pass quick on lo0 all no state'],
    ['pass quick on bridge100 all', 'pass quick on bridge100 all flags S/SA keep state'],
    ['block drop in quick all', 'block drop in quick all'],
    ['block out quick', 'block drop out quick all'],
    ['block drop quick inet6 all', 'block drop quick inet6 all'],
    ['pass out quick inet proto udp from any port 68 to any port 67', 'pass out quick inet proto udp from any port = 68 to any port = 67 keep state'],
    ['pass in quick inet proto udp from 203.0.113.10 port 51820 to any', 'pass in quick inet proto udp from 203.0.113.10 port = 51820 to any keep state'],
    ['pass out quick on en0 proto udp from any port 68 to any port 67', 'pass out quick on en0 proto udp from any port = 68 to any port = 67 keep state'],
    ['pass out quick on en0 proto udp to 203.0.113.10 port 51820', 'pass out quick on en0 inet proto udp from any to 203.0.113.10 port = 51820 keep state'],
    ['pass out quick on en0 proto udp from any to 203.0.113.10/32 port = 51820 keep state', 'pass out quick on en0 inet proto udp from any to 203.0.113.10 port = 51820 keep state'],
    ['pass out on en0 proto udp to 2001:DB8:0::10/128 port 51820', 'pass out on en0 inet6 proto udp from any to 2001:db8::10 port = 51820 keep state'],
    ['pass in proto tcp from 10.1.2.3/8 to any port 22 keep state flags S/SA', 'pass in inet proto tcp from 10.0.0.0/8 to any port = 22 flags S/SA keep state'],
    ['pass proto tcp to any port 1024:65535', 'pass proto tcp from any to any port 1024:65535 flags S/SA keep state'],
    ['pass proto tcp to any port 1000 >< 2000', 'pass proto tcp from any to any port 1000 >< 2000 flags S/SA keep state'],
    ['pass proto tcp to any port != 25', 'pass proto tcp from any to any port != 25 flags S/SA keep state'],
    ['pass proto tcp to any port>=1024', 'pass proto tcp from any to any port >= 1024 flags S/SA keep state'],
    ['pass on ! en0 from !10.0.0.0/8', 'pass on ! en0 inet from ! 10.0.0.0/8 to any flags S/SA keep state'],
    ['pass inet6 proto icmp6 all icmp6-type 135', 'pass inet6 proto ipv6-icmp all icmp6-type neighbrsol keep state'],
    ['pass in proto 17 from <trusted> to (en0) port 53', 'pass in proto udp from <trusted> to (en0) port = 53 keep state'],
    ['pass out log (all, user) quick on en0 all label "wgctl" # why', 'pass out log (all, user) quick on en0 all flags S/SA keep state label "wgctl"'],
    // parse.y adds adaptive timeouts (60% / 120% of max) to a rule with `max` and none of its own.
    ['pass out proto tcp all modulate state ( max 100 )', 'pass out proto tcp all flags S/SA modulate state (max 100, adaptive.start 60, adaptive.end 120)'],
    ['anchor "com.wgctl"', 'anchor "com.wgctl" all'],
    ['scrub-anchor "com.apple/*"', 'scrub-anchor "com.apple/*" all fragment reassemble'],
    ['nat on en0 from 10.211.55.0/24 to any -> (en0)', 'nat on en0 from 10.211.55.0/24 to any -> (en0)'],
  ])('%s', (written, printed) => {
    expect(normalizePfRule(written)).toEqual([printed]);
  });

  // Each of these was printed differently by the real grammar (shared/tools/pfctl-grammar) than
  // the normaliser first said; the expected text is what that pfctl printed.
  it.each([
    // print_flags walks FSRPAUEW.
    ['pass out on en0 proto tcp to any flags S/SAFR keep state', 'pass out on en0 proto tcp all flags S/FSRA keep state'],
    ['pass out proto tcp all flags SA/AS no state', 'pass out proto tcp all flags SA/SA no state'],
    // `flags any` is printed only where pf would have added S/SA: stateful pass rules that can see tcp.
    ['pass out all flags any no state', 'pass out all no state'],
    ['pass out proto tcp flags any no state', 'pass out proto tcp all no state'],
    ['pass out proto udp flags any', 'pass out proto udp all keep state'],
    ['block out all flags any', 'block drop out all'],
    ['pass quick on lo0 all flags any', 'pass quick on lo0 all flags any keep state'],
    // modulate/synproxy exist for tcp only: other protocols get keep state.
    ['pass out proto udp all modulate state', 'pass out proto udp all keep state'],
    // State options in print_rule's order; `floating` is the default and not printed; small max → zero adaptive values, not printed.
    ['pass out proto tcp all keep state (no-sync, max 100)', 'pass out proto tcp all flags S/SA keep state (max 100, no-sync, adaptive.start 60, adaptive.end 120)'],
    ['pass out proto tcp all keep state (tcp.established 60, max 10)', 'pass out proto tcp all flags S/SA keep state (max 10, tcp.established 60, adaptive.start 6, adaptive.end 12)'],
    ['pass out proto tcp all keep state (max 5)', 'pass out proto tcp all flags S/SA keep state (max 5)'],
    ['pass out proto tcp all keep state (floating)', 'pass out proto tcp all flags S/SA keep state'],
    // print_addr: zero address and mask is `any` (the family stays).
    ['pass out proto tcp from 0.0.0.0/0 to any', 'pass out inet proto tcp all flags S/SA keep state'],
    ['pass out inet6 from any to ::/0', 'pass out inet6 all flags S/SA keep state'],
    // Ports and ids are stored as numbers.
    ['pass out proto tcp to any port 80:80', 'pass out proto tcp from any to any port = 80 flags S/SA keep state'],
    ['pass out proto tcp to any port ssh', 'pass out proto tcp from any to any port = 22 flags S/SA keep state'],
    ['pass out proto tcp user root', 'pass out proto tcp all user = 0 flags S/SA keep state'],
    ['pass out proto tcp user 100 >< 200', 'pass out proto tcp all user 100 >< 200 flags S/SA keep state'],
    // ICMP types and codes: the first name pfctl's table has for the number.
    ['pass out inet6 proto ipv6-icmp all icmp6-type 200', 'pass out inet6 proto ipv6-icmp all icmp6-type mtraceresp keep state'],
    ['pass out inet6 proto ipv6-icmp all icmp6-type listqry', 'pass out inet6 proto ipv6-icmp all icmp6-type groupqry keep state'],
    ['pass out inet6 proto ipv6-icmp all icmp6-type unreach code beyond-unr', 'pass out inet6 proto ipv6-icmp all icmp6-type unreach code notnbr-unr keep state'],
    ['pass out inet proto icmp all icmp-type 3 code 1', 'pass out inet proto icmp all icmp-type unreach code host-unr keep state'],
  ])('as the real printer: %s', (written, printed) => {
    expect(normalizePfRule(written)).toEqual([printed]);
  });

  it('drops what expand_rule drops from lists: flags and modulate on non-tcp elements, other-family addresses', () => {
    expect(normalizePfRule('pass proto { tcp, udp } to any port 53 flags S/SA modulate state')).toEqual([
      'pass proto tcp from any to any port = 53 flags S/SA modulate state',
      'pass proto udp from any to any port = 53 keep state',
    ]);
    expect(normalizePfRule('pass out inet6 to { 192.0.2.1, 2001:db8::1 }')).toEqual(['pass out inet6 from any to 2001:db8::1 flags S/SA keep state']);
  });

  it('refuses what the real grammar rejects or prints from data it does not have', () => {
    expect(() => normalizePfRule('pass out from 192.0.2.77/24 to 2001:db8::1/32')).toThrow(/no valid combination/);
    expect(() => normalizePfRule('pass out from ! { 192.0.2.1, 198.51.100.0/24 }')).toThrow(/syntax error/);
    expect(() => normalizePfRule('pass out proto tcp user 100:200')).toThrow(/numeric id/);
    expect(() => normalizePfRule('pass out proto tcp group staff')).toThrow(/numeric id/);
    expect(() => normalizePfRule('pass out proto tcp to any port gopher')).toThrow(/unknown port/);
    expect(() => normalizePfRule('pass out proto tcp flags S/SX')).toThrow(/bad flags/);
    expect(() => normalizePfRule('pass out proto tcp flags SA/S')).toThrow(/always false/);
    expect(() => normalizePfRule('pass out inet6 proto ipv6-icmp all icmp6-type nosuch')).toThrow(/unknown icmp6-type/);
    expect(() => normalizePfRule('pass out proto tcp all keep state (max-src-nodes 10)')).toThrow(/unsupported state option/);
    expect(() => normalizePfRule('block return-icmp out inet proto udp all')).toThrow(/unsupported "return-icmp"/);
  });

  it('expands {a, b} lists left to right, with or without commas, nested in one rule', () => {
    expect(normalizePfRule('pass on en2 inet proto {tcp, udp} to {192.0.2.1 198.51.100.2} port {53, 853}')).toEqual([
      'pass on en2 inet proto tcp from any to 192.0.2.1 port = 53 flags S/SA keep state',
      'pass on en2 inet proto tcp from any to 192.0.2.1 port = 853 flags S/SA keep state',
      'pass on en2 inet proto tcp from any to 198.51.100.2 port = 53 flags S/SA keep state',
      'pass on en2 inet proto tcp from any to 198.51.100.2 port = 853 flags S/SA keep state',
      'pass on en2 inet proto udp from any to 192.0.2.1 port = 53 keep state',
      'pass on en2 inet proto udp from any to 192.0.2.1 port = 853 keep state',
      'pass on en2 inet proto udp from any to 198.51.100.2 port = 53 keep state',
      'pass on en2 inet proto udp from any to 198.51.100.2 port = 853 keep state',
    ]);
    expect(normalizePfRule('pass inet6 proto ipv6-icmp all icmp6-type { routersol, neighbradv }')).toEqual([
      'pass inet6 proto ipv6-icmp all icmp6-type routersol keep state',
      'pass inet6 proto ipv6-icmp all icmp6-type neighbradv keep state',
    ]);
    expect(normalizePfRule('block on { en0 en1 }')).toEqual(['block drop on en0 all', 'block drop on en1 all']);
  });

  it('gives nothing for comments and blank lines, and refuses what it does not understand', () => {
    expect(normalizePfRule('# only a comment')).toEqual([]);
    expect(normalizePfRule('   ')).toEqual([]);
    expect(() => normalizePfRule('pass on $ext')).toThrow(/macros/);
    expect(() => normalizePfRule('pass sideways')).toThrow(/unsupported word "sideways"/);
    expect(() => normalizePfRule('pass on en0 from 10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => normalizePfRule('pass from { 1.2.3.4')).toThrow(ParseError);
    expect(() => normalizePfRule('pass )')).toThrow(ParseError);
    expect(() => normalizePfRule('pass on')).toThrow(/expected an interface/);
  });

  it('expands macros in a ruleset, and refuses undefined ones', () => {
    expect(normalizePfRuleset('ext = "en0"\nsrv = 203.0.113.10\npass out on $ext proto udp to $srv port 51820\n')).toEqual([
      'pass out on en0 inet proto udp from any to 203.0.113.10 port = 51820 keep state',
    ]);
    expect(() => normalizePfRuleset('pass on $nope\n')).toThrow(/undefined macro \$nope/);
  });
});

describe('parsePfRules', () => {
  it('reads -v and -vv output (rule numbers, counters)', () => {
    const text = [
      'No ALTQ support in kernel',
      'ALTQ related functions disabled',
      '@0 block drop in on en0 all',
      '  [ Evaluations: 1250      Packets: 33        Bytes: 4312        States: 0     ]',
      '  [ Inserted: uid 0 pid 4242 State Creations: 0     ]',
      '@1 pass out quick on en0 inet proto udp from any to 203.0.113.10 port = 51820 keep state',
      '  [ Evaluations: 10        Packets: 2000      Bytes: 300000      States: 1     ]',
    ].join('\n');
    const rules = parsePfRules(text);
    expect(rules.map((r) => [r.number, r.action, r.text.slice(0, 16)])).toEqual([
      [0, 'block', 'block drop in on'],
      [1, 'pass', 'pass out quick o'],
    ]);
    expect(rules[0].counters).toEqual({ uid: 0, pid: 4242, Evaluations: 1250, Packets: 33, Bytes: 4312, States: 0, 'State Creations': 0 });
    expect(rules[1].counters?.States).toBe(1);
  });

  it('tracks nested anchor blocks and finds the anchor reference', () => {
    const rules = parsePfRules('anchor "com.apple/*" all {\n  anchor "200.AirDrop/*" all {\n  }\n}\nanchor "com.wgctl" all\n');
    expect(rules.map((r) => [r.anchor, r.depth])).toEqual([
      ['com.apple/*', 0],
      ['200.AirDrop/*', 1],
      ['com.wgctl', 0],
    ]);
    expect(pfRulesReferenceAnchor(rules, 'com.wgctl')).toBe(true);
    expect(pfRulesReferenceAnchor(rules, '200.AirDrop/*')).toBe(false); // nested, not in the main ruleset
  });

  it('refuses errors and non-rules', () => {
    expect(() => parsePfRules('pfctl: Permission denied\n')).toThrow(/Permission denied/);
    expect(() => parsePfRules('hello\n')).toThrow(/not a pf rule/);
    expect(() => parsePfRules('}\n')).toThrow(/unbalanced/);
    expect(() => parsePfRules('anchor "x" all {\n')).toThrow(/unterminated/);
    expect(() => parsePfRules('  [ Evaluations: 1 ]\n')).toThrow(/before any rule/);
    expect(parsePfRules('No ALTQ support in kernel\n')).toEqual([]);
  });
});

describe('pfctl status parsers', () => {
  it('parsePfInfo: status line variants', () => {
    expect(parsePfInfo('Status: Enabled for 2 days 01:00:05           Debug: Misc\n', new Date('2026-01-03T01:00:05Z'))).toMatchObject({
      enabled: true,
      enabledForSeconds: 2 * 86400 + 3605,
      since: '2026-01-01T00:00:00.000Z',
      debug: 'Misc',
    });
    expect(parsePfInfo('Status: Disabled\n')).toMatchObject({ enabled: false });
    expect(() => parsePfInfo('No ALTQ support in kernel\n')).toThrow(/Status/);
    expect(() => parsePfInfo('Status: Sideways\n')).toThrow(/unreadable status/);
  });

  it('parsePfReferences: refuses broken tables and non-u64 tokens', () => {
    expect(() => parsePfReferences('')).toThrow(ParseError);
    expect(() => parsePfReferences('TOKENS:\n1 pfctl 123 0 days 00:00:01\n')).toThrow(/unexpected line/);
    expect(() =>
      parsePfReferences('PID      Process Name                 TOKEN                    TIMESTAMP\n1 pfctl 99999999999999999999 0 days 00:00:01\n'),
    ).toThrow(/u64/);
    expect(
      parsePfReferences('PID      Process Name                 TOKEN                    TIMESTAMP\n77 Little Snitch 42 12 days 00:00:01\n'),
    ).toEqual([{ pid: 77, processName: 'Little Snitch', token: '42', age: '12 days 00:00:01', ageSeconds: 12 * 86400 + 1 }]);
  });

  it('parsePfEnableOutput: tolerates ALTQ noise, refuses output without a token', () => {
    expect(parsePfEnableOutput('No ALTQ support in kernel\nALTQ related functions disabled\npf enabled\nToken : 42\n')).toEqual({ token: '42' });
    expect(() => parsePfEnableOutput('pf enabled\n')).toThrow(/no "Token :"/);
    expect(() => parsePfEnableOutput('Token : -1\n')).toThrow(ParseError);
  });

  it('classifyPfRelease: anything else is a failure', () => {
    expect(classifyPfRelease('', 'pfctl: Permission denied\n')).toMatchObject({ outcome: 'failed', reason: 'pfctl: Permission denied' });
    expect(classifyPfRelease('', '')).toMatchObject({ outcome: 'failed', reason: '(no output)' });
  });

  it('parsePfSyntaxErrors: file:line: message, and the not-loaded verdict', () => {
    const stderr = [
      'No ALTQ support in kernel',
      '/var/db/wgctl/pf-com.wgctl.conf:3: syntax error',
      'stdin:7: macro \'ext\' not defined',
      'no IP address found for en9',
      'pfctl: Syntax error in config file: pf rules not loaded',
    ].join('\n');
    expect(parsePfSyntaxErrors(stderr)).toEqual({
      errors: [
        { source: '/var/db/wgctl/pf-com.wgctl.conf', line: 3, message: 'syntax error' },
        { source: 'stdin', line: 7, message: "macro 'ext' not defined" },
      ],
      rulesNotLoaded: true,
      info: [],
      other: ['no IP address found for en9'],
    });
  });
});
