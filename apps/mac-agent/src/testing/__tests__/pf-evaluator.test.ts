/**
 * The PF evaluator on small rulesets, written as pfctl prints them (each was checked with
 * shared/tools/pfctl-grammar). Each expectation is a rule of xnu pf.c, named in the test.
 * The kill switch's own scenarios are in host/__tests__/pf-grammar.test.ts.
 */
import { evaluatePf, parsePrintedPfRule, type PfPacket, type PfState } from '../pf-evaluator';

const MAIN = ['anchor "com.apple/*" all']; // what macOS's stock pf.conf puts in the filter ruleset

const synOut = (overrides: Partial<PfPacket> = {}): PfPacket => ({
  direction: 'out', interface: 'en0', af: 'inet', proto: 'tcp', src: '192.0.2.50', srcPort: 50000, dst: '198.51.100.7', dstPort: 443, tcpFlags: 'S', ...overrides,
});
const udpOut = (overrides: Partial<PfPacket> = {}): PfPacket => ({
  direction: 'out', interface: 'en0', af: 'inet', proto: 'udp', src: '192.0.2.50', srcPort: 53000, dst: '192.0.2.1', dstPort: 53, ...overrides,
});
const only = (...rules: string[]) => ({ '': rules });

describe('pf_test_rule: order, quick, default', () => {
  it('with no matching rule, pf_default_rule passes without a state', () => {
    expect(evaluatePf(only('block drop in all'), synOut())).toEqual({ action: 'pass', decidedBy: 'default', stateCreated: false });
  });

  it('without quick the LAST matching rule decides', () => {
    expect(evaluatePf(only('block drop out all', 'pass out proto tcp all flags S/SA keep state'), synOut())).toMatchObject({ action: 'pass', rule: 'pass out proto tcp all flags S/SA keep state' });
    expect(evaluatePf(only('pass out proto tcp all flags S/SA keep state', 'block drop out all'), synOut())).toMatchObject({ action: 'block', rule: 'block drop out all' });
  });

  it('a quick match ends the walk', () => {
    expect(evaluatePf(only('block drop out quick all', 'pass out proto tcp all flags S/SA keep state'), synOut())).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
  });

  it('keep state creates a state (if-bound rules bind it to the interface), no state and block do not', () => {
    const created = evaluatePf(only('pass out proto tcp all flags S/SA keep state'), synOut());
    expect(created).toMatchObject({ stateCreated: true, state: { direction: 'out', src: '192.0.2.50', srcPort: 50000, dst: '198.51.100.7', dstPort: 443 } });
    expect(created.state).not.toHaveProperty('interface');
    expect(evaluatePf(only('pass out proto tcp all flags S/SA keep state (if-bound)'), synOut()).state).toMatchObject({ interface: 'en0' });
    expect(evaluatePf(only('pass out all no state'), synOut()).stateCreated).toBe(false);
    expect(evaluatePf(only('block drop out all'), synOut()).stateCreated).toBe(false);
  });
});

