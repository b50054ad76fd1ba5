/**
 * The independent reads of a step run side by side (docs/BENCHMARKS.md #1: each process costs
 * 3–7 ms, so a step with four reads in a row cost the sum), and Up starts the reads that gate
 * `wg-quick up` together (the backend detection's only once wg-quick has started). Proof that cannot pass by timing luck: a fake system holds every
 * read of the watched steps until ALL the reads that step is expected to run have started.
 * Reads made one after another never get there: the first is refused, and Up (or Down) fails.
 * The mutations stay in their order: the whole command sequence of an Up and a Down is pinned
 * below. Then `wg-quick up` beside the firewall steps: what runs while it runs, and how a
 * failure or a stop on either side ends the Up only once wg-quick has ended.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunOptions, RunResult, Runner, StepListener, StepRecord } from '@wgctl/runner';
import { derivePublicKey } from '../host/config';
import { VmEngine } from '../service/engine/engine';
import { peerAddressOf } from '@wgctl/transport';
import { callerAddress } from '../service/engine/read-ahead';
import { OWN_CHAINS, desiredRules } from '../host/firewall';
import { JournalStore } from '../service/journal';
import { RunnerSysctl } from '../host/sysctl';

const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');
const SERVER_KEY = derivePublicKey(key(2));
const MAC = '198.51.100.2/32';
const plan = { macSource: MAC, lanInterface: 'wtvl0', wgInterface: 'wtv0', tunnelAddress: '192.0.2.2' };
/** A temporary directory holding the VM's wg-quick config `wtv0.conf` (mode 0600, as the agent requires). */
function vmDirWithConfig(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(
    join(dir, 'wtv0.conf'),
    `[Interface]\nPrivateKey = ${key(1)}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${SERVER_KEY}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n`,
    { mode: 0o600 },
  );
  return dir;
}
/** A barrier not complete after this long means the reads ran one after another. */
const BARRIER_MS = 2_000;

/** Just enough of a Linux VM (nft-backed iptables, wg-quick, sysctl) for a whole Up and Down. */
class FakeVm {
  /** nft-backed tables that exist, and those holding the agent's chain. */
  readonly tables = new Set<string>();
  readonly chains = new Set<string>();
  linkUp = false;
  ipForward = '0';
  srcValidMark = '0';
  /** false: wg-quick up exits 0 but no interface appears. */
  wgQuickCreatesLink = true;
  /** Where the rules live (and what `iptables` is). */
  backend: 'nft' | 'legacy' = 'nft';
  /** false: `nft` is not installed (exit 127), so wg-quick would use iptables-restore. */
  nftInstalled = true;
  /** false: no iptables command at all (exit 127, as the runner reports a missing command). */
  iptablesInstalled = true;
  /** The peer's latest handshake (epoch seconds, 0: none yet) as each `wg show` read finds it. */
  handshakeAt: () => number = () => Math.floor(Date.now() / 1000);

