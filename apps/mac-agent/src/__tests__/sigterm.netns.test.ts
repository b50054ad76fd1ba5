/**
 * SIGTERM on the real mac-agent program (bundled from source, linux driver, run in its own
 * network namespace `wth-…`): an Up held after its kill-switch step (WGCTL_TEST_STALL_AFTER_STEP)
 * gets SIGTERM; the caller is told the agent stopped there, the process exits 0 within seconds,
 * the kill switch stays loaded (fail-closed) and the journal says up-in-progress. The next start
 * completes that Up; Down then leaves nothing; an idle agent exits 0 at once.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { MacAgentClient, MacDownRequest, MacUpRequest, type Progress } from '@wgctl/proto';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { connectAgent, healthCheck, readStream } from '@wgctl/transport';
import { netnsTestsEnabled } from '../testing/lab';

const suite = netnsTestsEnabled() ? describe : describe.skip;
const ROOT = resolve(__dirname, '../../../..');
const ORIGINAL_RESOLV = 'nameserver 192.0.2.1\n';

suite('mac-agent SIGTERM (netns)', () => {
  const id = randomBytes(2).toString('hex');
  const ns = `wth-${id}-mac`;
  const uplink = `wth${id}a`;
  const vnic = `wth${id}v`;
  const root = new ExecRunner();
  let dir: string;
  let bundle: string;
  let agent: StreamingProcess | undefined;
  let log: string[] = [];
  const sock = () => join(dir, 'agent.sock');
  const target = () => `unix:${sock()}`;
  const inNs = (...argv: string[]) => root.run(['ip', 'netns', 'exec', ns, ...argv], { allowFailure: true });
  const journal = () => JSON.parse(readFileSync(join(dir, 'state', 'mac-agent.journal.json'), 'utf8'));
  const upRequest = MacUpRequest.fromPartial({ vmAddress: '198.51.100.2', endpoints: [{ host: 'wg.example', ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'] });

  const start = async (env: Record<string, string> = {}) => {
    log = [];
    agent = spawnStreaming(
      ['ip', 'netns', 'exec', ns, process.execPath, bundle, '--driver', 'linux', '--listen', target(), '--state-dir', join(dir, 'state'), '--dns-resolv-conf', join(dir, 'resolv.conf'), '--log-level', 'debug'],
      { onLine: (l) => log.push(l), onStderrLine: (l) => log.push(l), env: { NODE_PATH: join(ROOT, 'node_modules'), WGCTL_PROTO_DIR: join(ROOT, 'proto'), ...env } },
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if (existsSync(sock()) && (await healthCheck(target(), { insecure: true, timeoutMs: 1_000 })) !== undefined) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the agent did not start:\n${log.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-msig-'));
    bundle = join(dir, 'mac-agent.js');
    await build({
      entryPoints: [join(ROOT, 'apps/mac-agent/src/main.ts')],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: ['@grpc/grpc-js', '@grpc/proto-loader', 'grpc-health-check', '@grpc/reflection'],
      logLevel: 'error',
      absWorkingDir: ROOT,
    });
    writeFileSync(join(dir, 'resolv.conf'), ORIGINAL_RESOLV);
    // A host with an uplink (default via 192.0.2.1) and a vnic facing the VM (198.51.100.2).
    await root.run(['ip', 'netns', 'add', ns]);
    await root.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    for (const [name, cidr] of [
      [uplink, '192.0.2.2/24'],
      [vnic, '198.51.100.1/24'],
    ]) {
      await root.run(['ip', '-n', ns, 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
      await root.run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', name]);
      await root.run(['ip', '-n', ns, 'link', 'set', name, 'up']);
      await root.run(['ip', '-n', ns, 'link', 'set', `${name}p`, 'up']);
    }
    await root.run(['ip', '-n', ns, 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', uplink]);
  }, 60_000);

  afterAll(async () => {
    if (agent) await agent.stop(1_000);
    await root.run(['ip', 'netns', 'delete', ns], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('an Up in flight: the step finishes, the caller is told, exit 0, fail-closed; the next start completes it', async () => {
    await start({ WGCTL_TEST_STALL_AFTER_STEP: 'kill-switch' });
    const client = connectAgent(MacAgentClient, target(), { insecure: true });
    const messages: Progress[] = [];
    const stream = client.up(upRequest);
    const ended = new Promise<void>((resolveEnd) => {
      stream.on('data', (p: Progress) => messages.push(p));
      stream.on('end', () => resolveEnd());
      stream.on('error', () => resolveEnd());
    });
    for (let i = 0; i < 200 && !log.some((l) => l.includes('test hook: stalling after step')); i++) await new Promise((r) => setTimeout(r, 25));
    expect((await inNs('nft', 'list', 'tables')).stdout).toContain('wgctl');

    const signalled = Date.now();
    process.kill(agent!.pid!, 'SIGTERM');
    const exit = await agent!.exited;
    agent = undefined;
    expect(exit).toMatchObject({ code: 0 });
    expect(Date.now() - signalled).toBeLessThan(10_000);
    await ended;
    client.close();

    const outcome = messages.map((m) => m.kind).find((k) => k?.$case === 'outcome')?.value;
    expect(outcome).toMatchObject({ ok: false, failedStep: 'pin-endpoint' });
    expect(String(outcome?.error)).toMatch(/the mac-agent is stopping \(SIGTERM\): it finished its current step and stopped before pin-endpoint/);
    const steps = messages.flatMap((m) => (m.kind?.$case === 'step' && m.kind.value.state !== 1 ? [m.kind.value.step] : []));
    expect(steps).toEqual(['discover', 'kill-switch']);

    // Consistent and fail-closed: the kill switch stays, the journal says the Up is unfinished.
    // It names the routes the Up was to add (journaled ahead with its plan), none of them made.
    expect(journal()).toMatchObject({ phase: 'up-in-progress', killSwitch: { policy: { uplink } } });
    expect(journal().routes.map((r: { role: string; destination: string }) => `${r.role} ${r.destination}`)).toEqual(['pin 203.0.113.10/32', 'split 0.0.0.0/1', 'split 128.0.0.0/1']);
    expect((await inNs('nft', 'list', 'tables')).stdout).toContain('wgctl');
    expect((await inNs('ip', 'route', 'show', '203.0.113.10')).stdout).toBe('');
    expect((await inNs('ip', 'route', 'show', '0.0.0.0/1')).stdout).toBe('');
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe(ORIGINAL_RESOLV);

    // The next start re-asserts the journaled Up and completes it.
    await start();
    for (let i = 0; i < 200 && journal().phase !== 'up'; i++) await new Promise((r) => setTimeout(r, 25));
    expect(journal()).toMatchObject({ phase: 'up' });
    expect((await inNs('ip', 'route', 'show', '203.0.113.10')).stdout).toContain(`via 192.0.2.1 dev ${uplink}`);

    // Down leaves nothing; then an idle SIGTERM exits 0 at once.
    const c2 = connectAgent(MacAgentClient, target(), { insecure: true });
    let ok = false;
    for await (const p of readStream(c2.down(MacDownRequest.fromPartial({})))) if (p.kind?.$case === 'outcome') ok = p.kind.value.ok;
    c2.close();
    expect(ok).toBe(true);
    expect((await inNs('nft', 'list', 'tables')).stdout).not.toContain('wgctl');
    expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe(ORIGINAL_RESOLV);
    const idle = Date.now();
    process.kill(agent!.pid!, 'SIGTERM');
    expect(await agent!.exited).toMatchObject({ code: 0 });
    agent = undefined;
    expect(Date.now() - idle).toBeLessThan(5_000);
  }, 90_000);
});
