/**
 * The full Up that follows a kill-switch-only Up (`wgctl up` after the handshake), for real in
 * network namespaces (testing/lab.ts, prefix `wfu`) with the Linux driver: it takes that Up's
 * discovery when the routing table is unchanged (one read of the table, no `route get`, no
 * `addr show`; DNS read beside it), discovers again when the table changed in between, and adds
 * the two split routes side by side. The kill-switch-only Up likewise takes what the Describe
 * before it found (`wgctl up` connects with one) while the table is unchanged.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { formatArgv, type Runner, type StepRecord } from '@wgctl/runner';
import { LinuxDriver } from '../../host/linux';
import { ConcurrencyGate, GatedRunner } from '../../testing/concurrency-gate';
import { ADDR, IF, createLab, netnsSpawner, netnsTestsEnabled, type Lab } from '../../testing/lab';
import { MacAgentEngine } from '../engine';
import { JournalStore, type MacJournal, type UpIntent } from '../journal';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const intent: UpIntent = { vmAddress: ADDR.vm, endpoints: [{ ip: ADDR.server, port: ADDR.port }], dnsServers: ['198.51.100.53'], ipv6: 'block' };

describeNetns('the full Up after a kill-switch-only Up (Linux, network namespaces)', () => {
  let lab: Lab;
  let dir: string;
  let engine: MacAgentEngine;
  let gate: ConcurrencyGate;

  const make = (runner: Runner) =>
    new MacAgentEngine({
      driver: new LinuxDriver({ resolvConfPath: join(dir, 'resolv.conf') }),
      runner,
      journal: new JournalStore(join(dir, 'state')),
      logger: silentLogger(),
      spawnMonitor: netnsSpawner(lab.ns.host),
      healCheckMs: 0,
    });

  beforeAll(async () => {
    lab = await createLab('wfu');
    dir = mkdtempSync(join(tmpdir(), 'wfu-up-'));
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 192.0.2.1\n');
    gate = new ConcurrencyGate(2_000);
    engine = make(new GatedRunner(lab.host, gate));
    await tableSettled();
  });

  /**
   * Until the new lab's routing table reads the same twice in a row: these tests compare it
   * between two Ups, and a loaded machine may still be bringing the lab's links up (seen once).
   */
  async function tableSettled(): Promise<void> {
    const read = async () => (await lab.host.run(['ip', '-j', 'route', 'show', 'table', 'main'])).stdout + (await lab.host.run(['ip', '-j', '-6', 'route', 'show', 'table', 'main'])).stdout;
    let last = await read();
    for (let i = 0; i < 30; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = await read();
      if (now === last) return;
      last = now;
    }
  }

  afterEach(async () => {
    expect(await engine.down({}, () => undefined)).toMatchObject({ ok: true });
  });

  afterAll(async () => {
    await engine?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The full Up, its steps' final events. */
  async function fullUp(): Promise<StepRecord[]> {
    const steps: StepRecord[] = [];
    expect(await engine.up(intent, {}, (s) => s.state !== 'started' && steps.push(s))).toMatchObject({ ok: true });
    return steps;
  }
  const readsDns = (c: string) => c.startsWith('readlink ') || c.startsWith('cat ');
  /** Where the Linux driver writes resolv.conf before renaming it into place. */
  const tempFile = () => join(dir, 'resolv.conf.wgctl-tmp');
  const store = () => JSON.parse(readFileSync(join(dir, 'state', 'mac-agent.journal.json'), 'utf8'));
  /** The file written ahead removed, resolv.conf as the user had it, nothing left in the journal about it. */
  const expectWrittenAheadGone = (): void => {
    expect(existsSync(tempFile())).toBe(false);
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe('nameserver 192.0.2.1\n');
    expect(store().dnsPrepared).toBeUndefined();
  };

  /** The commands the steps ran, without the lab's `ip netns exec <ns>`. */
  const commandsOf = (steps: StepRecord[]) => steps.flatMap((s) => s.commands.map((c) => formatArgv(c.argv).replace(/^ip netns exec \S+ /, '')));

  it('takes the discovery of the kill-switch-only Up when the routing table is unchanged: one read of it, and the split routes added side by side', async () => {
    const failClosed: StepRecord[] = [];
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, (s) => s.state !== 'started' && failClosed.push(s))).toMatchObject({ ok: true });
    expect(commandsOf(failClosed.filter((s) => s.step === 'verify')).filter(readsDns)).toHaveLength(2);
    // It wrote ahead what the full Up puts in place, journaled first.
    expect(store().dnsPrepared).toBe(true);
    expect(commandsOf(failClosed.filter((s) => s.step === 'verify'))).toContain(`tee ${tempFile()}`);
    const prepared = readFileSync(tempFile(), 'utf8');
    expect(prepared).toMatch(/^nameserver 198\.51\.100\.53$/m);
    // Both split routes must be in flight together, or the gate fails the step after 2 s.
    gate.expect([`ip route add 0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`, `ip route add 128.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]);
    // Every journal write, as written (the Up keeps changing the one object it saves).
    const saved: MacJournal[] = [];
    const save = JournalStore.prototype.save;
    const saves = jest.spyOn(JournalStore.prototype, 'save').mockImplementation(function (this: JournalStore, journal: MacJournal) {
      saved.push(JSON.parse(JSON.stringify(journal)) as MacJournal);
      save.call(this, journal);
    });
    let steps: StepRecord[];
    try {
      steps = await fullUp();
    } finally {
      saves.mockRestore();
    }
    expect(gate.released).toHaveLength(1);
    // Two journal writes: the write ahead, naming the split routes and DNS before any is made,
    // and the last (up); the steps side by side write none.
    expect(saved).toHaveLength(2);
    const [ahead, last] = saved;
    expect(ahead).toMatchObject({ phase: 'up-in-progress', dns: { servers: ['198.51.100.53'], snapshot: { resolvConf: 'nameserver 192.0.2.1\n' } } });
    expect(ahead.routes.map((x) => `${x.role} ${x.destination}`)).toEqual([`pin ${ADDR.server}/32`, 'split 0.0.0.0/1', 'split 128.0.0.0/1']);
    expect(last).toMatchObject({ phase: 'up' });
    const discover = steps.find((s) => s.step === 'discover')!;
    expect(discover.message).toMatch(new RegExp(`uplink ${IF.hostA} via ${ADDR.gwA}; VM ${ADDR.vm} on ${IF.hostV} .*kill-switch-only Up found them, with its read-back of the routing table`));
    const commands = commandsOf(steps);
    // Before the verify step nothing is read: the kill-switch-only Up's read-back of the table
    // serves discover and the route steps; verify reads it whole (both families) and finds it as that Up did.
    const beforeVerify = commandsOf(steps.filter((s) => s.step !== 'verify'));
    expect(beforeVerify.filter((c) => c.startsWith('ip -j'))).toEqual([]);
    const verify = steps.find((s) => s.step === 'verify')!;
    expect(commandsOf([verify]).filter((c) => c.includes('route show table main')).sort()).toEqual(['ip -j -6 route show table main', 'ip -j route show table main']);
    expect(verify.message).not.toMatch(/changed/);
    expect(commands.some((c) => c.startsWith('ip -j route get') || c.startsWith('ip -j addr'))).toBe(false);
    expect(steps.find((s) => s.step === 'pin-endpoint')).toMatchObject({ state: 'skipped', commands: [] });
    // DNS as the kill-switch-only Up read it (its file unchanged since): no read after the
    // handshake; the dns step only writes (beside the split routes).
    expect(commands.filter(readsDns)).toEqual([]);
    expect(store().dns.snapshot).toMatchObject({ resolvConf: 'nameserver 192.0.2.1\n', services: [{ servers: ['192.0.2.1'] }] });
    // After the handshake DNS is one rename: the file written ahead, in place; nothing left behind.
    expect(commandsOf(steps.filter((s) => s.step === 'dns'))).toEqual([`mv -f -T ${tempFile()} ${join(dir, 'resolv.conf')}`]);
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe(prepared);
    expect(existsSync(tempFile())).toBe(false);
    expect(store().dnsPrepared).toBeUndefined();
    const main = await lab.host.run(['ip', 'route', 'show', 'table', 'main']);
    expect(main.stdout).toContain(`0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`);
    expect(main.stdout).toContain(`128.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`);
  });

  /** The kill-switch-only Up, after a Describe: its discover step's commands and message. */
  async function failClosedUp(): Promise<StepRecord> {
    const steps: StepRecord[] = [];
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, (s) => s.state !== 'started' && steps.push(s))).toMatchObject({ ok: true });
    return steps.find((s) => s.step === 'discover')!;
  }

  it('the kill-switch-only Up takes what the Describe before it found when the routing table is unchanged: the table read, nothing else', async () => {
    await expect(engine.describe(ADDR.vm)).resolves.toMatchObject({ uplink: { interface: IF.hostA, gateway: ADDR.gwA }, vnic: { interface: IF.hostV } });
    const discover = await failClosedUp();
    expect(discover.message).toMatch(new RegExp(`uplink ${IF.hostA} via ${ADDR.gwA}; VM ${ADDR.vm} on ${IF.hostV} .*as the Describe of this run found them`));
    expect(commandsOf([discover])).toEqual(['ip -j route show table main', 'ip -j -6 route show table main']);
    // The full Up after it takes it in turn (`wgctl up` end to end: one discovery, the Describe's).
    gate.expect([]);
    expect((await fullUp()).find((s) => s.step === 'discover')!.message).toMatch(/kill-switch-only Up found them/);
    // Taken once: the next Up (a re-Up, no Describe) discovers again.
    expect(commandsOf([await failClosedUp()])).toEqual(expect.arrayContaining(['ip -j addr show']));
  });

  it('the kill-switch-only Up discovers again when the routing table changed after the Describe', async () => {
    await engine.describe(ADDR.vm);
    await lab.host.run(['ip', 'route', 'add', '198.51.100.0/25', 'via', ADDR.gwA, 'dev', IF.hostA]);
    try {
      const discover = await failClosedUp();
      expect(discover.message).not.toMatch(/Describe/);
      // Discovery afresh: both tables and the addresses, one process each (the vnic from them).
      expect(commandsOf([discover]).sort()).toEqual(['ip -j -6 route show table main', 'ip -j addr show', 'ip -j route show table main']);
    } finally {
      await lab.host.run(['ip', 'route', 'del', '198.51.100.0/25']);
    }
  });

  it('reads DNS again after the handshake when its file changed since the kill-switch-only Up read it: the new one is journaled and restored', async () => {
    const resolvConf = join(dir, 'resolv.conf');
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    writeFileSync(resolvConf, 'nameserver 192.0.2.2\nsearch lan.example\n'); // a DHCP renewal in between
    try {
      await new Promise((resolve) => setTimeout(resolve, 50)); // the inotify event reaches the agent
      const steps = await fullUp();
      // Read by the dns step (beside the route steps), not by discover (before them).
      expect(commandsOf(steps.filter((s) => s.step === 'discover')).filter(readsDns)).toEqual([]);
      expect(commandsOf(steps.filter((s) => s.step === 'dns')).filter(readsDns)).toHaveLength(2);
      expect(store().dns.snapshot.resolvConf).toBe('nameserver 192.0.2.2\nsearch lan.example\n');
      expect(readFileSync(resolvConf, 'utf8')).toMatch(/nameserver 198\.51\.100\.53\nsearch lan\.example/);
      expect(await engine.down({}, () => undefined)).toMatchObject({ ok: true });
      expect(readFileSync(resolvConf, 'utf8')).toBe('nameserver 192.0.2.2\nsearch lan.example\n');
    } finally {
      writeFileSync(resolvConf, 'nameserver 192.0.2.1\n');
    }
  });

  it('writes DNS anew when the full Up asks for other servers than the ones written ahead', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    expect(readFileSync(tempFile(), 'utf8')).toContain('nameserver 198.51.100.53');
    const steps: StepRecord[] = [];
    expect(await engine.up({ ...intent, dnsServers: ['198.51.100.54'] }, {}, (s) => s.state !== 'started' && steps.push(s))).toMatchObject({ ok: true });
    expect(commandsOf(steps.filter((s) => s.step === 'dns'))).toEqual([`tee ${tempFile()}`, `mv -f -T ${tempFile()} ${join(dir, 'resolv.conf')}`]);
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toMatch(/^nameserver 198\.51\.100\.54$/m);
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).not.toContain('198.51.100.53');
    expect(existsSync(tempFile())).toBe(false);
  });

  it('the full Up that sets no DNS removes what was written ahead', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    expect(existsSync(tempFile())).toBe(true);
    const steps: StepRecord[] = [];
    expect(await engine.up({ ...intent, dnsServers: [] }, {}, (s) => s.state !== 'started' && steps.push(s))).toMatchObject({ ok: true });
    expect(commandsOf(steps.filter((s) => s.step === 'dns'))).toEqual([`rm -f ${tempFile()}`]);
    expectWrittenAheadGone();
  });

  it('a Down after the kill-switch-only Up (the handshake never came) removes what was written ahead', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    expect(existsSync(tempFile())).toBe(true);
    const steps: StepRecord[] = [];
    expect(await engine.down({}, (s) => s.state !== 'started' && steps.push(s))).toMatchObject({ ok: true });
    expect(commandsOf(steps.filter((s) => s.step === 'restore-dns'))).toEqual([`rm -f ${tempFile()}`]);
    expectWrittenAheadGone();
  });

  it('an agent restarted after the kill-switch-only Up removes what was written ahead (its journal says so)', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    expect(existsSync(tempFile())).toBe(true);
    // A new agent on the same journal and host: its start re-asserts the kill-switch-only Up.
    const restarted = make(lab.host);
    try {
      await restarted.reconcile();
      expect(existsSync(tempFile())).toBe(false);
      expect(store()).toMatchObject({ phase: 'up-in-progress', intent: { killSwitchOnly: true } });
      expect(store().dnsPrepared).toBeUndefined();
    } finally {
      await restarted.close();
    }
  });

  it('a full Up that fails beside what it journaled ahead is rolled back: nothing of ours left, the route in its way kept', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    // Someone's 128.0.0.0/1 (a destination of ours: the table still reads unchanged) is in the split route's way.
    await lab.host.run(['ip', 'route', 'add', '128.0.0.0/1', 'via', ADDR.gwA, 'dev', IF.hostA]);
    try {
      const outcome = await engine.up(intent, {}, () => undefined);
      expect(outcome).toMatchObject({ ok: false, failedStep: 'split-routes' });
      expect(outcome.error).toMatch(/a different route is in the way.*\(rolled back\)/);
      const main = (await lab.host.run(['ip', 'route', 'show', 'table', 'main'])).stdout;
      expect(main).not.toContain(`0.0.0.0/1 via ${ADDR.vm}`);
      expect(main).not.toContain(`${ADDR.server} via`);
      expect(main).toContain(`128.0.0.0/1 via ${ADDR.gwA} dev ${IF.hostA}`);
      expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe('nameserver 192.0.2.1\n');
      expect(existsSync(tempFile())).toBe(false);
      expect(store()).toMatchObject({ phase: 'down', routes: [], dns: null, killSwitch: null });
    } finally {
      await lab.host.run(['ip', 'route', 'del', '128.0.0.0/1', 'via', ADDR.gwA, 'dev', IF.hostA]);
    }
  });

  it("names a change of the routing table after the kill-switch-only Up's read-back at verify (the roam check follows the Up)", async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    // Someone's route (not ours) appears in between: the uplink might be another now.
    await lab.host.run(['ip', 'route', 'add', '198.51.100.0/25', 'via', ADDR.gwA, 'dev', IF.hostA]);
    try {
      gate.expect([]);
      const steps = await fullUp();
      expect(steps.find((s) => s.step === 'discover')!.message).toMatch(/with its read-back of the routing table/);
      expect(steps.find((s) => s.step === 'verify')!.message).toMatch(/the routing table changed since the kill-switch-only Up read it \(not by this Up\): the roam check that starts after the Up takes it from there/);
    } finally {
      await lab.host.run(['ip', 'route', 'del', '198.51.100.0/25']);
    }
  });

  it("reads the table itself when it will remove an earlier Up's routes (another server): remove-stale would move the fingerprint", async () => {
    const earlier = { ...intent, endpoints: [{ ip: '203.0.113.99', port: ADDR.port }] };
    expect(await engine.up(earlier, {}, () => undefined)).toMatchObject({ ok: true });
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    gate.expect([]);
    const steps = await fullUp();
    expect(steps.find((s) => s.step === 'discover')!.message).not.toMatch(/read-back/);
    expect(steps.find((s) => s.step === 'remove-stale')!.message).toMatch(/203\.0\.113\.99\/32/);
    expect(steps.find((s) => s.step === 'verify')!.message).not.toMatch(/changed/);
  });

  it('discovers again when the routing table changed after the kill-switch-only Up and its read-back was taken (an operation in between)', async () => {
    expect(await engine.up({ ...intent, killSwitchOnly: true }, {}, () => undefined)).toMatchObject({ ok: true });
    // A dry run in between takes the read-back: the full Up reads the table itself.
    expect(await engine.up(intent, { dryRun: true }, () => undefined)).toMatchObject({ ok: true });
    // Someone's route (not ours) appears in between: the uplink might be another now.
    await lab.host.run(['ip', 'route', 'add', '198.51.100.0/25', 'via', ADDR.gwA, 'dev', IF.hostA]);
    try {
      gate.expect([]);
      const steps = await fullUp();
      const discover = steps.find((s) => s.step === 'discover')!;
      expect(discover.message).not.toMatch(/unchanged/);
      // Discovery afresh: both tables and the addresses, one process each (the vnic from them);
      // DNS read beside them (the dry run took the kill-switch-only Up's read of it too).
      expect(commandsOf([discover]).filter((c) => !readsDns(c)).sort()).toEqual(['ip -j -6 route show table main', 'ip -j addr show', 'ip -j route show table main']);
      // Still one read of the table in this Up before verify: discover's, shared with discoverUplink.
      expect(commandsOf(steps.filter((s) => s.step !== 'verify')).filter((c) => c.includes('route show table main'))).toHaveLength(2);
    } finally {
      await lab.host.run(['ip', 'route', 'del', '198.51.100.0/25']);
    }
  });
});