  iptablesSave(): string {
    const desired = desiredRules(plan);
    const hooks: Record<string, string[]> = { filter: ['INPUT', 'FORWARD', 'OUTPUT'], nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'], mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] };
    return OWN_CHAINS.filter((own) => this.tables.has(own.table)).map((own) => {
      const lines = [`*${own.table}`, ...hooks[own.table].map((h) => `:${h} ACCEPT [0:0]`)];
      if (this.chains.has(own.table)) {
        lines.push(`:${own.chain} - [0:0]`, `-A ${own.hook} -m comment --comment wgctl -j ${own.chain}`);
        lines.push(...desired[own.table].map((rule) => `-A ${own.chain} ${rule.join(' ')}`));
      }
      return [...lines, 'COMMIT', ''].join('\n');
    }).join('');
  }

  reply(argv: readonly string[], input = ''): { stdout?: string; exitCode?: number } {
    const line = argv.join(' ');
    if (!this.iptablesInstalled && argv[0].startsWith('iptables')) return { exitCode: 127 };
    if (line === 'iptables --version') return { stdout: `iptables v1.8.9 (${this.backend === 'nft' ? 'nf_tables' : 'legacy'})\n` };
    if (line === 'iptables-nft-save') return { stdout: this.backend === 'nft' ? this.iptablesSave() : '' };
    if (line === 'iptables-legacy-save') return { stdout: this.backend === 'legacy' ? this.iptablesSave() : '' };
    if (line === `iptables-${this.backend}-restore -w 5 --noflush`) {
      // One `*table … COMMIT` block per table.
      for (const block of input.split(/^(?=\*)/m).filter(Boolean)) {
        const table = block.split('\n')[0].slice(1);
        this.tables.add(table);
        if (block.includes('\n-X ')) this.chains.delete(table);
        else this.chains.add(table);
      }
      return {};
    }
    if (line === 'nft -f -') {
      for (const m of input.matchAll(/^delete table ip (\w+)$/gm)) this.tables.delete(m[1]);
      return {};
    }
    if (line === 'nft list tables') return this.nftInstalled ? { stdout: '' } : { exitCode: 127 };
    if (line === 'ip -j route get 198.51.100.2') return { stdout: '[{"dst":"198.51.100.2","dev":"wtvl0","prefsrc":"198.51.100.1","flags":[]}]' };
    if (line === 'ip -j addr show dev wtv0') {
      if (!this.linkUp) return { exitCode: 1 };
      return { stdout: JSON.stringify([{ ifindex: 9, ifname: 'wtv0', flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'], mtu: 1420, addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }] }]) };
    }
    if (line === 'ip -j -4 rule show' || line === 'ip -j -6 rule show') return { stdout: '[]' };
    if (argv[0] === 'wg-quick') {
      this.linkUp = argv[1] === 'up' && this.wgQuickCreatesLink;
      return {};
    }
    if (line === 'wg show wtv0 latest-handshakes' && !this.linkUp) return { exitCode: 1 };
    if (line === 'wg show wtv0 latest-handshakes') return { stdout: `${SERVER_KEY}\t${this.handshakeAt()}\n` };
    if (line === 'sysctl -n net.ipv4.ip_forward') return { stdout: `${this.ipForward}\n` };
    if (line === 'sysctl -n net.ipv4.conf.all.src_valid_mark') return { stdout: `${this.srcValidMark}\n` };
    if (line === 'sysctl -w net.ipv4.ip_forward=1' || line === 'sysctl -w net.ipv4.ip_forward=0') {
      this.ipForward = line.slice(-1);
      return {};
    }
    throw new Error(`the fake VM does not know: ${line}`);
  }
}

/**
 * Runs commands on a FakeVm. In a watched step, each read is held until `expected[step]`
 * reads of that step have started (then all go on); a read still alone after BARRIER_MS fails.
 */
class BarrierRunner implements Runner {
  readonly argvs: string[] = [];
  /** The watched steps whose reads all started together. */
  readonly released = new Set<string>();
  step = '';
  private waiting: { release: () => void }[] = [];
  private started = 0;

  constructor(
    private readonly vm: FakeVm,
    private readonly expected: Record<string, number>,
    private readonly barrierMs = BARRIER_MS,
  ) {}

  enter(step: string): void {
    this.step = step;
    this.started = 0;
    this.waiting = [];
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.argvs.push(argv.join(' '));
    const want = this.expected[this.step];
    if (want !== undefined && options.readOnly) {
      const step = this.step;
      this.started++;
      const arrived = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${step}: only ${this.started} of ${want} reads had started after ${this.barrierMs} ms: they ran one after another`)),
          this.barrierMs,
        );
        this.waiting.push({ release: () => (clearTimeout(timer), resolve()) });
      });
      if (this.started === want) {
        this.released.add(step);
        for (const w of this.waiting) w.release();
      }
      await arrived;
    }
    const reply = this.vm.reply(argv, options.input);
    const exitCode = reply.exitCode ?? 0;
    const result: RunResult = { argv: [...argv], stdout: reply.stdout ?? '', stderr: '', exitCode, signal: null, timedOut: false, durationMs: 1, dryRun: false };
    if (exitCode !== 0 && !options.allowFailure && !(options.okExitCodes ?? [0]).includes(exitCode)) throw new Error(`${argv.join(' ')}: exit ${exitCode}`);
    return result;
  }
}

/** The engine these tests drive: the wg-quick config in `dir`, commands through `runner`, polls every 10 ms. */
function engineIn(dir: string, runner: Runner, extra: Partial<ConstructorParameters<typeof VmEngine>[0]> = {}): VmEngine {
  return new VmEngine({
    configPath: join(dir, 'wtv0.conf'),
    runner,
    sysctl: new RunnerSysctl(runner),
    journal: new JournalStore(join(dir, 'state')),
    interfaceMethod: 'wg-quick',
    pollIntervalMs: 10,
    ...extra,
  });
}

describe('VmEngine: independent reads run side by side', () => {
  let dir: string;
  let vm: FakeVm;

  beforeEach(() => {
    dir = vmDirWithConfig('wtv-reads-');
    vm = new FakeVm();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (
    expected: Record<string, number>,
    operation: (engine: VmEngine, onStep: StepListener) => Promise<{ ok: boolean; error: string }>,
  ): Promise<{ runner: BarrierRunner; done: StepRecord[] }> => {
    const runner = new BarrierRunner(vm, expected);
    const engine = engineIn(dir, runner);
    const done: StepRecord[] = [];
    const outcome = await operation(engine, (step) => {
      if (step.state === 'started') runner.enter(step.step);
      else done.push(step);
    });
    expect(outcome.error).toBe('');
    expect(outcome.ok).toBe(true);
    return { runner, done };
  };
  const commandsOf = (done: StepRecord[], step: string): string[] => done.find((s) => s.step === step)!.commands.map((c) => c.argv.join(' '));

  it('Up: the reads of resolve-lan and clean-stale start together, detect-backend\'s side by side once wg-quick has started; the changes in order', async () => {
    // The 5 reads that gate wg-quick are started once read-config is done, before resolve-lan starts.
    const { runner, done } = await run({ 'read-config': 5, 'detect-backend': 3 }, (engine, onStep) => engine.up({ macSource: '198.51.100.2' }, { onStep }));
    expect([...runner.released]).toEqual(['read-config', 'detect-backend']);
    // Each step still lists its own reads, in the order they were started, whatever order they finished in.
    expect(commandsOf(done, 'detect-backend')).toEqual(['iptables --version', 'iptables-nft-save', 'iptables-legacy-save']);
    expect(commandsOf(done, 'resolve-lan')).toEqual(['ip -j route get 198.51.100.2']);
    // The write-ahead's read (src_valid_mark, for the journal) comes once the link is known absent.
    expect(commandsOf(done, 'clean-stale')).toEqual([
      'ip -j addr show dev wtv0',
      'nft list tables',
      'ip -j -4 rule show',
      'ip -j -6 rule show',
      'sysctl -n net.ipv4.conf.all.src_valid_mark',
    ]);
    expect(commandsOf(done, 'wg-quick-up')).toEqual([`wg-quick up ${join(dir, 'wtv0.conf')}`]);
    expect(commandsOf(done, 'await-handshake')).toEqual(['wg show wtv0 latest-handshakes']);
    expect(commandsOf(done, 'verify')).toEqual(['iptables-nft-save', 'sysctl -n net.ipv4.ip_forward', 'ip -j addr show dev wtv0']);
    const restore = 'iptables-nft-restore -w 5 --noflush';
    expect(runner.argvs).toEqual([
      'ip -j addr show dev wtv0',
      'nft list tables',
      'ip -j -4 rule show',
      'ip -j -6 rule show',
      'ip -j route get 198.51.100.2',
      'sysctl -n net.ipv4.conf.all.src_valid_mark',
      `wg-quick up ${join(dir, 'wtv0.conf')}`,
      'iptables --version',
      'iptables-nft-save',
      'iptables-legacy-save',
      restore, // filter, nat and mangle: one batch
      'sysctl -n net.ipv4.ip_forward',
      'sysctl -w net.ipv4.ip_forward=1',
      // The first handshake read, then verify's reads as it returns.
      'wg show wtv0 latest-handshakes',
      'iptables-nft-save',
      'ip -j addr show dev wtv0',
      'sysctl -n net.ipv4.ip_forward',
    ]);
  });

  it('Down: clean-stale and verify read side by side; removals in their old order', async () => {
    await run({}, (engine, onStep) => engine.up({ macSource: '198.51.100.2' }, { onStep }));
    const { runner, done } = await run({ 'clean-stale': 3, verify: 2 }, (engine, onStep) => engine.down({}, { onStep }));
    expect(commandsOf(done, 'clean-stale')).toEqual(['nft list tables', 'ip -j -4 rule show', 'ip -j -6 rule show']);
    expect(commandsOf(done, 'verify')).toEqual(['iptables-nft-save', 'sysctl -n net.ipv4.ip_forward']);
    const restore = 'iptables-nft-restore -w 5 --noflush';
    expect(runner.argvs).toEqual([
      'sysctl -n net.ipv4.ip_forward',
      'sysctl -w net.ipv4.ip_forward=0',
      'iptables-nft-save',
      restore, // the three chains: one batch
      'iptables-nft-save',
      'nft -f -', // delete table ip filter, nat, mangle: one transaction
      'ip -j addr show dev wtv0',
      `wg-quick down ${join(dir, 'wtv0.conf')}`,
      'sysctl -n net.ipv4.conf.all.src_valid_mark',
      'nft list tables',
      'ip -j -4 rule show',
      'ip -j -6 rule show',
      'iptables-nft-save',
      'sysctl -n net.ipv4.ip_forward',
    ]);
  });

  it('a read that starts alone is caught: the barrier refuses reads made one after another', async () => {
    // Up starts 5 reads early; expecting 6 must fail (proves the barrier can fail).
    const runner = new BarrierRunner(vm, { 'read-config': 6 }, 100);
    const engine = new VmEngine({ configPath: join(dir, 'wtv0.conf'), runner, sysctl: new RunnerSysctl(runner), journal: new JournalStore(join(dir, 'state')), interfaceMethod: 'wg-quick' });
    const outcome = await engine.up({ macSource: '198.51.100.2' }, { onStep: (s) => s.state === 'started' && runner.enter(s.step) });
    expect(outcome).toMatchObject({ ok: false, failedStep: 'resolve-lan' });
    expect(outcome.error).toMatch(/^read-config: only \d of 6 reads had started/);
  });

  it('no link read right after wg-quick up, yet a missing interface is still named (and rolled back)', async () => {
    vm.wgQuickCreatesLink = false;
    const runner = new BarrierRunner(vm, {});
    const engine = new VmEngine({ configPath: join(dir, 'wtv0.conf'), runner, sysctl: new RunnerSysctl(runner), journal: new JournalStore(join(dir, 'state')), interfaceMethod: 'wg-quick' });
    const outcome = await engine.up({ macSource: '198.51.100.2' });
    expect(outcome).toMatchObject({ ok: false, failedStep: 'await-handshake' });
    expect(outcome.error).toBe(`wtv0 does not exist after wg-quick up ${join(dir, 'wtv0.conf')}`);
    expect(vm.chains.size).toBe(0);
    expect(vm.ipForward).toBe('0');
  });
});

describe("VmEngine: the handshake from wireguard-go's control socket (wgSocketDir)", () => {
  let dir: string;
  let vm: FakeVm;
  let server: Server | undefined;

  beforeEach(() => {
    dir = vmDirWithConfig('wtv-uapi-');
    vm = new FakeVm();
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A daemon on `<dir>/sockets/wtv0.sock` that answers a UAPI get as wireguard-go does (its private key in it). */
  async function fakeDaemon(answer: () => string): Promise<string[]> {
    const requests: string[] = [];
    const sockets = join(dir, 'sockets');
    mkdirSync(sockets);
    server = createServer((conn) => {
      let request = '';
      conn.on('data', (d) => {
        request += d.toString();
        if (!request.endsWith('\n\n')) return;
        requests.push(request);
        conn.end(answer());
      });
    });
    await new Promise<void>((resolve) => server!.listen(join(sockets, 'wtv0.sock'), resolve));
    return requests;
  }
  const hex = (base64: string) => Buffer.from(base64, 'base64').toString('hex');

  const upWith = async (wgSocketDir: string) => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineIn(dir, runner, { wgSocketDir });
    const done: StepRecord[] = [];
    const outcome = await engine.up({ macSource: '198.51.100.2' }, { onStep: (step) => step.state !== 'started' && done.push(step) });
    expect(outcome.error).toBe('');
    return { runner, handshake: done.find((x) => x.step === 'await-handshake')! };
  };

  it('reads it there, no `wg show` process: the request is a UAPI get, the step says where it read', async () => {
    const requests = await fakeDaemon(
      () => `private_key=${'ab'.repeat(32)}\nlisten_port=1\npublic_key=${hex(SERVER_KEY)}\nlast_handshake_time_sec=${Math.floor(Date.now() / 1000)}\nerrno=0\n\n`,
    );
    const { runner, handshake } = await upWith(join(dir, 'sockets'));
    expect(handshake.commands).toEqual([]);
    expect(handshake.message).toMatch(/^handshake with 203\.0\.113\.1:51820 \(\d+ ms; read from wireguard-go's control socket\)$/);
    expect(runner.argvs.filter((a) => a.startsWith('wg show'))).toEqual([]);
    // One read: the one started once the changes were in, taken by the wait (a second would queue behind verify's spawns).
    expect(requests).toEqual(['get=1\n\n']);
  });

  it('falls back to `wg show` without a socket there (the kernel module), or when the daemon answers an error', async () => {
    const none = await upWith(join(dir, 'no-such-dir'));
    expect(none.handshake.commands.map((c) => c.argv.join(' '))).toEqual(['wg show wtv0 latest-handshakes']);
    expect(none.handshake.message).not.toMatch(/control socket/);
    expect(await engineIn(dir, none.runner).down({})).toMatchObject({ ok: true });
    await fakeDaemon(() => 'errno=19\n\n');
    const failing = await upWith(join(dir, 'sockets'));
    expect(failing.handshake.commands.map((c) => c.argv.join(' '))).toEqual(['wg show wtv0 latest-handshakes']);
  });
});

describe('VmEngine: a Describe that announces an Up reads ahead for it (read-ahead.ts)', () => {
  let dir: string;
  let vm: FakeVm;
  let clock: number;
  const GATING_READS = ['ip -j addr show dev wtv0', 'nft list tables', 'ip -j -4 rule show', 'ip -j -6 rule show'];

  beforeEach(() => {
    dir = vmDirWithConfig('wtv-ahead-');
    vm = new FakeVm();
    clock = 1_000_000;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const engineOn = (runner: Runner): VmEngine =>
    new VmEngine({ configPath: join(dir, 'wtv0.conf'), runner, sysctl: new RunnerSysctl(runner), journal: new JournalStore(join(dir, 'state')), interfaceMethod: 'wg-quick', now: () => clock });

  it('the reads that gate wg-quick start with the Describe; the Up is handed them and runs none again before wg-quick', async () => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineOn(runner);
    await engine.describe({ caller: '198.51.100.2' });
    // Started by the Describe (not awaited by it): the Up's gating reads, the route for the caller's address.
    expect(runner.argvs).toEqual([...GATING_READS, 'ip -j route get 198.51.100.2']);
    const done: StepRecord[] = [];
    const outcome = await engine.up({ macSource: '198.51.100.2' }, { onStep: (s) => s.state !== 'started' && done.push(s) });
    expect(outcome.error).toBe('');
    // Straight to the write-ahead's read and wg-quick: not one gating read again.
    const beforeWgQuick = runner.argvs.slice(0, runner.argvs.indexOf(`wg-quick up ${join(dir, 'wtv0.conf')}`));
    expect(beforeWgQuick).toEqual([...GATING_READS, 'ip -j route get 198.51.100.2', 'sysctl -n net.ipv4.conf.all.src_valid_mark']);
    // The steps still list the reads they decided on.
    expect(done.find((s) => s.step === 'resolve-lan')!.commands.map((c) => c.argv.join(' '))).toEqual(['ip -j route get 198.51.100.2']);
    expect(done.find((s) => s.step === 'clean-stale')!.commands.map((c) => c.argv.join(' '))).toEqual([...GATING_READS, 'sysctl -n net.ipv4.conf.all.src_valid_mark']);
  });

  it('an Up for another Mac address reads its route anew (the other reads are still taken)', async () => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineOn(runner);
    await engine.describe({ caller: '::ffff:198.51.100.7' });
    expect(runner.argvs).toEqual([...GATING_READS, 'ip -j route get 198.51.100.7']);
    const outcome = await engine.up({ macSource: '198.51.100.2' });
    expect(outcome.error).toBe('');
    expect(runner.argvs.slice(5, 8)).toEqual(['ip -j route get 198.51.100.2', 'sysctl -n net.ipv4.conf.all.src_valid_mark', `wg-quick up ${join(dir, 'wtv0.conf')}`]);
  });

  it('not taken when stale: too old, or another operation ran between the Describe and the Up', async () => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineOn(runner);
    await engine.describe({ caller: '198.51.100.2' });
    clock += 1_001; // READ_AHEAD_FRESH_MS is 1 s
    expect((await engine.up({ macSource: '198.51.100.2' })).error).toBe('');
    expect(runner.argvs.slice(5, 10)).toEqual([...GATING_READS, 'ip -j route get 198.51.100.2']);

    await engine.describe({ caller: '198.51.100.2' });
    expect((await engine.down({})).error).toBe(''); // an operation between: a Down
    const before = runner.argvs.length;
    expect((await engine.up({ macSource: '198.51.100.2' })).error).toBe('');
    expect(runner.argvs.slice(before, before + 5)).toEqual([...GATING_READS, 'ip -j route get 198.51.100.2']);
  });

  it('reads the route for the caller as mac_source / mac_source6 are written: IPv4, IPv4-mapped as IPv4, IPv6 in RFC 5952 form, nothing else', () => {
    expect(callerAddress('198.51.100.1')).toEqual({ address: '198.51.100.1', family: 4 });
    expect(callerAddress('::ffff:198.51.100.1')).toEqual({ address: '198.51.100.1', family: 4 });
    expect(callerAddress('2001:db8:0:0::1')).toEqual({ address: '2001:db8::1', family: 6 });
    expect(callerAddress('unknown')).toBeUndefined();
    expect(callerAddress('/run/wgctl/vm.sock')).toBeUndefined();
    // grpc-js's peer strings (remote address ':' port, no brackets), as the server hands them over (peerAddressOf).
    expect(callerAddress(peerAddressOf('::ffff:198.51.100.1:50312'))).toEqual({ address: '198.51.100.1', family: 4 });
    expect(callerAddress(peerAddressOf('[::ffff:198.51.100.1]:50312'))).toEqual({ address: '198.51.100.1', family: 4 });
    expect(callerAddress(peerAddressOf('198.51.100.1:50312'))).toEqual({ address: '198.51.100.1', family: 4 });
  });

  it('with `answered` (the server passes the end of the call), the reads wait for it: they would hold the reply', async () => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineOn(runner);
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    await engine.describe({ caller: '198.51.100.2', answered });
    await new Promise((resolve) => setImmediate(resolve));
    expect(runner.argvs).toEqual([]);
    answer();
    await answered;
    for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(runner.argvs).toEqual([...GATING_READS, 'ip -j route get 198.51.100.2']);
    // And the Up that follows takes them.
    expect((await engine.up({ macSource: '198.51.100.2' })).error).toBe('');
    expect(runner.argvs.slice(5, 7)).toEqual(['sysctl -n net.ipv4.conf.all.src_valid_mark', `wg-quick up ${join(dir, 'wtv0.conf')}`]);
  });

  it('a Describe that announces no Up reads nothing', async () => {
    const runner = new BarrierRunner(vm, {});
    const engine = engineOn(runner);
    await engine.describe();
    expect(runner.argvs).toEqual([]);
  });
});

/**
 * Runs commands on a FakeVm and logs when each starts and ends; `wg-quick up` can be held
 * (it takes ~100 ms on a real VM) and any command made to fail.
 */
class TunnelRunner implements Runner {
  readonly log: string[] = [];
  /** Commands started while `wg-quick up` was running. */
  readonly duringWgQuick: string[] = [];
  /** The journal on disk when `wg-quick up` started, and when the first restore batch did. */
  journalAtWgQuick: unknown;
  journalAtFirstRestore: unknown;
  /** A command held until others have started after it (a barrier: BARRIER_MS at most, then it fails). */
  private heldUntil: { line: string; others: string[] } | undefined;
  private startedSince: string[] = [];
  private releaseUntil = (): void => undefined;
  fails: (line: string, input: string) => boolean = () => false;
  private wgQuickRunning = false;
  private held: Promise<void> = Promise.resolve();
  private releaseHeld = (): void => undefined;

  constructor(
    private readonly vm: FakeVm,
    private readonly journalFile: string,
  ) {}

  holdWgQuick(): void {
    this.held = new Promise((resolve) => (this.releaseHeld = resolve));
  }

  releaseWgQuick(): void {
    this.releaseHeld();
  }

  holdUntilStarted(line: string, others: string[]): void {
    this.heldUntil = { line, others };
  }

  /** Held until `others` have all started since it did (or fails after BARRIER_MS: they ran after it). */
  private async barrier(line: string): Promise<void> {
    const held = this.heldUntil;
    if (!held) return;
    if (line !== held.line) {
      this.startedSince.push(line);
      if (held.others.every((o) => this.startedSince.includes(o))) this.releaseUntil();
      return;
    }
    this.heldUntil = undefined;
    this.startedSince = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${line}: ${held.others.join(', ')} had not started beside it after ${BARRIER_MS} ms`)), BARRIER_MS);
      this.releaseUntil = () => (clearTimeout(timer), resolve());
      this.heldUntil = held;
    });
    this.heldUntil = undefined;
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const line = argv.join(' ');
    const wgQuickUp = argv[0] === 'wg-quick' && argv[1] === 'up';
    this.log.push(`start ${line}`);
    if (this.wgQuickRunning) this.duringWgQuick.push(line);
    if (wgQuickUp) {
      this.wgQuickRunning = true;
      this.journalAtWgQuick = JSON.parse(readFileSync(this.journalFile, 'utf8'));
      await this.held;
    }
    if (argv[0].endsWith('-restore') && this.journalAtFirstRestore === undefined) this.journalAtFirstRestore = JSON.parse(readFileSync(this.journalFile, 'utf8'));
    try {
      await this.barrier(line);
      const failed = this.fails(line, options.input ?? '');
      const reply = failed ? { exitCode: 1 } : this.vm.reply(argv, options.input);
      const exitCode = reply.exitCode ?? 0;
      if (exitCode !== 0 && !options.allowFailure && !(options.okExitCodes ?? [0]).includes(exitCode)) throw new Error(`${line}: exit ${exitCode}`);
      return { argv: [...argv], stdout: reply.stdout ?? '', stderr: '', exitCode, signal: null, timedOut: false, durationMs: 1, dryRun: false };
    } finally {
      if (wgQuickUp) this.wgQuickRunning = false;
      this.log.push(`end ${line}`);
    }
  }
}

describe('VmEngine: wg-quick up runs beside the firewall and forwarding steps', () => {
  let dir: string;
  let vm: FakeVm;
  let runner: TunnelRunner;
  let journal: JournalStore;
  const restore = 'iptables-nft-restore -w 5 --noflush';
  const detection = ['iptables --version', 'iptables-nft-save', 'iptables-legacy-save'];
  const engine = (): VmEngine =>
    new VmEngine({ configPath: join(dir, 'wtv0.conf'), runner, sysctl: new RunnerSysctl(runner), journal, interfaceMethod: 'wg-quick', pollIntervalMs: 10 });
  const wgQuickUp = (): string => `wg-quick up ${join(dir, 'wtv0.conf')}`;
  const stepsDone = (events: StepRecord[]): string[] => events.filter((s) => s.state !== 'started').map((s) => s.step);
  /** The system as before any Up. */
  const expectPristine = async (): Promise<void> => {
    expect(vm.chains.size).toBe(0);
    expect(vm.linkUp).toBe(false);
    expect(vm.ipForward).toBe('0');
    expect(await journal.read()).toBeNull();
  };

  beforeEach(() => {
    dir = vmDirWithConfig('wtv-beside-');
    vm = new FakeVm();
    runner = new TunnelRunner(vm, join(dir, 'state', 'journal.json'));
    journal = new JournalStore(join(dir, 'state'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** An Up whose `wg-quick up` runs until ip-forward is done: what went in beside it. */
  async function upHoldingWgQuickUntilForwarding() {
    runner.holdWgQuick();
    const events: StepRecord[] = [];
    const outcome = await engine().up(
      { macSource: '198.51.100.2' },
      {
        onStep: (s) => {
          events.push(s);
          if (s.step === 'ip-forward' && s.state === 'done') runner.releaseWgQuick();
        },
      },
    );
    return { outcome, events };
  }

  it('the firewall chains and ip_forward go in while wg-quick up runs; the handshake is awaited once both are done', async () => {
    const { outcome, events } = await upHoldingWgQuickUntilForwarding();
    expect(outcome).toMatchObject({ ok: true, error: '' });
    // The backend detection too: wg-quick is started first (only what gates it comes before it).
    expect(runner.duringWgQuick).toEqual([...detection, restore, 'sysctl -n net.ipv4.ip_forward', 'sysctl -w net.ipv4.ip_forward=1']);
    // Journaled before it started, as before: Down and reconcile know the interface is wgctl's.
    expect(runner.journalAtWgQuick).toMatchObject({ phase: 'up-in-progress', wgInterface: { method: 'wg-quick' } });
    // The firewall's write-ahead (the backend, the tables its batches create) before its first batch.
    expect(runner.journalAtFirstRestore).toMatchObject({ backend: { kind: 'nft' }, createdTables: ['filter', 'nat', 'mangle'] });
    expect(stepsDone(events)).toEqual([
      'read-config', 'resolve-lan', 'clean-stale', 'detect-backend',
      'firewall', 'ip-forward', 'wg-quick-up', 'await-handshake', 'verify',
    ]);
    // wg-quick-up's events frame its command: started before the first firewall step, done after it ended.
    const started = events.filter((s) => s.state === 'started').map((s) => s.step);
    expect(started.indexOf('wg-quick-up')).toBeLessThan(started.indexOf('firewall'));
    expect(events.find((s) => s.step === 'wg-quick-up' && s.state === 'done')!.commands.map((c) => c.argv.join(' '))).toEqual([wgQuickUp()]);
  });

  it.each([
    { nftInstalled: true, waits: false },
    { nftInstalled: false, waits: true },
  ])('nft installed $nftInstalled: wg-quick up waits for the backend detection $waits (without nft its own iptables rules would count)', async ({ nftInstalled, waits }) => {
    vm.nftInstalled = nftInstalled;
    const { outcome, events } = await upHoldingWgQuickUntilForwarding();
    expect(outcome).toMatchObject({ ok: true, error: '' });
    const started = events.filter((s) => s.state === 'started').map((s) => s.step);
    expect(started.indexOf('detect-backend') < started.indexOf('wg-quick-up')).toBe(waits);
    // Waiting: every detection read has ended before wg-quick starts; else none has started.
    const wgQuickStarted = runner.log.indexOf(`start ${wgQuickUp()}`);
    for (const read of detection) expect(runner.log.indexOf(`${waits ? 'end' : 'start'} ${read}`) < wgQuickStarted).toBe(waits);
    expect(runner.duringWgQuick.includes('iptables-legacy-save')).toBe(!waits);
  });

  it('the first handshake read runs alone (tunnel_ready waits for it); verify\'s reads start as it returns, each once', async () => {
    const outcome = await engine().up({ macSource: '198.51.100.2' });
    expect(outcome).toMatchObject({ ok: true, error: '' });
    const handshakeStarted = runner.log.indexOf('start wg show wtv0 latest-handshakes');
    expect(runner.log[handshakeStarted + 1]).toBe('end wg show wtv0 latest-handshakes');
    const after = runner.log.slice(handshakeStarted + 2).filter((l) => l.startsWith('start '));
    // Started early (handed to verify), then the RunnerSysctl read: verify's own.
    expect(after).toEqual(['start iptables-nft-save', 'start ip -j addr show dev wtv0', 'start sysctl -n net.ipv4.ip_forward']);
  });

  it('a handshake that needs more than one read: verify reads the system again after it', async () => {
    let handshakeReads = 0;
    vm.handshakeAt = () => (++handshakeReads < 3 ? 0 : Math.floor(Date.now() / 1000));
    const outcome = await engine().up({ macSource: '198.51.100.2' });
    expect(outcome).toMatchObject({ ok: true, error: '' });
    expect(handshakeReads).toBe(3);
    const lastHandshakeEnded = runner.log.lastIndexOf('end wg show wtv0 latest-handshakes');
    expect(runner.log.slice(lastHandshakeEnded).filter((l) => l.startsWith('start '))).toEqual([
      'start iptables-nft-save',
      'start sysctl -n net.ipv4.ip_forward',
      'start ip -j addr show dev wtv0',
    ]);
  });

  it('a firewall step that fails while wg-quick up runs: the rollback waits for wg-quick to end, then takes both away', async () => {
    runner.holdWgQuick();
    // nat's part rejected: as the real tools do (firewall.netns.test.ts), the tables before it stay applied.
    runner.fails = (line, input) => {
      if (line !== restore || !input.includes('*nat')) return false;
      vm.reply(restore.split(' '), input.slice(0, input.indexOf('*nat')));
      return true;
    };
    const events: StepRecord[] = [];
    const outcome = await engine().up(
      { macSource: '198.51.100.2' },
      {
        onStep: (s) => {
          events.push(s);
          if (s.step === 'firewall' && s.state === 'failed') setTimeout(() => runner.releaseWgQuick(), 50);
        },
      },
    );
    expect(outcome).toMatchObject({ ok: false, failedStep: 'firewall' });
    // Nothing started between the failure and wg-quick's end; then the rollback, wg-quick down included.
    const failedAt = runner.log.indexOf(`end ${restore}`);
    const wgQuickEnded = runner.log.indexOf(`end ${wgQuickUp()}`);
    expect(wgQuickEnded).toBeGreaterThan(failedAt);
    expect(runner.log.slice(failedAt, wgQuickEnded).filter((l) => l.startsWith('start '))).toEqual([]);
    expect(runner.log.indexOf(`start wg-quick down ${join(dir, 'wtv0.conf')}`)).toBeGreaterThan(wgQuickEnded);
    expect(stepsDone(events)).toEqual(expect.arrayContaining(['rollback-firewall', 'rollback-wg-quick-down']));
    await expectPristine();
  });

  it('wg-quick up that fails while the firewall goes in: named as the failed step, everything rolled back', async () => {
    runner.holdWgQuick();
    runner.fails = (line) => line === wgQuickUp();
    const outcome = await engine().up(
      { macSource: '198.51.100.2' },
      { onStep: (s) => s.step === 'firewall' && s.state === 'done' && runner.releaseWgQuick() },
    );
    expect(outcome).toMatchObject({ ok: false, failedStep: 'wg-quick-up' });
    expect(outcome.error).toMatch(/wg-quick up .*: exit 1/);
    expect(runner.duringWgQuick).toEqual([...detection, restore]);
    await expectPristine();
  });

  it.each([
    { nftInstalled: false, beside: false },
    { nftInstalled: true, beside: true },
  ])('legacy iptables, nft installed $nftInstalled: the firewall beside wg-quick $beside (its iptables-restore has no -w: it fails on a held xtables lock)', async ({ nftInstalled, beside }) => {
    vm.backend = 'legacy';
    vm.nftInstalled = nftInstalled;
    runner.holdWgQuick();
    // Held until forwarding is on (beside) or for 300 ms (alone: the firewall waits for it).
    const outcome = await engine().up(
      { macSource: '198.51.100.2' },
      {
        onStep: (s) => {
          if (s.step === 'wg-quick-up' && s.state === 'started') setTimeout(() => runner.releaseWgQuick(), 300);
          if (s.step === 'ip-forward' && s.state === 'done') runner.releaseWgQuick();
        },
      },
    );
    expect(outcome).toMatchObject({ ok: true, error: '' });
    const legacyRestore = 'iptables-legacy-restore -w 5 --noflush';
    expect(runner.log.filter((l) => l === `start ${legacyRestore}`)).toHaveLength(1);
    expect(runner.duringWgQuick.includes(legacyRestore)).toBe(beside);
  });

  it('the backend detection that fails once wg-quick has started (no iptables): wg-quick is taken down again, nothing left', async () => {
    vm.iptablesInstalled = false;
    const events: StepRecord[] = [];
    const outcome = await engine().up({ macSource: '198.51.100.2' }, { onStep: (s) => events.push(s) });
    expect(outcome).toMatchObject({ ok: false, failedStep: 'detect-backend' });
    expect(outcome.error).toMatch(/^iptables is not installed/);
    expect(outcome.error).not.toMatch(/rollback incomplete/);
    // The journal named no backend: the rollback touches no firewall, only what Up did (wg-quick).
    expect(stepsDone(events)).toEqual(expect.arrayContaining(['rollback-wg-quick-down']));
    expect(runner.log.indexOf(`start wg-quick down ${join(dir, 'wtv0.conf')}`)).toBeGreaterThan(runner.log.indexOf(`end ${wgQuickUp()}`));
    await expectPristine();
  });

  it('a caller that cancels while both run: the current step ends, then the rollback, once wg-quick has ended', async () => {
    runner.holdWgQuick();
    const cancel = new AbortController();
    const outcome = await engine().up(
      { macSource: '198.51.100.2' },
      {
        signal: cancel.signal,
        onStep: (s) => {
          if (s.step !== 'firewall' || s.state !== 'done') return;
          cancel.abort();
          setTimeout(() => runner.releaseWgQuick(), 50);
        },
      },
    );
    expect(outcome).toMatchObject({ ok: false, failedStep: 'ip-forward' });
    const wgQuickEnded = runner.log.indexOf(`end ${wgQuickUp()}`);
    expect(runner.log.indexOf(`start wg-quick down ${join(dir, 'wtv0.conf')}`)).toBeGreaterThan(wgQuickEnded);
    expect(runner.log.filter((l, i) => i < wgQuickEnded && l === `start ${restore}`)).toHaveLength(1); // the firewall's one batch
    await expectPristine();
  });

  it('SIGTERM while both run: the current step ends, Up waits for wg-quick, stops without a rollback; the next start removes it all', async () => {
    runner.holdWgQuick();
    const e = engine();
    const events: StepRecord[] = [];
    let stopped: Promise<void> | undefined;
    let wgQuickEndedBeforeStop = false;
    const outcome = await e.up(
      { macSource: '198.51.100.2' },
      {
        onStep: (s) => {
          events.push(s);
          if (s.step !== 'firewall' || s.state !== 'done') return;
          stopped = e.stop('SIGTERM').then(() => void (wgQuickEndedBeforeStop = runner.log.includes(`end ${wgQuickUp()}`)));
          setTimeout(() => runner.releaseWgQuick(), 50);
        },
      },
    );
    await stopped;
    expect(wgQuickEndedBeforeStop).toBe(true);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'ip-forward' });
    expect(outcome.error).toMatch(/stopped before ip-forward/);
    expect(stepsDone(events).some((s) => s.startsWith('rollback-'))).toBe(false);
    expect(stepsDone(events)).toContain('wg-quick-up');
    expect(await journal.read()).toMatchObject({ phase: 'up-in-progress', wgInterface: { method: 'wg-quick' } });
    expect(vm.linkUp).toBe(true);

    expect(await engine().reconcile()).toMatchObject({ ok: true });
    await expectPristine();
  });
});
