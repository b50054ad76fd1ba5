/**
 * The one restore batch for the three own chains, against real iptables-nft-restore and
 * iptables-legacy-restore in a network namespace of its own (`wvf-…`). What Up's guarantees
 * rest on: a multi-table batch is NOT atomic across tables — each table commits at its COMMIT —
 * so a rejected part leaves the tables before it applied (the journal lists them all
 * beforehand, and the removal takes exactly what exists), and nothing of its own table.
 */
import { randomBytes } from 'node:crypto';
import { parseIptablesSave } from '@wgctl/parsers';
import { ExecRunner, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';
import { desiredRules, ensureChains, ownChainsAgainst, ownChainsWanted, readRuleset, removeChains, type IptablesTools } from '../host/firewall';
import { NetnsRunner, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;

/** Counts the processes each test starts. */
class CountingRunner implements Runner {
  readonly argvs: (readonly string[])[] = [];
  constructor(private readonly inner: Runner) {}
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.argvs.push(argv);
    return this.inner.run(argv, options);
  }
}

const plan = { macSource: '198.51.100.2/32', lanInterface: 'wvfl0', wgInterface: 'wvfc0', tunnelAddress: '192.0.2.2' };
/** A user's own rule in the hook chain: never touched. */
const USER_RULE = ['-A', 'FORWARD', '-s', '203.0.113.9/32', '-j', 'ACCEPT'];

describeNetns.each(['nft', 'legacy'] as const)('one restore batch for filter, nat and mangle (iptables-%s, real)', (kind) => {
  const host = new ExecRunner();
  const ns = `wvf-${randomBytes(3).toString('hex')}`;
  const tools: IptablesTools = { kind, iptables: `iptables-${kind}`, save: `iptables-${kind}-save`, version: '1.8.9' };
  let runner: CountingRunner;

  beforeAll(async () => {
    await host.run(['ip', 'netns', 'add', ns]);
  });
  afterAll(async () => {
    await host.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });
  beforeEach(async () => {
    const inNs = new NetnsRunner(host, ns);
    // A fresh ruleset with one rule of the user's (legacy: every table emptied; nft: the tables deleted).
    if (kind === 'nft') await inNs.run(['nft', 'flush', 'ruleset']);
    else for (const table of ['filter', 'nat', 'mangle']) for (const flag of ['-F', '-X']) await inNs.run(['iptables-legacy', '-t', table, flag]);
    await inNs.run([tools.iptables, ...USER_RULE]);
    runner = new CountingRunner(inNs);
  });

  const restores = (): number => runner.argvs.filter((a) => a.includes(`iptables-${kind}-restore`)).length;
  const live = () => readRuleset(runner, tools);

  it('writes all three chains in ONE process, and a second time runs none', async () => {
    const desired = desiredRules(plan);
    const message = await ensureChains(runner, tools, ownChainsWanted(await live(), desired));
    expect(message).toMatch(/^iptables-\w+: filter WGCTL-FWD \(.+\): created, 4 rules written, jump from FORWARD; nat WGCTL-POST .+; mangle WGCTL-MSS .+created/);
    expect(restores()).toBe(1);
    expect(ownChainsAgainst(await live(), desired).map((c) => c.inPlace)).toEqual([true, true, true]);
    expect(await ensureChains(runner, tools, ownChainsWanted(await live(), desired))).toEqual({ skipped: expect.stringMatching(/already in place/) });
    expect(restores()).toBe(1);
  });

  it('a rejected mangle part leaves filter and nat applied and says so; one removal takes exactly what exists', async () => {
    const desired = desiredRules(plan);
    // A target no kernel has: rejected by the restore tool at that line.
    const broken = { ...desired, mangle: [['-o', plan.wgInterface, '-j', 'WGCTL-NO-SUCH-TARGET']] };
    await expect(ensureChains(runner, tools, ownChainsWanted(await live(), broken))).rejects.toThrow(
      /\[the mangle part of the batch was rejected; applied before it \(each table commits on its own\): filter WGCTL-FWD, nat WGCTL-POST\]$/,
    );
    const after = ownChainsAgainst(await live(), desired);
    expect(after.map((c) => [c.state.own.table, c.inPlace, c.state.chainExists])).toEqual([
      ['filter', true, true],
      ['nat', true, true],
      ['mangle', false, false],
    ]);
    expect(await removeChains(runner, tools, after.map((c) => c.state))).toMatch(/^iptables-\w+: filter WGCTL-FWD: 1 jump\(s\) and the chain removed; nat WGCTL-POST: 1 jump\(s\) and the chain removed$/);
    const left = await live();
    expect(ownChainsAgainst(left, desired).some((c) => c.state.chainExists || c.state.jumps > 0)).toBe(false);
    expect(left.find((t) => t.name === 'filter')!.rules.map((r) => ['-A', r.chain, ...r.args])).toEqual([USER_RULE]);
    expect(restores()).toBe(2); // the rejected batch and the removal
  });

  it('a rejected first part applies nothing', async () => {
    const broken = { ...desiredRules(plan), filter: [['-j', 'WGCTL-NO-SUCH-TARGET']] };
    await expect(ensureChains(runner, tools, ownChainsWanted(await live(), broken))).rejects.toThrow(/\[the filter part of the batch was rejected; nothing applied\]$/);
    const tables = parseIptablesSave((await runner.run([tools.save])).stdout);
    expect(ownChainsAgainst(tables, desiredRules(plan)).some((c) => c.state.chainExists || c.state.jumps > 0)).toBe(false);
  });
});
