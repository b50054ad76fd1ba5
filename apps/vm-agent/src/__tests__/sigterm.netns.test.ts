/**
 * SIGTERM on the real vm-agent program (bundled from source, run in its own network namespace
 * `wth-…`): an Up held after its firewall step (WGCTL_TEST_STALL_AFTER_STEP) gets
 * SIGTERM; the agent tells its caller it stopped there, exits 0 within seconds, and leaves a
 * consistent journal (phase up-in-progress, the three chains in place, forwarding still off). The next
 * start reconciles: everything removed, journal gone. An idle agent exits 0 at once.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ExecRunner } from '@wgctl/runner';
import { derivePublicKey } from '../host/config';
import { AgentProcess, buildBundles, streamClient, type ClientLine } from '../testing/agent-process';
import { NetnsRunner, canUseNetns } from '../testing/netns';

const suite = canUseNetns() ? describe : describe.skip;
const key = () => randomBytes(32).toString('base64');

/** The agent's JSON log record with this message. */
function logged(agent: AgentProcess, message: string): Record<string, unknown> | undefined {
  for (const line of agent.lines) {
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.message === message) return record;
    } catch {
      // not a log line
    }
  }
  return undefined;
}

suite('vm-agent SIGTERM (netns)', () => {
  const id = randomBytes(2).toString('hex');
  const ns = `wth-${id}-sig`;
  const lan = `wth${id}l`;
  const wg = `wth${id}c`;
  const host = new ExecRunner();
  const vm = new NetnsRunner(host, ns);
  let dir: string;
  let bundles: { agent: string; client: string };
  let configPath: string;
  let stateDir: string;
  let agent: AgentProcess | undefined;
  const target = '127.0.0.1:7461';
  const args = () => ['--listen', target, '--insecure-loopback-dev', '--wg-config', configPath, '--state-dir', stateDir, '--wg-method', 'wg-quick', '--log-level', 'debug'];
  const iptablesSave = async () => (await vm.run(['iptables-save'], { allowFailure: true })).stdout;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-sigterm-'));
    bundles = await buildBundles(dir);
    configPath = join(dir, `${wg}.conf`);
    stateDir = join(dir, 'state');
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${key()}\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = ${derivePublicKey(key())}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n`,
      { mode: 0o600 },
    );
    await host.run(['ip', 'netns', 'add', ns]);
    await host.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    // The LAN facing the Mac: a veth pair inside the namespace (no dummy module here).
    await host.run(['ip', '-n', ns, 'link', 'add', lan, 'type', 'veth', 'peer', 'name', `wth${id}p`]);
    await host.run(['ip', '-n', ns, 'addr', 'add', '198.51.100.1/24', 'dev', lan]);
    await host.run(['ip', '-n', ns, 'link', 'set', lan, 'up']);
    await host.run(['ip', '-n', ns, 'link', 'set', `wth${id}p`, 'up']);
  }, 60_000);

  afterAll(async () => {
    if (agent) {
      try {
        agent.kill9();
      } catch {
        // already gone
      }
    }
    await host.run(['ip', 'netns', 'delete', ns], { allowFailure: true });
    delete process.env.WGCTL_TEST_STALL_AFTER_STEP;
    rmSync(dir, { recursive: true, force: true });
  });

  it('an Up in flight: the step finishes, the caller is told, exit 0, the journal is consistent; the next start cleans up', async () => {
    process.env.WGCTL_TEST_STALL_AFTER_STEP = 'firewall';
    agent = new AgentProcess(ns, bundles.agent, args());
    delete process.env.WGCTL_TEST_STALL_AFTER_STEP;
    await agent.waitFor('vm-agent ready');

    const lines: ClientLine[] = [];
    const client = streamClient(ns, bundles.client, target, 'insecure', 'up', { macSource: '198.51.100.2' }, (l) => lines.push(l));
    await agent.waitFor('test hook: stalling after step');
    expect(await iptablesSave()).toContain(':WGCTL-FWD');

    const signalled = Date.now();
    process.kill(agent.pid, 'SIGTERM');
    const exit = await agent.exited;
    const tookMs = Date.now() - signalled;
    expect(exit).toMatchObject({ code: 0 });
    expect(tookMs).toBeLessThan(10_000);
    await client.exited;

    // The caller got the outcome: stopped before the next step, no rollback.
    const outcome = lines.map((l) => l.progress?.kind).find((k) => k?.$case === 'outcome')?.value;
    expect(outcome).toMatchObject({ ok: false, failedStep: 'ip-forward' });
    expect(String(outcome?.error)).toMatch(/the vm-agent is stopping \(SIGTERM\): it finished its current step and stopped before ip-forward/);
    const steps = lines.flatMap((l) => (l.progress?.kind?.$case === 'step' ? [String(l.progress.kind.value.step)] : []));
    expect(steps.some((s) => s.startsWith('rollback-'))).toBe(false);
    expect(logged(agent, 'stopping')).toMatchObject({ signal: 'SIGTERM', finishing: 'the current step of Up' });
    expect(logged(agent, 'stopped')).toMatchObject({ signal: 'SIGTERM' });

    // Consistent: the journal lists what is in place (the three chains, one batch), nothing after it ran.
    const journal = JSON.parse(readFileSync(join(stateDir, 'journal.json'), 'utf8')) as { phase: string; interface: string };
    expect(journal).toMatchObject({ phase: 'up-in-progress', interface: wg });
    const rules = await iptablesSave();
    for (const chain of [':WGCTL-FWD', ':WGCTL-POST', ':WGCTL-MSS']) expect(rules).toContain(chain);
    expect((await vm.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('0');

    // The next start reconciles: what the stopped Up applied is removed.
    agent = new AgentProcess(ns, bundles.agent, args());
    await agent.waitFor('reconcile finished');
    expect(logged(agent, 'reconcile finished')).toMatchObject({ ok: true });
    expect(existsSync(join(stateDir, 'journal.json'))).toBe(false);
    expect(await iptablesSave()).not.toContain('WGCTL-');

    // Idle: SIGTERM exits 0 at once.
    const idleSignalled = Date.now();
    process.kill(agent.pid, 'SIGTERM');
    expect(await agent.exited).toMatchObject({ code: 0 });
    expect(Date.now() - idleSignalled).toBeLessThan(5_000);
    agent = undefined;
  }, 90_000);
});
