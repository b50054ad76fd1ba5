/**
 * f. Security of the running agents, from the Mac's namespace (where the controller runs):
 *   - plaintext, certificate-less and wrong-CA clients are refused by both agents; a client
 *     of the right CA but the wrong role gets no app call (health only for `monitor`);
 *   - each agent listens only where it was told: `ss -ltnp`, `ss -lunp`, `ss -lxp` in its
 *     namespace; the mac-agent's socket is not open to everyone;
 *   - the vm-agent refuses to start with a key readable by others.
 */
import { chmodSync, cpSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { labExec, type Lab } from '../lab/src';
import { bundlePath, createStack, expectExit, REPO_ROOT, type Stack, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wges';
const PROBE = join(REPO_ROOT, 'tools/e2e/grpc-probe.cjs');

interface Probe {
  ok: boolean;
  code?: number;
  details?: string;
}

type Credentials = { credentials: 'plaintext' } | { credentials: 'tls'; ca: string; cert?: string; key?: string };

suite('end to end: security (netns)', () => {
  let stack: Stack;
  let lab: Lab;
  let otherPki: string;

  const agents = () => [
    { name: 'vm-agent', target: stack.vmAgentListen, serverName: undefined, method: '/wgctl.v1.VmAgent/Describe' },
    { name: 'mac-agent', target: `unix:${stack.macAgentSocket}`, serverName: 'mac-agent', method: '/wgctl.v1.MacAgent/Describe' },
  ];
  const mine = (role: string): Credentials => ({ credentials: 'tls', ca: join(stack.tlsDir, 'ca.crt'), cert: join(stack.tlsDir, `${role}.crt`), key: join(stack.tlsDir, `${role}.key`) });

  async function probe(target: string, method: string, credentials: Credentials, serverName?: string): Promise<Probe> {
    const r = await labExec(lab, 'mac', [process.execPath, PROBE, JSON.stringify({ target, method, serverName, ...credentials })], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout) as Probe;
  }

  beforeAll(async () => {
    stack = await createStack(PREFIX);
    lab = stack.lab;
    // Another pairing's PKI: a valid controller certificate, from a CA the agents do not trust.
    otherPki = mkdtempSync(join(tmpdir(), 'wges-other-'));
    expectExit(await stack.wgctl(['init', '--dir', otherPki, '--vm-address', lab.vm.eth.ipv4]), 0);
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
    if (otherPki) rmSync(otherPki, { recursive: true, force: true });
  }, 60_000);

  it('f. the controller\'s certificate works (the control for the refusals below)', async () => {
    for (const agent of agents()) {
      expect({ agent: agent.name, ...(await probe(agent.target, agent.method, mine('controller'), agent.serverName)) }).toEqual({ agent: agent.name, ok: true });
    }
  });

  it.each([
    ['plaintext', (): Credentials => ({ credentials: 'plaintext' })],
    ['TLS without a client certificate', (): Credentials => ({ credentials: 'tls', ca: join(stack.tlsDir, 'ca.crt') })],
    [
      'a client certificate from another CA',
      (): Credentials => ({ credentials: 'tls', ca: join(stack.tlsDir, 'ca.crt'), cert: join(otherPki, 'tls/controller.crt'), key: join(otherPki, 'tls/controller.key') }),
    ],
  ])('f. refuses %s (no call gets through, not even health)', async (_what, credentials) => {
    for (const agent of agents()) {
      for (const method of [agent.method, '/grpc.health.v1.Health/Check']) {
        const result = await probe(agent.target, method, credentials(), agent.serverName);
        expect({ agent: agent.name, method, ok: result.ok, code: result.code }).toEqual({ agent: agent.name, method, ok: false, code: grpc.status.UNAVAILABLE });
      }
    }
  });

  it('f. a certificate of the right CA but the wrong role: health only for monitor, nothing for another agent', async () => {
    for (const agent of agents()) {
      expect(await probe(agent.target, '/grpc.health.v1.Health/Check', mine('monitor'), agent.serverName)).toEqual({ ok: true });
      expect(await probe(agent.target, agent.method, mine('monitor'), agent.serverName)).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    }
    const [vm, mac] = agents();
    expect(await probe(mac.target, mac.method, mine('vm-agent'), mac.serverName)).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(await probe(vm.target, vm.method, mine('mac-agent'), vm.serverName)).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
  });

  it('f. each agent listens only where it was told', async () => {
    const listeners = async (ns: string, flags: string, pid: number) => {
      const r = await labExec(lab, ns, ['ss', '-H', flags], { readOnly: true });
      const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
      const local = (line: string) => line.trim().split(/\s+/)[flags === '-lxp' ? 4 : 3];
      return { all: lines.map(local), agent: lines.filter((l) => l.includes(`pid=${pid},`)).map(local) };
    };
    const vmPid = stack.agentPid('vm-agent')!;
    const macPid = stack.agentPid('mac-agent')!;

    const vmTcp = await listeners(lab.vm.ns, '-ltnp', vmPid);
    expect(vmTcp).toEqual({ all: [stack.vmAgentListen], agent: [stack.vmAgentListen] });
    expect((await listeners(lab.vm.ns, '-lunp', vmPid)).agent).toEqual([]);
    expect((await listeners(lab.vm.ns, '-lxp', vmPid)).agent).toEqual([]);

    expect(await listeners(lab.mac.ns, '-ltnp', macPid)).toEqual({ all: [], agent: [] });
    expect((await listeners(lab.mac.ns, '-lunp', macPid)).agent).toEqual([]);
    expect((await listeners(lab.mac.ns, '-lxp', macPid)).agent).toEqual([stack.macAgentSocket]);
    expect(statSync(stack.macAgentSocket).mode & 0o007).toBe(0); // no access for "other"
  });

  it('f. the vm-agent will not start with a private key others can read', async () => {
    const loose = mkdtempSync(join(tmpdir(), 'wges-tls-'));
    try {
      cpSync(stack.vmTlsDir, loose, { recursive: true });
      chmodSync(join(loose, 'vm-agent.key'), 0o644);
      const r = await labExec(
        lab,
        'vm',
        [process.execPath, bundlePath('vm-agent'), '--listen', `${lab.vm.eth.ipv4}:7999`, '--tls-dir', loose, '--wg-config', lab.vm.wireguard.configPath, '--state-dir', join(loose, 'state')],
        { allowFailure: true, timeoutMs: 15_000 },
      );
      expect(r.exitCode).not.toBe(0);
      expect(`${r.stderr}${r.stdout}`).toMatch(/vm-agent\.key/);
    } finally {
      rmSync(loose, { recursive: true, force: true });
    }
  });
});
