/**
 * Issue #15 item 5 on the VM, for real (wg-quick with wireguard-go, iptables-nft, sysctls, in
 * network namespaces of its own: testing/netns.ts, prefix `wjc`): after an Up, the journal is
 * corrupted (garbage, truncated, valid JSON with a wrong checksum) or removed with its previous
 * copy (the old advice); a new engine's Down removes our chains by name and takes down the
 * interface of the config, and names the sysctls it could not put back instead of "all clean".
 * With the previous copy sound, Down restores everything from it.
 */
import { readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { JournalStore } from '../service/journal';
import { collect, engineFor } from '../testing/engine-harness';
import { VmLab, canUseNetns } from '../testing/netns';

const describeNetns = canUseNetns() ? describe : describe.skip;
jest.setTimeout(60_000);

const corruptions: [string, (store: JournalStore) => Promise<void> | void][] = [
  ['garbage bytes', (s) => writeFileSync(s.path, Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a]))],
  ['truncated', (s) => truncateSync(s.path, Math.floor(statSync(s.path).size / 3))],
  ['valid JSON with a wrong checksum', (s) => writeFileSync(s.path, readFileSync(s.path, 'utf8').replace('"phase": "up"', '"phase": "up-in-progress"'))],
  ['removed with its previous copy (the old advice)', (s) => s.remove()],
];

describeNetns('vm-agent Down without a usable journal (network namespaces)', () => {
  let lab: VmLab;

  beforeEach(async () => {
    lab = await new VmLab({ prefix: 'wjc' }).create();
  });
  afterEach(async () => {
    await lab?.destroy();
  });

  const hostState = async () => ({
    ruleset: await lab.vmRuleset(),
    link: await lab.vmLinkExists(lab.wgVm),
    ipForward: await lab.vmSysctl('net.ipv4.ip_forward'),
    nftTables: await lab.vmNftTables(),
  });

  /** Up by one engine; the journal is then damaged and a new engine (a restarted agent) is handed the Down. */
  async function upThenDamage(damage: (store: JournalStore) => Promise<void> | void, keepPrevious: boolean) {
    const before = await hostState();
    expect(before).toMatchObject({ link: false, ipForward: '0' });
    const up = await collect((onStep) => engineFor(lab).up({ macSource: lab.macAddress }, { onStep }));
    expect(up.outcome).toMatchObject({ ok: true });
    expect(await hostState()).toMatchObject({ link: true, ipForward: '1', ruleset: expect.stringContaining('WGCTL-') });
    const store = new JournalStore(lab.stateDir);
    await damage(store);
    if (!keepPrevious) rmSync(store.previousPath, { force: true });
    return { before, next: engineFor(lab) };
  }

  it.each(corruptions)('journal %s: our chains, their tables and the tunnel are gone; ip_forward and src_valid_mark are named, not claimed', async (_name, damage) => {
    const { before, next } = await upThenDamage(damage, false);
    const down = await collect((onStep) => next.down({}, { onStep }));
    expect(down.outcome).toMatchObject({ ok: true });
    const after = await hostState();
    expect(after.ruleset).not.toContain('WGCTL-');
    expect(after.link).toBe(false);
    // The iptables-nft tables our chains needed are gone too (pristine once our chains left).
    expect(after.nftTables).toBe(before.nftTables);
    expect(after.ipForward).toBe('1'); // its value before Up was only in the journal
    expect(down.outcome.notRestored).toEqual([
      expect.stringMatching(/^net\.ipv4\.ip_forward=1 left as it is: its value before `wgctl up` was only in the journal/),
      expect.stringMatching(/^net\.ipv4\.conf\.all\.src_valid_mark=1 left as it is/),
    ]);
    expect(down.finals).toContainEqual(['wg-quick-down', 'done']);
    expect(before.ruleset).not.toContain('WGCTL-');
  });

  it.each(corruptions.slice(0, 3))('journal %s but its previous copy sound: everything restored from it, nothing to report', async (_name, damage) => {
    const { before, next } = await upThenDamage(damage, true);
    const down = await collect((onStep) => next.down({}, { onStep }));
    expect(down.outcome).toMatchObject({ ok: true });
    expect(down.outcome.notRestored).toBeUndefined();
    expect(await hostState()).toEqual(before);
    expect(down.steps.find((s) => s.step === 'read-journal' && s.state === 'done')?.message).toMatch(/^previous copy of the journal \(/);
  });

  it('never up, no journal, the interface up by someone else: left alone, nothing to report', async () => {
    await lab.vm.run(['wg-quick', 'up', lab.vmConfigPath]);
    const down = await collect((onStep) => engineFor(lab).down({}, { onStep }));
    expect({ ...down.outcome, totalMs: 0 }).toEqual({ ok: true, failedStep: '', error: '', totalMs: 0 });
    expect(await lab.vmLinkExists(lab.wgVm)).toBe(true);
  });
});
