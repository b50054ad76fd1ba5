import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIptablesSave } from '@wgctl/parsers';
import { RuleRunner, ScriptedRunner } from '@wgctl/runner';
import {
  OWN_CHAINS,
  chainInPlace,
  chainState,
  desiredRules,
  detectBackend,
  ensureChains,
  ownChain,
  removeChains,
  tableIsPristine,
  type IptablesTools,
} from '../host/firewall';

const FIXTURES = join(__dirname, '../../../../libs/parsers/src/linux/__fixtures__');
const plan = { macSource: '198.51.100.2/32', lanInterface: 'wtvl0', wgInterface: 'wtv0', tunnelAddress: '192.0.2.2' };
const tools: IptablesTools = { kind: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', version: '1.8.9' };
const restore = ['iptables-nft-restore', '-w', '5', '--noflush'];
const batch = (table: string, ...lines: string[][]): string => `*${table}\n${lines.map((l) => l.join(' ')).join('\n')}\nCOMMIT\n`;
const fwdJump = ['-m', 'comment', '--comment', 'wgctl', '-j', 'WGCTL-FWD'];

describe('desiredRules', () => {
  it('is exactly what iptables-save prints for the rules (real capture), so a second Up compares equal', () => {
    const tables = parseIptablesSave(readFileSync(join(FIXTURES, 'iptables-save-nft-c.txt'), 'utf8'));
    const desired = desiredRules(plan);
    // The capture predates the DROP of unsolicited tunnel → Mac traffic; everything else is the same text.
    const filter = chainState(tables, ownChain('filter'));
    expect(filter.rules).toEqual(desired.filter.filter((r) => !r.includes('DROP')));
    for (const table of ['nat', 'mangle'] as const) {
      const state = chainState(tables, ownChain(table));
      expect(chainInPlace(state, desired[table])).toBe(true);
    }
    expect(filter.jumps).toBe(1);
  });

  it('has the kill switch last in the filter chain and SNATs to the tunnel address', () => {
    const { filter, nat, mangle } = desiredRules(plan);
    expect(filter[filter.length - 1]).toEqual(['-s', '198.51.100.2/32', '!', '-o', 'wtv0', '-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited']);
    expect(nat).toEqual([['-s', '198.51.100.2/32', '-o', 'wtv0', '-j', 'SNAT', '--to-source', '192.0.2.2']]);
    expect(mangle.map((r) => r.slice(0, 2))).toEqual([
      ['-o', 'wtv0'],
      ['-i', 'wtv0'],
    ]);
  });
});

describe('ensureChains / removeChains (one chain)', () => {
  const save = (body: string): string => `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${body}COMMIT\n`;
  const own = ownChain('filter');
  const desired = desiredRules(plan).filter;

  it('creates the chain, its rules and one jump when absent, in one restore batch', async () => {
    const runner = new ScriptedRunner([
      {
        argv: restore,
        input: batch(
          'filter',
          [':WGCTL-FWD', '-', '[0:0]'],
          ['-F', 'WGCTL-FWD'],
          ...desired.map((rule) => ['-A', 'WGCTL-FWD', ...rule]),
          ['-I', 'FORWARD', '1', ...fwdJump],
        ),
      },
    ]);
    const message = await ensureChains(runner, tools, [{ state: chainState(parseIptablesSave(save('')), own), desired }]);
    expect(message).toMatch(/created, 4 rules written, jump from FORWARD/);
    runner.assertDone();
  });

  it('uses the restore binary of the detected backend', async () => {
    const legacy: IptablesTools = { kind: 'legacy', iptables: 'iptables-legacy', save: 'iptables-legacy-save', version: '1.8.9' };
    const runner = new ScriptedRunner([{ argv: ['iptables-legacy-restore', '-w', '5', '--noflush'] }]);
    await ensureChains(runner, legacy, [{ state: chainState(parseIptablesSave(save('')), own), desired }]);
    runner.assertDone();
  });

  it('runs nothing when the chain is already exact', async () => {
    const body = `:WGCTL-FWD - [0:0]\n-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n${desired.map((r) => `-A WGCTL-FWD ${r.join(' ')}\n`).join('')}`;
    const runner = new ScriptedRunner([]);
    expect(await ensureChains(runner, tools, [{ state: chainState(parseIptablesSave(save(body)), own), desired }])).toEqual({
      skipped: 'filter WGCTL-FWD: already in place',
    });
    runner.assertDone();
  });

  it('rebuilds a chain with other content and removes a duplicate jump', async () => {
    const body =
      ':WGCTL-FWD - [0:0]\n-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n-A WGCTL-FWD -s 198.51.100.9/32 -j ACCEPT\n';
    const runner = new ScriptedRunner([
      {
        argv: restore,
        input: batch(
          'filter',
          [':WGCTL-FWD', '-', '[0:0]'],
          ['-F', 'WGCTL-FWD'],
          ...desired.map((rule) => ['-A', 'WGCTL-FWD', ...rule]),
          ['-D', 'FORWARD', ...fwdJump],
        ),
      },
    ]);
    expect(await ensureChains(runner, tools, [{ state: chainState(parseIptablesSave(save(body)), own), desired }])).toMatch(/4 rules written, duplicate jump removed$/);
    runner.assertDone();
  });

  it('only adds the jump when the chain is right but not jumped to', async () => {
    const body = `:WGCTL-FWD - [0:0]\n${desired.map((r) => `-A WGCTL-FWD ${r.join(' ')}\n`).join('')}`;
    const runner = new ScriptedRunner([{ argv: restore, input: batch('filter', ['-I', 'FORWARD', '1', ...fwdJump]) }]);
    expect(await ensureChains(runner, tools, [{ state: chainState(parseIptablesSave(save(body)), own), desired }])).toMatch(/: jump from FORWARD$/);
    runner.assertDone();
  });

  it('removes jumps and chain in one batch, and refuses when a foreign rule still jumps to it', async () => {
    const body = ':WGCTL-FWD - [0:0]\n-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n-A WGCTL-FWD -j ACCEPT\n';
    const runner = new ScriptedRunner([
      { argv: restore, input: batch('filter', ['-D', 'FORWARD', ...fwdJump], ['-F', 'WGCTL-FWD'], ['-X', 'WGCTL-FWD']) },
    ]);
    await removeChains(runner, tools, [chainState(parseIptablesSave(save(body)), own)]);
    runner.assertDone();
    const foreign = `${body}-A INPUT -j WGCTL-FWD\n`;
    await expect(removeChains(new ScriptedRunner([]), tools, [chainState(parseIptablesSave(save(foreign)), own)])).rejects.toThrow(
      /also jumped to by a rule wgctl did not add \(chain INPUT: -j WGCTL-FWD\)/,
    );
    expect(await removeChains(new ScriptedRunner([]), tools, [chainState(parseIptablesSave(save('')), own)])).toEqual({ skipped: 'iptables-nft: no wgctl chain present' });
  });

  it('knows a pristine table from one with rules or a non-ACCEPT policy', () => {
    expect(tableIsPristine(parseIptablesSave(save('')), 'filter')).toBe(true);
    expect(tableIsPristine(parseIptablesSave(save('-A INPUT -j ACCEPT\n')), 'filter')).toBe(false);
    expect(tableIsPristine(parseIptablesSave(save('').replace(':FORWARD ACCEPT', ':FORWARD DROP')), 'filter')).toBe(false);
    expect(tableIsPristine([], 'filter')).toBe(false);
  });
});

describe('detectBackend', () => {
  const legacyOnly = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j ACCEPT\nCOMMIT\n';
  const reply = (text: string) => ({ stdout: text });
  const runnerWith = (version: string, nftSave: string | null, legacySave: string | null) =>
    new RuleRunner([
      { match: (a) => a[0] === 'iptables' && a[1] === '--version', reply: reply(version) },
      { match: (a) => a[0] === 'iptables-nft-save', reply: nftSave === null ? { exitCode: 127 } : reply(nftSave) },
      { match: (a) => a[0] === 'iptables-legacy-save', reply: legacySave === null ? { exitCode: 127 } : reply(legacySave) },
    ]);

  it('follows `iptables --version` when rules are where it points', async () => {
    const { tools: t, evidence } = await detectBackend(runnerWith('iptables v1.8.9 (nf_tables)\n', '', ''));
    expect(t).toEqual({ kind: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', version: '1.8.9' });
    expect(evidence).toMatch(/existing rules: nft 0, legacy 0/);
  });

  it('picks legacy when only legacy holds rules (they do not see each other)', async () => {
    const { tools: t, evidence, ruleset } = await detectBackend(runnerWith('iptables v1.8.9 (nf_tables)\n', '', legacyOnly));
    expect(t.kind).toBe('legacy');
    // The rules it read to decide are the chosen backend's: the caller need not read again.
    expect(ruleset).toEqual(parseIptablesSave(legacyOnly));
    expect(t.iptables).toBe('iptables-legacy');
    expect(evidence).toMatch(/only legacy holds rules/);
  });

  it('ignores its own leftovers when counting, and falls back to plain iptables without variants', async () => {
    const own = '*filter\n:FORWARD ACCEPT [0:0]\n:WGCTL-FWD - [0:0]\n-A FORWARD -m comment --comment wgctl -j WGCTL-FWD\n-A WGCTL-FWD -j ACCEPT\nCOMMIT\n';
    expect((await detectBackend(runnerWith('iptables v1.8.9 (nf_tables)\n', '', own))).tools.kind).toBe('nft');
    expect((await detectBackend(runnerWith('iptables v1.6.1\n', null, null))).tools).toEqual({
      kind: 'legacy',
      iptables: 'iptables',
      save: 'iptables-save',
      version: '1.6.1',
    });
  });

  it('says so when iptables is missing', async () => {
    const runner = new RuleRunner([{ match: () => true, reply: { exitCode: 127 } }]);
    await expect(detectBackend(runner)).rejects.toThrow(/iptables is not installed/);
  });

  it('covers all three own chains', () => {
    expect(OWN_CHAINS.map((c) => `${c.table}/${c.hook}→${c.chain}`)).toEqual(['filter/FORWARD→WGCTL-FWD', 'nat/POSTROUTING→WGCTL-POST', 'mangle/FORWARD→WGCTL-MSS']);
  });
});
