/**
 * `wgctl portal` on darwin: the kill switch with a captive-portal sign-in window, as the real
 * pfctl grammar prints it (shared/tools/pfctl-grammar), judged by PF's verdicts
 * (testing/pf-evaluator.ts, xnu pf.c semantics) under the stock main ruleset of macOS: DNS to
 * the uplink's resolver and TCP 80/443 anywhere leave and their replies come back by state;
 * nothing else passes, nobody opens a flow to the Mac, blocked IPv6 stays blocked, and the VM's
 * traffic on the vnic side is not widened. normalizePfRuleset must print what pfctl prints
 * (status compares live rules with it). Skipped like pf-grammar.test.ts without ../shared.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { normalizePfRuleset, parsePfRules } from '@wgctl/parsers';
import { evaluatePf, type PfPacket, type PfState } from '../../testing/pf-evaluator';
import { renderDarwinKillSwitch } from '../darwin';
import type { KillSwitchPolicy } from '../driver';

const SHARED = resolve(__dirname, '../../../../../../shared');
const CHECK = join(SHARED, 'tools/pfctl-grammar/check.sh');
const ANCHOR = 'com.apple/000.wgctl';

function printedByPfctl(text: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'wgctl-pf-portal-'));
  try {
    writeFileSync(join(dir, 'rules.conf'), text);
    const result = spawnSync(CHECK, [join(dir, 'rules.conf'), ANCHOR], { encoding: 'utf8', timeout: 120_000 });
    if (result.status !== 0) throw new Error(`pfctl grammar rejected the rules:\n${result.stderr}\n--- rules:\n${text}`);
    return result.stdout.split('\n').filter((l) => l.trim() !== '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MAC = '192.0.2.50';
const MAC6 = '2001:db8:1::50';
const RESOLVER = '192.0.2.1';
const PORTAL = '192.0.2.1';
const LOGIN_HOST = '198.51.100.80'; // a third-party login page (HTTPS)
const BASE: KillSwitchPolicy = { uplink: 'en0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'bridge100', vmAddress: '192.168.64.2', allowDhcp6: true, blockIpv6: true };
const WINDOW: KillSwitchPolicy = { ...BASE, portalWindow: { untilMs: Date.UTC(2026, 11, 3, 12, 0, 0), resolvers: [RESOLVER, '2001:db8:1::1'] } };
const WINDOW6: KillSwitchPolicy = { ...WINDOW, blockIpv6: false };

const packet = (proto: 'tcp' | 'udp', direction: 'in' | 'out', src: string, srcPort: number, dst: string, dstPort: number, tcpFlags?: string, iface = 'en0'): PfPacket => ({
  direction,
  interface: iface,
  af: src.includes(':') ? 'inet6' : 'inet',
  proto,
  src,
  srcPort,
  dst,
  dstPort,
  ...(tcpFlags ? { tcpFlags } : {}),
});

(existsSync(CHECK) ? describe : describe.skip)('darwin kill switch with a captive-portal sign-in window (PF verdicts on the printed rules)', () => {
  let stockMain: string[];
  const printed = new Map<KillSwitchPolicy, string[]>();
  beforeAll(() => {
    stockMain = parsePfRules(readFileSync(join(SHARED, 'fixtures/macos/pfctl-s-rules-main-default-apple-stackexchange-221058.txt'), 'utf8')).map((r) => r.text);
  });
  const rules = (policy: KillSwitchPolicy) => {
    if (!printed.has(policy)) printed.set(policy, printedByPfctl(renderDarwinKillSwitch(policy, ANCHOR)));
    return printed.get(policy)!;
  };
  const verdict = (policy: KillSwitchPolicy, p: PfPacket, states: PfState[] = []) => evaluatePf({ '': stockMain, [ANCHOR]: rules(policy) }, p, states);

  it('is accepted by the real grammar and printed as normalizePfRuleset predicts', () => {
    for (const policy of [WINDOW, WINDOW6]) expect(normalizePfRuleset(renderDarwinKillSwitch(policy, ANCHOR))).toEqual(rules(policy));
  });

  it('lets the browser reach the portal over HTTP and a login page over HTTPS, replies by state', () => {
    const syn = verdict(WINDOW, packet('tcp', 'out', MAC, 50100, PORTAL, 80, 'S'));
    expect(syn).toMatchObject({ action: 'pass', rule: 'pass out quick proto tcp from any to any port = 80 flags S/SA keep state', stateCreated: true });
    expect(verdict(WINDOW, packet('tcp', 'in', PORTAL, 80, MAC, 50100, 'SA'), [syn.state!])).toMatchObject({ action: 'pass', decidedBy: 'state' });
    expect(verdict(WINDOW, packet('tcp', 'out', MAC, 50101, LOGIN_HOST, 443, 'S'))).toMatchObject({ action: 'pass', stateCreated: true });
  });

  it("resolves through the uplink's resolver only", () => {
    const query = verdict(WINDOW, packet('udp', 'out', MAC, 53000, RESOLVER, 53));
    expect(query).toMatchObject({ action: 'pass', rule: `pass out quick inet proto udp from any to ${RESOLVER} port = 53 keep state` });
    expect(verdict(WINDOW, packet('udp', 'in', RESOLVER, 53, MAC, 53000), [query.state!])).toMatchObject({ action: 'pass', decidedBy: 'state' });
    expect(verdict(WINDOW, packet('udp', 'out', MAC, 53001, '8.8.8.8', 53))).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
  });

  it('lets nothing else out, and nothing in that the Mac did not open', () => {
    expect(verdict(WINDOW, packet('udp', 'out', MAC, 50200, LOGIN_HOST, 443))).toMatchObject({ action: 'block' }); // QUIC
    expect(verdict(WINDOW, packet('tcp', 'out', MAC, 50201, LOGIN_HOST, 22, 'S'))).toMatchObject({ action: 'block' });
    expect(verdict(WINDOW, packet('tcp', 'in', LOGIN_HOST, 443, MAC, 22, 'S'))).toMatchObject({ action: 'block', rule: 'block drop in quick all' });
  });

  it('keeps blocked IPv6 blocked, and lets IPv6 web out when IPv6 is routed', () => {
    expect(verdict(WINDOW, packet('tcp', 'out', MAC6, 50300, '2001:db8:5::1', 443, 'S'))).toMatchObject({ action: 'block', rule: 'block drop quick inet6 all' });
    expect(verdict(WINDOW6, packet('tcp', 'out', MAC6, 50300, '2001:db8:5::1', 443, 'S'))).toMatchObject({ action: 'pass' });
  });

  it('without the window none of it passes (the test can fail)', () => {
    expect(verdict(BASE, packet('tcp', 'out', MAC, 50100, PORTAL, 80, 'S'))).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
    expect(verdict(BASE, packet('udp', 'out', MAC, 53000, RESOLVER, 53))).toMatchObject({ action: 'block', rule: 'block drop out quick all' });
  });
});