describe('pf_test_rule: what a rule matches', () => {
  it('tcp flags: (flagset & th_flags) == flags; flags any (none printed on a stateless rule) matches all', () => {
    const rules = only('pass out quick proto tcp all flags S/SA keep state', 'block drop out quick all');
    expect(evaluatePf(rules, synOut({ tcpFlags: 'S' })).action).toBe('pass');
    expect(evaluatePf(rules, synOut({ tcpFlags: 'SA' })).action).toBe('block'); // SA & SA = SA != S
    expect(evaluatePf(rules, synOut({ tcpFlags: 'A' })).action).toBe('block');
    expect(evaluatePf(rules, synOut({ tcpFlags: 'PA' })).action).toBe('block');
    expect(evaluatePf(only('pass out quick proto tcp all flags any keep state', 'block drop out all'), synOut({ tcpFlags: 'A' })).action).toBe('pass');
    expect(evaluatePf(only('block drop out all', 'pass out quick proto tcp all no state'), synOut({ tcpFlags: 'FA' })).action).toBe('pass');
  });

  it('interfaces: `on IF` is an exact name, `on ! IF` its complement', () => {
    const rules = only('block drop out all', 'pass out on ! en0 all no state');
    expect(evaluatePf(rules, synOut({ interface: 'en0' })).action).toBe('block');
    expect(evaluatePf(rules, synOut({ interface: 'en1' })).action).toBe('pass');
    expect(evaluatePf(only('block drop out on en all'), synOut({ interface: 'en0' })).decidedBy).toBe('default');
  });

  it('direction, family and protocol', () => {
    expect(evaluatePf(only('block drop in all'), synOut()).decidedBy).toBe('default');
    expect(evaluatePf(only('block drop inet6 all'), synOut()).decidedBy).toBe('default');
    expect(evaluatePf(only('block drop proto udp all'), synOut()).decidedBy).toBe('default');
    expect(evaluatePf(only('block drop proto udp all'), udpOut()).action).toBe('block');
  });

  it('addresses: host, network, and `!` (PF_MISMATCHAW)', () => {
    const check = (rule: string, dst: string) => evaluatePf(only(rule), synOut({ dst })).action;
    expect(check('block drop inet from any to 198.51.100.7', '198.51.100.7')).toBe('block');
    expect(check('block drop inet from any to 198.51.100.7', '198.51.100.8')).toBe('pass');
    expect(check('block drop inet from any to 198.51.100.0/24', '198.51.100.200')).toBe('block');
    expect(check('block drop inet from any to ! 198.51.100.0/24', '198.51.100.200')).toBe('pass');
    expect(check('block drop inet from any to ! 198.51.100.0/24', '203.0.113.1')).toBe('block');
    expect(evaluatePf(only('block drop inet6 from any to 2001:db8::/32'), synOut({ af: 'inet6', src: '2001:db8:1::50', dst: '2001:db8:ffff::1' })).action).toBe('block');
  });

  it.each([
    ['port = 53', 53, true], ['port = 53', 54, false], ['port != 53', 53, false], ['port < 53', 52, true], ['port < 53', 53, false],
    ['port <= 53', 53, true], ['port > 53', 53, false], ['port >= 53', 53, true], ['port 50:53', 50, true], ['port 50:53', 53, true],
    ['port 50:53', 54, false], ['port 50 >< 53', 50, false], ['port 50 >< 53', 51, true], ['port 50 <> 53', 50, false], ['port 50 <> 53', 49, true],
  ])('pf_match_port: %s against %i → %s', (port, dstPort, matches) => {
    expect(evaluatePf(only(`block drop proto udp from any to any ${port}`), udpOut({ dstPort })).action).toBe(matches ? 'block' : 'pass');
  });

  it('ports apply to tcp and udp only, and a source port is checked too', () => {
    expect(evaluatePf(only('block drop proto udp from any port = 68 to any port = 67'), udpOut({ srcPort: 68, dstPort: 67 })).action).toBe('block');
    expect(evaluatePf(only('block drop proto udp from any port = 68 to any port = 67'), udpOut({ srcPort: 69, dstPort: 67 })).action).toBe('pass');
  });

  it('icmp6-type compares the type pfctl printed by name with the packet type, by name or number', () => {
    const rules = only('pass out quick inet6 proto ipv6-icmp all icmp6-type neighbrsol keep state', 'block drop inet6 all');
    const ns: PfPacket = { direction: 'out', interface: 'en0', af: 'inet6', proto: 'ipv6-icmp', src: 'fe80::1', dst: 'ff02::1:ff00:2', icmpType: 'neighbrsol' };
    expect(evaluatePf(rules, ns)).toMatchObject({ action: 'pass', stateCreated: true });
    expect(evaluatePf(rules, { ...ns, icmpType: 135 }).action).toBe('pass');
    expect(evaluatePf(rules, { ...ns, icmpType: 'neighbradv' }).action).toBe('block');
  });
});

describe('pf_test_state_*: states before rules', () => {
  const state: PfState = { af: 'inet', proto: 'tcp', direction: 'out', src: '192.0.2.50', srcPort: 50000, dst: '198.51.100.7', dstPort: 443 };
  const blockAll = only('block drop all');

  it('a packet of a known flow passes in either direction, whatever the rules and the interface (floating)', () => {
    expect(evaluatePf(blockAll, synOut({ tcpFlags: 'A' }), [state])).toEqual({ action: 'pass', decidedBy: 'state', stateCreated: false, state });
    const reply = synOut({ direction: 'in', src: '198.51.100.7', srcPort: 443, dst: '192.0.2.50', dstPort: 50000, tcpFlags: 'SA', interface: 'en1' });
    expect(evaluatePf(blockAll, reply, [state]).decidedBy).toBe('state');
  });

  it('the reverse orientation in the same direction, another port or an if-bound state elsewhere is not that flow', () => {
    expect(evaluatePf(blockAll, synOut({ direction: 'out', src: '198.51.100.7', srcPort: 443, dst: '192.0.2.50', dstPort: 50000 }), [state]).action).toBe('block');
    expect(evaluatePf(blockAll, synOut({ srcPort: 50001 }), [state]).action).toBe('block');
    expect(evaluatePf(blockAll, synOut({ interface: 'en1' }), [{ ...state, interface: 'en0' }]).action).toBe('block');
    expect(evaluatePf(blockAll, synOut({ interface: 'en0' }), [{ ...state, interface: 'en0' }]).action).toBe('pass');
  });
});

