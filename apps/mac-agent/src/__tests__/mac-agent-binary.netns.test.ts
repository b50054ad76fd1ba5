/**
 * The real bundled binary (tools/build/build.mjs) under `ip netns exec`, driven over its
 * unix socket with gRPC: Describe/Status/health, and kill -9 in the middle of Up, restart,
 * Down — nothing left behind.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DescribeRequest, MacAgentClient, MacDownRequest, MacUpRequest, StatusRequest, type MacStatus, type Progress } from '@wgctl/proto';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { connectAgent, healthCheck, readStream, unaryCall } from '@wgctl/transport';
import { ADDR, IF, createLab, netnsTestsEnabled, type Lab } from '../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(90_000);

const ROOT = resolve(__dirname, '../../../..');
const BUNDLE = join(ROOT, 'dist/apps/mac-agent/mac-agent.js');
const ORIGINAL_RESOLV = 'nameserver 192.0.2.1\n';

describeNetns('mac-agent binary: gRPC on a unix socket, kill -9 during Up', () => {
  let lab: Lab;
  let dir: string;
  let agent: StreamingProcess | undefined;
  let agentLog: string[] = [];
  const sock = () => join(dir, 'agent.sock');
  const target = () => `unix:${sock()}`;

  const startAgent = async (env: Record<string, string> = {}) => {
    agentLog = [];
    agent = spawnStreaming(
      ['ip', 'netns', 'exec', lab.ns.host, process.execPath, BUNDLE, '--driver', 'linux', '--listen', target(), '--state-dir', join(dir, 'state'), '--dns-resolv-conf', join(dir, 'resolv.conf'), '--log-level', 'debug'],
      { onLine: (l) => agentLog.push(l), onStderrLine: (l) => agentLog.push(l), env },
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if (existsSync(sock()) && (await healthCheck(target(), { insecure: true, timeoutMs: 1_000 })) === 'SERVING') return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`agent did not become SERVING:\n${agentLog.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const client = () => connectAgent(MacAgentClient, target(), { insecure: true });

  const routeLines = async () => (await lab.host.run(['ip', 'route', 'show', 'table', 'main'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const journal = () => JSON.parse(readFileSync(join(dir, 'state', 'mac-agent.journal.json'), 'utf8'));

  beforeAll(async () => {
    await new ExecRunner().run([process.execPath, join(ROOT, 'tools/build/build.mjs'), 'mac-agent'], { cwd: ROOT, timeoutMs: 60_000 });
    lab = await createLab();
    dir = mkdtempSync(join(tmpdir(), 'wtm-bin-'));
    writeFileSync(join(dir, 'resolv.conf'), ORIGINAL_RESOLV);
  });

  afterEach(async () => {
    if (agent) await agent.stop(1_000);
    agent = undefined;
  });

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const upRequest = MacUpRequest.fromPartial({ vmAddress: ADDR.vm, endpoints: [{ host: 'wg.example', ip: ADDR.server, port: ADDR.port }], dnsServers: ['198.51.100.53'] });

  it('answers Describe (vnic from metadata), Status, health for "" and wgctl.v1.MacAgent; refuses an invalid Up', async () => {
    await startAgent();
    const c = client();
    const metadata = new grpc.Metadata();
    metadata.set('wgctl-vm-address', ADDR.vm);
    const description = await unaryCall(c.describe.bind(c), DescribeRequest.fromPartial({}), { timeoutMs: 5_000, metadata });
    expect(description).toMatchObject({ agent: { agent: 'mac-agent', driver: 'linux', protocolVersion: 'wgctl.v1' }, uplinkInterface: IF.hostA, gateway: ADDR.gwA, vnicInterface: IF.hostV, vnicAddress: ADDR.hostV });
    expect(await healthCheck(target(), { insecure: true }, 'wgctl.v1.MacAgent')).toBe('SERVING');
    const status: MacStatus = await unaryCall(c.status.bind(c), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
    expect(status).toMatchObject({ up: false, uplinkInterface: IF.hostA, killSwitch: { loaded: false } });
    // An invalid request is refused before anything runs.
    const bad = readStream(c.up(MacUpRequest.fromPartial({ vmAddress: 'not-an-ip', endpoints: [] })));
    await expect((async () => {
      for await (const _ of bad) void _;
    })()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    c.close();
  });

  for (const stallAfter of ['pin-endpoint', 'split-routes']) {
    it(`kill -9 after ${stallAfter} during Up, restart (re-asserts Up), then Down leaves nothing behind`, async () => {
      const before = await routeLines();
      await startAgent({ WGCTL_TEST_STALL_AFTER_STEP: stallAfter });
      const c = client();
      const seen: string[] = [];
      const stream = c.up(upRequest);
      await new Promise<void>((resolveStalled, reject) => {
        stream.on('data', (p: Progress) => {
          if (p.kind?.$case === 'step' && p.kind.value.state === 2) {
            seen.push(p.kind.value.step);
            if (p.kind.value.step === stallAfter) resolveStalled();
          }
        });
        stream.on('error', (e) => reject(e));
      });
      // Mid-Up: the journal lists what is already on the host.
      expect(journal()).toMatchObject({ phase: 'up-in-progress', killSwitch: { policy: { uplink: IF.hostA } } });
      const listed = journal().routes.map((r: { destination: string }) => r.destination);
      expect(listed).toContain(`${ADDR.server}/32`);
      const pid = agent!.pid!;
      process.kill(pid, 'SIGKILL');
      await agent!.exited;
      agent = undefined;
      stream.cancel();
      c.close();
      expect(seen).toContain(stallAfter);
      expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).toContain('inet wgctl'); // still fail-closed
      if (stallAfter === 'pin-endpoint') expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe(ORIGINAL_RESOLV); // dns step never ran
      else {
        // DNS goes in beside the split routes, journaled first: the Down below restores it.
        expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toMatch(/nameserver 198\.51\.100\.53/);
        expect(journal().dns.snapshot.resolvConf).toBe(ORIGINAL_RESOLV);
      }

      // Restart: the journal says up → re-asserted to a complete, healthy Up.
      await startAgent();
      const c2 = client();
      const status: MacStatus = await unaryCall(c2.status.bind(c2), StatusRequest.fromPartial({}), { timeoutMs: 5_000 });
      expect(status.checks.filter((x) => !x.ok)).toEqual([]);
      expect(status).toMatchObject({ up: true, health: { state: 1 }, killSwitch: { loaded: true, enabled: true, interface: IF.hostA } });
      expect(status.routes.map((r) => r.evidence)).toEqual(expect.arrayContaining([`${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`, `0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]));
      expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toMatch(/nameserver 198\.51\.100\.53/);

      const steps: string[] = [];
      let ok = false;
      for await (const p of readStream(c2.down(MacDownRequest.fromPartial({})))) {
        if (p.kind?.$case === 'step' && p.kind.value.state !== 1) steps.push(`${p.kind.value.step}:${p.kind.value.state}`);
        if (p.kind?.$case === 'outcome') ok = p.kind.value.ok;
      }
      c2.close();
      expect(ok).toBe(true);
      expect(steps).toEqual(['restore-dns:2', 'remove-routes:2', 'unload-kill-switch:2', 'verify-clean:2']);
      expect(await routeLines()).toEqual(before);
      expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).not.toContain('wgctl');
      expect(readFileSync(join(dir, 'resolv.conf'), 'utf8')).toBe(ORIGINAL_RESOLV);
      expect(journal()).toMatchObject({ phase: 'down', routes: [], killSwitch: null, dns: null });
    });
  }
});
