/**
 * `wgctl --exclude` on darwin: PF's verdicts (testing/pf-evaluator.ts, xnu pf.c semantics) on
 * the kill switch as the real pfctl grammar prints it (shared/tools/pfctl-grammar), under the
 * stock main ruleset of macOS: the Mac may open flows to an excluded range (on any interface)
 * and get their replies; nothing else passes, and an excluded host cannot open a flow to it.
 * Skipped like pf-grammar.test.ts when ../shared is not beside the clone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parsePfRules } from '@wgctl/parsers';
import { evaluatePf, type PfPacket, type PfState } from '../../testing/pf-evaluator';
import { renderDarwinKillSwitch } from '../darwin';
import type { KillSwitchPolicy } from '../driver';

const SHARED = resolve(__dirname, '../../../../../../shared');
const CHECK = join(SHARED, 'tools/pfctl-grammar/check.sh');
const ANCHOR = 'com.apple/000.wgctl';

/** The rules as the real grammar prints them (what `pfctl -a ANCHOR -sr` shows once loaded). */
function printedByPfctl(text: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'wgctl-pf-exclude-'));
  try {
    writeFileSync(join(dir, 'rules.conf'), text);
    const result = spawnSync(CHECK, [join(dir, 'rules.conf'), ANCHOR], { encoding: 'utf8', timeout: 120_000 });
    if (result.status !== 0) throw new Error(`pfctl grammar rejected the rules:\n${result.stderr}`);
    return result.stdout.split('\n').filter((l) => l.trim() !== '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MAC = '192.0.2.50';
const MAC6 = '2001:db8:1::50';
const CORPORATE = '198.51.100.80'; // in the excluded 198.51.100.0/24
const ELSEWHERE = '198.51.101.80'; // just outside it
const EXCLUDED6 = '2001:db8:5::1';
const BASE: KillSwitchPolicy = { uplink: 'en0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'bridge100', vmAddress: '192.168.64.2', allowDhcp6: true, blockIpv6: true };
const EXCLUDING: KillSwitchPolicy = { ...BASE, exclude: ['198.51.100.0/24', `${EXCLUDED6}/128`] };

const tcp = (direction: 'in' | 'out', iface: string, src: string, srcPort: number, dst: string, dstPort: number, tcpFlags: string): PfPacket => ({
  direction, interface: iface, af: src.includes(':') ? 'inet6' : 'inet', proto: 'tcp', src, srcPort, dst, dstPort, tcpFlags,
});

(existsSync(CHECK) ? describe : describe.skip)('darwin kill switch with excluded destinations (PF verdicts on the printed rules)', () => {
  let stockMain: string[];
  const printed = new Map<KillSwitchPolicy, string[]>();
  beforeAll(() => {
    stockMain = parsePfRules(readFileSync(join(SHARED, 'fixtures/macos/pfctl-s-rules-main-default-apple-stackexchange-221058.txt'), 'utf8')).map((r) => r.text);
  });
  const verdict = (policy: KillSwitchPolicy, packet: PfPacket, states: PfState[] = []) => {
    if (!printed.has(policy)) printed.set(policy, printedByPfctl(renderDarwinKillSwitch(policy, ANCHOR)));
    return evaluatePf({ '': stockMain, [ANCHOR]: printed.get(policy)! }, packet, states);
  };

  it('a TCP connection to an excluded host passes out on en0, and its SYN-ACK comes back by the state it made', () => {
    const syn = verdict(EXCLUDING, tcp('out', 'en0', MAC, 50100, CORPORATE, 443, 'S'));
    expect(syn).toMatchObject({ action: 'pass', decidedBy: 'rule', rule: 'pass out quick inet from any to 198.51.100.0/24 flags S/SA keep state', stateCreated: true });
    const synAck = tcp('in', 'en0', CORPORATE, 443, MAC, 50100, 'SA');
    expect(verdict(EXCLUDING, synAck, [syn.state!])).toMatchObject({ action: 'pass', decidedBy: 'state' });
    // Without that state the same reply is dropped: replies pass by state only.
    expect(verdict(EXCLUDING, synAck)).toMatchObject({ action: 'block', rule: 'block drop in quick all' });
  });

  it('the same connection is blocked without the exclusion (the test can fail)', () => {
    expect(verdict(BASE, tcp('out', 'en0', MAC, 50100, CORPORATE, 443, 'S'))).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
  });

  it('a host just outside the excluded range stays blocked', () => {
    expect(verdict(EXCLUDING, tcp('out', 'en0', MAC, 50101, ELSEWHERE, 443, 'S'))).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
  });

  it('an excluded host cannot open a connection to the Mac', () => {
    expect(verdict(EXCLUDING, tcp('in', 'en0', CORPORATE, 40000, MAC, 22, 'S'))).toMatchObject({ action: 'block', rule: 'block drop in quick all' });
  });

  it('an excluded IPv6 host passes even with the rest of IPv6 blocked; other IPv6 does not', () => {
    expect(verdict(EXCLUDING, tcp('out', 'en0', MAC6, 50102, EXCLUDED6, 443, 'S'))).toMatchObject({ action: 'pass', rule: `pass out quick inet6 from any to ${EXCLUDED6} flags S/SA keep state` });
    expect(verdict(EXCLUDING, tcp('out', 'en0', MAC6, 50103, '2001:db8:5::2', 443, 'S'))).toMatchObject({ action: 'block', rule: 'block drop quick inet6 all' });
  });

  it('names no interface: after a roam to en1 the exclusion holds there too, with no reload', () => {
    expect(verdict(EXCLUDING, tcp('out', 'en1', '198.51.100.200', 50104, CORPORATE, 443, 'S'))).toMatchObject({ action: 'pass' });
  });
});