describe('anchors (pf_step_into_anchor / pf_step_out_of_anchor)', () => {
  it('`NAME/*` runs the direct children of NAME in name order; a quick match in one ends everything', () => {
    const rulesets = {
      '': [...MAIN, 'pass out all no state'],
      'com.apple/100.b': ['block drop out quick all'],
      'com.apple/050.a': ['pass out quick all no state'],
    };
    expect(evaluatePf(rulesets, synOut())).toMatchObject({ action: 'pass', anchor: 'com.apple/050.a' });
  });

  it('a non-quick match inside a child can be overridden by a later rule (last match wins across anchors)', () => {
    const rulesets = { '': [...MAIN, 'pass out all no state'], 'com.apple/100.b': ['block drop out all'] };
    expect(evaluatePf(rulesets, synOut())).toMatchObject({ action: 'pass', anchor: '', rule: 'pass out all no state' });
  });

  it('grandchildren are not run by `com.apple/*`; a child reaches them by a relative or an absolute anchor rule', () => {
    const grandchild = { 'com.apple/200.x/inner': ['block drop out quick all'] };
    expect(evaluatePf({ '': MAIN, ...grandchild }, synOut()).decidedBy).toBe('default');
    expect(evaluatePf({ '': MAIN, 'com.apple/200.x': ['anchor "inner" all'], ...grandchild }, synOut())).toMatchObject({ action: 'block', anchor: 'com.apple/200.x/inner' });
    expect(evaluatePf({ '': MAIN, 'com.apple/200.x': ['anchor "/com.apple/200.x/inner" all'], ...grandchild }, synOut()).action).toBe('block');
  });

  it('an anchor rule runs only for packets it matches itself, and `quick` on it ends the walk when something inside matched', () => {
    const inner = { other: ['pass out all no state'] };
    expect(evaluatePf({ '': ['anchor "other" in all', 'block drop out all'], ...inner }, synOut()).action).toBe('block');
    expect(evaluatePf({ '': ['anchor "other" quick all', 'block drop out all'], ...inner }, synOut()).action).toBe('pass');
    expect(evaluatePf({ '': ['anchor "other" all', 'block drop out all'], ...inner }, synOut()).action).toBe('block');
  });

  it('ignores the scrub anchor pfctl -sr lists with the filter rules (another ruleset)', () => {
    expect(evaluatePf({ '': ['scrub-anchor "com.apple/*" all fragment reassemble', ...MAIN] }, synOut()).decidedBy).toBe('default');
  });
});

describe('refuses rather than guesses', () => {
  it.each([
    ['pass quick on lo0 all', /not as pfctl prints it \(no state word\)/], // as written: pfctl holds it as flags S/SA keep state
    ['pass out proto tcp all keep state', /shows its flags/],
    ['pass out proto tcp from <trusted> to any flags S/SA keep state', /"<trusted>"/],
    ['pass out proto tcp from any to (en0) flags S/SA keep state', /"\(en0\)"/],
    ['pass out proto tcp all user = 0 flags S/SA keep state', /"user"/],
    ['pass in quick on lo0 all tagged FOO no state', /"tagged"/],
    ['pass out route-to (en1 192.0.2.1) all no state', /"route-to"/],
    ['pass out proto tcp all flags S/SA keep state (source-track rule, max-src-nodes 10)', /"source-track rule"/],
  ])('%s', (rule, message) => {
    expect(() => parsePrintedPfRule(rule)).toThrow(message);
  });

  it('ICMP errors (matched by pf to the state of the packet they carry) and incomplete packets', () => {
    const unreach: PfPacket = { direction: 'in', interface: 'en0', af: 'inet', proto: 'icmp', src: '192.0.2.1', dst: '192.0.2.50', icmpType: 'unreach' };
    expect(() => evaluatePf(only('block drop all'), unreach)).toThrow(/ICMP errors/);
    expect(() => evaluatePf(only('block drop all'), synOut({ tcpFlags: undefined }))).toThrow(/TCP flags needed/);
    expect(() => evaluatePf(only('block drop all'), synOut({ dst: '2001:db8::1' }))).toThrow(/not an inet address/);
  });
});
