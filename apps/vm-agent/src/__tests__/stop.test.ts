/**
 * Stopping the engine (what SIGTERM does): the Up in flight finishes the step it is in, then
 * ends — no further step, no rollback — with an outcome that says so; the journal keeps what
 * was applied (phase up-in-progress), and the next engine's reconcile removes it. New work is
 * refused while stopping. A caller that cancels ends the Up at the same boundary, but the Up
 * is rolled back at once: the agent runs on, and a half-applied Up must not stay.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoppingError } from '@wgctl/agent-kit';
import { RuleRunner, type RunOptions, type RunResult, type Runner, type StepRecord } from '@wgctl/runner';
import { derivePublicKey } from '../host/config';
import { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { ProcSysctl } from '../host/sysctl';

const key = (seed: number): string => Buffer.alloc(32, seed).toString('base64');

describe('VmEngine.stop', () => {
  let dir: string;
  let journal: JournalStore;
  let gate: { hold: (argv: readonly string[]) => boolean; entered: () => void; release: () => void };
  let runner: Runner;
  const commands: string[] = [];

  const engine = (options: { stallAfterStep?: string } = {}) =>
    new VmEngine({ configPath: join(dir, 'wtv0.conf'), runner, sysctl: new ProcSysctl(join(dir, 'sys')), journal, interfaceMethod: 'wg-quick', ...options });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-stop-'));
    writeFileSync(
      join(dir, 'wtv0.conf'),
      `[Interface]\nPrivateKey = ${key(1)}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${derivePublicKey(key(2))}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n`,
      { mode: 0o600 },
    );
    mkdirSync(join(dir, 'sys/net/ipv4/conf/all'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
    writeFileSync(join(dir, 'sys/net/ipv4/conf/all/src_valid_mark'), '0\n');
    journal = new JournalStore(join(dir, 'state'));
    commands.length = 0;
    const system = new RuleRunner([
      { match: (a) => a.join(' ') === 'iptables --version', reply: { stdout: 'iptables v1.8.9 (nf_tables)\n' } },
      { match: (a) => a.join(' ') === 'ip -j addr show dev wtv0', reply: { exitCode: 1, stderr: 'Device "wtv0" does not exist.' } },
      { match: (a) => a.join(' ').startsWith('ip -j route get'), reply: { stdout: '[{"dst":"198.51.100.2","dev":"wtvl0","flags":[]}]' } },
      { match: (a) => a.includes('-j'), reply: { stdout: '[]' } },
      { match: () => true, reply: {} },
    ]);
    gate = { hold: () => false, entered: () => undefined, release: () => undefined };
    runner = {
      run: async (argv: readonly string[], options?: RunOptions): Promise<RunResult> => {
        commands.push(argv.join(' '));
        if (gate.hold(argv)) {
          await new Promise<void>((resolve) => {
            gate.release = resolve;
            gate.entered();
          });
        }
        return system.run(argv, options);
      },
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Holds the first command of the firewall step's change (the iptables-restore batch); resolves once it is held. */
  const holdFirewallChange = (): Promise<void> =>
    new Promise<void>((resolve) => {
      gate.entered = resolve;
      gate.hold = (argv) => argv[0].startsWith('iptables') && argv[0].includes('restore') && !argv.includes('--test');
    });

  it('the step in flight finishes; no later step, no rollback; the journal stays for the next start', async () => {
    const e = engine();
    const events: StepRecord[] = [];
    const entered = holdFirewallChange();
    const up = e.up({ macSource: '198.51.100.2' }, { onStep: (s) => events.push(s) });
    await entered;
    const stopped = e.stop('SIGTERM');
    expect(e.stopping).toBe(true);
    // New work is refused while stopping.
    await expect(e.down({})).rejects.toThrow(StoppingError);
    gate.hold = () => false;
    gate.release();
    await stopped;
    const outcome = await up;
    const steps = events.filter((s) => s.state !== 'started').map((s) => s.step);
    // wg-quick-up runs beside the firewall steps (this fake's ends at once, while firewall is held).
    expect(steps).toEqual(['read-config', 'resolve-lan', 'clean-stale', 'wg-quick-up', 'detect-backend', 'firewall']);
    expect(steps.some((s) => s.startsWith('rollback-'))).toBe(false);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'ip-forward' });
    expect(outcome.error).toMatch(/^the vm-agent is stopping \(SIGTERM\): it finished its current step and stopped before ip-forward; its journal keeps what was applied/);
    expect(await journal.read()).toMatchObject({ phase: 'up-in-progress', macSource: '198.51.100.2/32', interface: 'wtv0' });

    // The next start: reconcile takes away what the stopped Up applied.
    commands.length = 0;
    const next = engine();
    const reconciled = await next.reconcile();
    expect(reconciled).toMatchObject({ ok: true });
    expect(await journal.read()).toBeNull();
  });

  it('a caller that cancels: the step in flight finishes, then the Up ends and is rolled back to the end; the agent serves the next Up', async () => {
    const e = engine();
    const events: StepRecord[] = [];
    const entered = holdFirewallChange();
    const cancel = new AbortController();
    const up = e.up({ macSource: '198.51.100.2' }, { onStep: (s) => events.push(s), signal: cancel.signal });
    await entered;
    cancel.abort();
    gate.hold = () => false;
    gate.release();
    const outcome = await up;
    const steps = events.filter((s) => s.state !== 'started').map((s) => s.step);
    expect(steps.slice(0, 6)).toEqual(['read-config', 'resolve-lan', 'clean-stale', 'wg-quick-up', 'detect-backend', 'firewall']);
    expect(steps.slice(6)).toEqual(expect.arrayContaining(['rollback-ip-forward', 'rollback-firewall', 'rollback-wg-quick-down']));
    expect(steps.slice(6).every((s) => s.startsWith('rollback-'))).toBe(true);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'ip-forward' });
    expect(outcome.error).toBe('cancelled before ip-forward: the caller went away or its deadline passed');
    expect(await journal.read()).toBeNull();
    expect(await e.up({ macSource: '198.51.100.2', handshakeTimeoutMs: 1 })).toMatchObject({ failedStep: 'await-handshake' }); // served, not refused
  });

  it('the stall hook holds Up after its step until the agent stops, then Up ends there', async () => {
    const e = engine({ stallAfterStep: 'clean-stale' });
    const events: StepRecord[] = [];
    const up = e.up({ macSource: '198.51.100.2' }, { onStep: (s) => events.push(s) });
    for (let i = 0; i < 100 && !events.some((s) => s.step === 'clean-stale' && s.state !== 'started'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const before = commands.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(commands.length).toBe(before); // stalled: nothing runs
    await e.stop('SIGTERM');
    expect(await up).toMatchObject({ ok: false, failedStep: 'wg-quick-up' });
    // Nothing had been changed yet but the journal's write-ahead record (wg-quick's interface listed): the next start clears it.
    expect(await journal.read()).toMatchObject({ phase: 'up-in-progress', wgInterface: { method: 'wg-quick' } });
    expect(commands.some((c) => c.startsWith('wg-quick up'))).toBe(false);
  });

  it('stop() while idle resolves at once; Up after it is refused', async () => {
    const e = engine();
    await e.stop('SIGTERM');
    await expect(e.up({ macSource: '198.51.100.2' })).rejects.toThrow(/the vm-agent is stopping \(SIGTERM\): no new Up or Down/);
    expect(commands).toEqual([]);
  });
});
