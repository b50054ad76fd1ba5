/**
 * `wgctl up` and captive portals, against fake agents over real gRPC + mTLS: the probe is asked
 * only when the handshake never came, only after both sides were rolled back (the Mac no longer
 * fail-closed), and its portal is named in the failure text with what to do next.
 */
import { loadTlsMaterial } from '@wgctl/transport';
import type { MacAgentApi, VmAgentApi } from '../agents';
import { macAgentApi, vmAgentApi } from '../clients';
import { up, type ProbeVerdict } from '../orchestrator';
import { renderUpResult } from '../render/results';
import { type Lab, okSteps, startLab } from '../testing/fake-agents';

let lab: Lab;
let vm: VmAgentApi;
let mac: MacAgentApi;

beforeEach(async () => {
  lab = await startLab();
  const tls = loadTlsMaterial(lab.tlsDir, 'controller');
  vm = vmAgentApi({ side: 'vm', target: lab.agents.vmTarget }, { tls, timeoutMs: 3000 });
  mac = macAgentApi({ side: 'mac', target: lab.agents.macTarget }, { tls, timeoutMs: 3000, vmAddress: '192.0.2.3' });
});

afterEach(async () => {
  vm.close();
  mac.close();
  await lab.cleanup();
});

const PROBE_URL = 'http://captive.example.test/hotspot-detect.html';
const PORTAL: ProbeVerdict = { kind: 'portal', url: PROBE_URL, address: '192.0.2.80', status: 302, location: 'http://192.0.2.1/login', detail: 'answered 302 → http://192.0.2.1/login' };

/** A probe that records which agent calls had been made when it was asked. */
function recordingProbe(verdict: ProbeVerdict) {
  const askedAfter: string[][] = [];
  return { askedAfter, probePortal: async () => (askedAfter.push(lab.agents.sequence()), verdict) };
}

function failHandshake(): void {
  lab.agents.vm.up = {
    steps: [...okSteps('wg-quick-up'), { step: 'await-handshake', state: 'failed', message: 'no handshake within 15 s' }],
    outcome: { ok: false, failedStep: 'await-handshake', error: 'no handshake within 15 s' },
  };
}

describe('up on a network that holds the handshake', () => {
  it('probes once both sides are rolled back, and names the portal and the next step', async () => {
    failHandshake();
    const probe = recordingProbe(PORTAL);
    const result = await up(vm, mac, { vmAddress: '192.0.2.3', probePortal: probe.probePortal });
    expect(result.ok).toBe(false);
    expect(probe.askedAfter).toEqual([['vm.Up', 'mac.Up', 'mac.Down', 'vm.Down']]);
    expect(result.portal).toEqual(PORTAL);
    const { stderr } = renderUpResult(result);
    expect(stderr).toContain(`a captive portal holds this network (${PROBE_URL} answered 302 → http://192.0.2.1/login)`);
    expect(stderr).toContain('next: `wgctl portal` (everything stays blocked but web and DNS while you sign in at http://192.0.2.1/login');
    expect(stderr).toContain('until then this Mac is NOT protected (this run was rolled back)');
  });

  it('says nothing of a portal when the probe finds the network free or unreachable', async () => {
    for (const verdict of [{ kind: 'free', url: PROBE_URL, address: '192.0.2.80' }, { kind: 'unreachable', url: PROBE_URL, error: 'ETIMEDOUT' }] as ProbeVerdict[]) {
      failHandshake();
      const result = await up(vm, mac, { vmAddress: '192.0.2.3', probePortal: recordingProbe(verdict).probePortal });
      expect(result.portal).toBeUndefined();
      expect(renderUpResult(result).stderr).not.toContain('captive portal');
    }
  });

  it('does not probe while the Mac may still be fail-closed (its rollback failed)', async () => {
    failHandshake();
    lab.agents.mac.down = { steps: [], outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl: token invalid' } };
    const probe = recordingProbe(PORTAL);
    const result = await up(vm, mac, { vmAddress: '192.0.2.3', probePortal: probe.probePortal });
    expect(result.rollback).toContainEqual(expect.objectContaining({ side: 'mac', ok: false }));
    expect(probe.askedAfter).toEqual([]);
  });

  it('does not probe when Up failed for another reason', async () => {
    lab.agents.vm.up = { steps: [{ step: 'read-config', state: 'failed', message: 'no [Peer]' }], outcome: { ok: false, failedStep: 'read-config', error: 'no [Peer]' }, plan: null };
    const probe = recordingProbe(PORTAL);
    const result = await up(vm, mac, { vmAddress: '192.0.2.3', probePortal: probe.probePortal });
    expect(result.ok).toBe(false);
    expect(probe.askedAfter).toEqual([]);
    expect(result.portal).toBeUndefined();
  });
});
