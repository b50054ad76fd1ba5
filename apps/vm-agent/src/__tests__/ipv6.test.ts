/**
 * The IPv6 side (mac_source6) without a system: validation, the ip6tables tools and argv,
 * the one-batch restore for three tables, the journal field, and the accept_ra rule.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidRequestError } from '@wgctl/agent-kit';
import { parseIptablesSave } from '@wgctl/parsers';
import { ScriptedRunner } from '@wgctl/runner';
import { VmEngine } from '../service/engine/engine';
import { OWN_CHAINS, chainState, desiredRules, ensureChains, ip6Tools, removeChains, type IptablesTools } from '../host/firewall';
import { enableIpv6Forwarding, restoreIpv6Forwarding } from '../service/engine/ipv6-forwarding';
import { JournalStore, type JournalRecord } from '../service/journal';
import { ProcSysctl, type Sysctl } from '../host/sysctl';
import { normalizeMacSource6 } from '../service/validation';

const nft: IptablesTools = { kind: 'nft', iptables: 'iptables-nft', save: 'iptables-nft-save', version: '1.8.9' };
const plan6 = { macSource: '2001:db8:6:1::2/128', lanInterface: 'wv6l0', wgInterface: 'wv6c0', tunnelAddress: '2001:db8:6:64::2' };

describe('normalizeMacSource6', () => {
  it.each([
    ['2001:db8:6:1::2', '2001:db8:6:1::2/128'],
    [' 2001:DB8:6:1:0:0:0:2 ', '2001:db8:6:1::2/128'],
    ['2001:db8:6:1::7/64', '2001:db8:6:1::/64'],
    ['2001:db8:0:1:0:0:1:2', '2001:db8:0:1::1:2/128'],
  ])('%j → %s (as ip6tables prints it)', (input, canonical) => {
    expect(normalizeMacSource6(input)).toBe(canonical);
  });

  it.each([
    ['   ', /^mac_source6: empty/],
    ['nope', /^mac_source6: "nope" is not an IPv6 address or CIDR/],
    ['198.51.100.2', /^mac_source6: "198.51.100.2" is not an IPv6/],
    ['198.51.100.0/24', /^mac_source6: .* is IPv4/],
    ['::/0', /every source/],
    ['2001:db8::1/129', /not an IPv6 address or CIDR/],
    ['fe80::1%eth0', /not an IPv6 address or CIDR/],
  ])('refuses %j naming the field', (input, message) => {
    expect(() => normalizeMacSource6(input)).toThrow(InvalidRequestError);
    expect(() => normalizeMacSource6(input)).toThrow(message);
  });

  it('Up refuses a bad mac_source6 before anything runs (INVALID_ARGUMENT at the RPC layer)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv6-unit-'));
    try {
      const runner = new ScriptedRunner([]);
      const engine = new VmEngine({ configPath: join(dir, 'wv6c0.conf'), runner, sysctl: new ProcSysctl(join(dir, 'sys')), journal: new JournalStore(dir) });
      await expect(engine.up({ macSource: '198.51.100.2', macSource6: '198.51.100.3' })).rejects.toThrow(/^mac_source6: /);
      runner.assertDone();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ip6tables', () => {
  it('uses the IPv6 tools of the backend detected for IPv4', () => {
    expect(ip6Tools(nft)).toEqual({ kind: 'nft', iptables: 'ip6tables-nft', save: 'ip6tables-nft-save', version: '1.8.9' });
    expect(ip6Tools({ kind: 'legacy', iptables: 'iptables-legacy', save: 'iptables-legacy-save', version: '1.8.9' })).toMatchObject({
      iptables: 'ip6tables-legacy',
      save: 'ip6tables-legacy-save',
    });
    expect(ip6Tools({ kind: 'legacy', iptables: 'iptables', save: 'iptables-save', version: '1.6.1' })).toMatchObject({ iptables: 'ip6tables', save: 'ip6tables-save' });
  });

  it('desires NAT66 to the tunnel IPv6 and the IPv6 reject, in the ip6tables -S form', () => {
    const { filter, nat, mangle } = desiredRules(plan6, 6);
    expect(filter).toEqual([
      ['-s', '2001:db8:6:1::2/128', '-i', 'wv6l0', '-o', 'wv6c0', '-j', 'ACCEPT'],
      ['-d', '2001:db8:6:1::2/128', '-i', 'wv6c0', '-o', 'wv6l0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-d', '2001:db8:6:1::2/128', '-i', 'wv6c0', '-j', 'DROP'],
      ['-s', '2001:db8:6:1::2/128', '!', '-o', 'wv6c0', '-j', 'REJECT', '--reject-with', 'icmp6-adm-prohibited'],
    ]);
    expect(nat).toEqual([['-s', '2001:db8:6:1::2/128', '-o', 'wv6c0', '-j', 'SNAT', '--to-source', '2001:db8:6:64::2']]);
    expect(mangle).toEqual(desiredRules({ ...plan6, macSource: '198.51.100.2/32', tunnelAddress: '192.0.2.2' }).mangle);
  });

  it('writes the three chains in ONE ip6tables-nft-restore batch, and nothing when they are in place', async () => {
    const desired = desiredRules(plan6, 6);
    const jump = (chain: string): string => `-m comment --comment wgctl -j ${chain}`;
    const expected =
      `*filter\n:WGCTL-FWD - [0:0]\n-F WGCTL-FWD\n${desired.filter.map((r) => `-A WGCTL-FWD ${r.join(' ')}`).join('\n')}\n-I FORWARD 1 ${jump('WGCTL-FWD')}\nCOMMIT\n` +
      `*nat\n:WGCTL-POST - [0:0]\n-F WGCTL-POST\n-A WGCTL-POST ${desired.nat[0].join(' ')}\n-I POSTROUTING 1 ${jump('WGCTL-POST')}\nCOMMIT\n` +
      `*mangle\n:WGCTL-MSS - [0:0]\n-F WGCTL-MSS\n${desired.mangle.map((r) => `-A WGCTL-MSS ${r.join(' ')}`).join('\n')}\n-I FORWARD 1 ${jump('WGCTL-MSS')}\nCOMMIT\n`;
    const runner = new ScriptedRunner([{ argv: ['ip6tables-nft-restore', '-w', '5', '--noflush'], input: expected }]);
    const tools6 = ip6Tools(nft);
    const empty = parseIptablesSave('');
    const result = await ensureChains(runner, tools6, OWN_CHAINS.map((own) => ({ state: chainState(empty, own), desired: desired[own.table] })));
    runner.assertDone();
    expect(result).toMatch(/^ip6tables-nft: filter WGCTL-FWD .*: created, 4 rules written, jump from FORWARD; nat WGCTL-POST .*; mangle WGCTL-MSS/);

    // What that batch leaves, as ip6tables-save prints it: in place, so no command.
    const applied = parseIptablesSave(expected.replace(/-F \S+\n/g, '').replace(/-I (\S+) 1 /g, '-A $1 '));
    const idle = new ScriptedRunner([]);
    expect(await ensureChains(idle, tools6, OWN_CHAINS.map((own) => ({ state: chainState(applied, own), desired: desired[own.table] })))).toEqual({
      skipped: 'filter WGCTL-FWD, nat WGCTL-POST, mangle WGCTL-MSS: already in place',
    });
    idle.assertDone();

    const remover = new ScriptedRunner([
      {
        argv: ['ip6tables-nft-restore', '-w', '5', '--noflush'],
        input:
          `*filter\n-D FORWARD ${jump('WGCTL-FWD')}\n-F WGCTL-FWD\n-X WGCTL-FWD\nCOMMIT\n` +
          `*nat\n-D POSTROUTING ${jump('WGCTL-POST')}\n-F WGCTL-POST\n-X WGCTL-POST\nCOMMIT\n` +
          `*mangle\n-D FORWARD ${jump('WGCTL-MSS')}\n-F WGCTL-MSS\n-X WGCTL-MSS\nCOMMIT\n`,
      },
    ]);
    await removeChains(remover, tools6, OWN_CHAINS.map((own) => chainState(applied, own)));
    remover.assertDone();
    expect(await removeChains(idle, tools6, OWN_CHAINS.map((own) => chainState(empty, own)))).toEqual({ skipped: 'ip6tables-nft: no wgctl chain present' });
  });
});

describe('journal', () => {
  it('loads a journal written before the v6 field existed, and keeps v6 when given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv6-journal-'));
    try {
      const old = {
        version: 1,
        phase: 'up',
        interface: 'wg0',
        configPath: '/etc/wireguard/wg0.conf',
        macSource: '198.51.100.2/32',
        lanInterface: 'enp0s1',
        tunnelAddress: '192.0.2.2',
        backend: null,
        chains: ['filter'],
        createdTables: [],
        ipForward: null,
        wgInterface: null,
        updatedAtMs: 1,
      };
      const store = new JournalStore(dir);
      writeFileSync(store.path, JSON.stringify(old), { mode: 0o600 });
      const read = await store.read();
      expect(read).toMatchObject({ phase: 'up', macSource: '198.51.100.2/32' });
      expect(read!.v6).toBeUndefined();
      const v6: JournalRecord['v6'] = {
        macSource: '2001:db8:6:1::2/128',
        tunnelAddress: '2001:db8:6:64::2',
        chains: ['filter', 'nat', 'mangle'],
        createdTables: ['filter', 'nat', 'mangle'],
        forwarding: { previous: '0', applied: '1' },
        acceptRa: { interface: 'enp0s1', previous: '1', applied: '2' },
      };
      await store.write({ ...read!, v6 });
      expect((await store.read())!.v6).toEqual(v6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('IPv6 forwarding and accept_ra', () => {
  class MemorySysctl implements Sysctl {
    writes: string[] = [];
    constructor(readonly values: Record<string, string>) {}
    async read(name: string): Promise<string> {
      if (!(name in this.values)) throw new Error(`no ${name}`);
      return this.values[name];
    }
    async write(name: string, value: string): Promise<void> {
      this.writes.push(`${name}=${value}`);
      this.values[name] = value;
    }
    where(name: string): string {
      return name;
    }
  }
  const recordWithV6 = (): JournalRecord => ({
    version: 1,
    phase: 'up-in-progress',
    interface: 'wv6c0',
    configPath: '/x/wv6c0.conf',
    macSource: '198.51.100.2/32',
    lanInterface: 'wv6l0',
    tunnelAddress: '192.0.2.2',
    backend: nft,
    chains: [],
    createdTables: [],
    ipForward: null,
    wgInterface: null,
    v6: { macSource: '2001:db8:6:1::2/128', tunnelAddress: '2001:db8:6:64::2', chains: [], createdTables: [], forwarding: null, acceptRa: null },
    updatedAtMs: 1,
  });
  const RA = 'net.ipv6.conf.wv6l0.accept_ra';
  const FWD = 'net.ipv6.conf.all.forwarding';

  it('accept_ra 1 becomes 2 BEFORE forwarding goes on, each journaled before its write; Down restores forwarding first', async () => {
    const sysctl = new MemorySysctl({ [FWD]: '0', [RA]: '1' });
    const record = recordWithV6();
    const journaled: string[] = [];
    const persist = async (r: JournalRecord): Promise<void> => {
      journaled.push(`${JSON.stringify(r.v6!.acceptRa)} ${JSON.stringify(r.v6!.forwarding)} before ${sysctl.writes.length} writes`);
    };
    const runner = new ScriptedRunner([]);
    await enableIpv6Forwarding(runner, sysctl, record, 'wv6l0', { dryRun: false, persist });
    expect(sysctl.writes).toEqual([`${RA}=2`, `${FWD}=1`]);
    expect(journaled).toEqual([
      '{"interface":"wv6l0","previous":"1","applied":"2"} null before 0 writes',
      '{"interface":"wv6l0","previous":"1","applied":"2"} {"previous":"0","applied":"1"} before 1 writes',
    ]);
    // Again: nothing to do.
    expect(await enableIpv6Forwarding(runner, sysctl, record, 'wv6l0', { dryRun: false, persist })).toEqual({
      skipped: `${FWD} is already 1; ${RA} is 2`,
    });
    sysctl.writes = [];
    await restoreIpv6Forwarding(runner, sysctl, record.v6!, { dryRun: false });
    expect(sysctl.writes).toEqual([`${FWD}=0`, `${RA}=1`]);
    runner.assertDone();
  });

  it('leaves accept_ra 0 and 2 alone, and a value someone else changed since', async () => {
    for (const ra of ['0', '2']) {
      const sysctl = new MemorySysctl({ [FWD]: '0', [RA]: ra });
      const record = recordWithV6();
      await enableIpv6Forwarding(new ScriptedRunner([]), sysctl, record, 'wv6l0', { dryRun: false, persist: async () => undefined });
      expect(sysctl.writes).toEqual([`${FWD}=1`]);
      expect(record.v6!.acceptRa).toBeNull();
    }
    const sysctl = new MemorySysctl({ [FWD]: '0', [RA]: '1' });
    const record = recordWithV6();
    await enableIpv6Forwarding(new ScriptedRunner([]), sysctl, record, 'wv6l0', { dryRun: false, persist: async () => undefined });
    sysctl.values[RA] = '0'; // the admin changed it meanwhile
    sysctl.writes = [];
    const result = await restoreIpv6Forwarding(new ScriptedRunner([]), sysctl, record.v6!, { dryRun: false });
    expect(sysctl.writes).toEqual([`${FWD}=0`]);
    expect(result).toMatch(new RegExp(`${RA.replace(/\./g, '\\.')} is 0, set by someone else since: left as is`));
  });

  it('dry-run says what it would write and writes nothing', async () => {
    const sysctl = new MemorySysctl({ [FWD]: '0', [RA]: '1' });
    const record = recordWithV6();
    const result = await enableIpv6Forwarding(new ScriptedRunner([]), sysctl, record, 'wv6l0', { dryRun: true, persist: async () => undefined });
    expect(result).toBe(`would write 2 to ${RA} (now 1); would write 1 to ${FWD} (now 0)`);
    expect(sysctl.writes).toEqual([]);
    expect(record.v6).toMatchObject({ forwarding: null, acceptRa: null });
  });
});
