/**
 * `wgctl up` connects first: both Describes are sent as the clients are made, and the rest of
 * the command (orchestrator, renderers, winston) is loaded only once both connections are up,
 * so nothing but the config and the TLS material stands before the first RPCs.
 */
import { loadTlsMaterial } from '@wgctl/transport';
import { macAgentApi, vmAgentApi } from '../clients';
import { type Lab, startLab } from '../testing/fake-agents';

let lab: Lab;

beforeEach(async () => {
  lab = await startLab();
});
afterEach(() => lab.cleanup());

const describes = (side: 'vm' | 'mac') => lab.agents.calls.filter((c) => c.side === side && c.rpc === 'Describe').length;

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('clients with describeNow', () => {
  it('send the first Describe when made; the first describe() is that call, later ones are new', async () => {
    const tls = loadTlsMaterial(lab.tlsDir, 'controller');
    const vm = vmAgentApi({ side: 'vm', target: lab.agents.vmTarget }, { tls, timeoutMs: 5000, describeNow: true });
    const mac = macAgentApi({ side: 'mac', target: lab.agents.macTarget }, { tls, timeoutMs: 5000, vmAddress: '127.0.0.1', describeNow: true });
    try {
      await Promise.all([vm.connected(), mac.connected()]);
      await until(() => describes('vm') === 1 && describes('mac') === 1);
      expect((await vm.describe()).agent?.agent).toBe('vm-agent');
      expect((await mac.describe()).agent?.agent).toBe('mac-agent');
      expect([describes('vm'), describes('mac')]).toEqual([1, 1]);
      // The Mac's early Describe carries the VM's address, as the orchestrator's would.
      expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Describe')!.metadata).toMatchObject({ 'wgctl-vm-address': '127.0.0.1' });
      await vm.describe();
      expect(describes('vm')).toBe(2);
      // The early Describe is up's: it tells the vm-agent an Up follows (it reads ahead for it); later ones do not.
      const vmDescribes = lab.agents.calls.filter((c) => c.side === 'vm' && c.rpc === 'Describe').map((c) => (c.request as { upFollows: boolean }).upFollows);
      expect(vmDescribes).toEqual([true, false]);
    } finally {
      vm.close();
      mac.close();
    }
  });

  it('without it, send nothing until asked', async () => {
    const tls = loadTlsMaterial(lab.tlsDir, 'controller');
    const vm = vmAgentApi({ side: 'vm', target: lab.agents.vmTarget }, { tls, timeoutMs: 5000 });
    try {
      await vm.connected();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(describes('vm')).toBe(0);
    } finally {
      vm.close();
    }
  });

  it('to an agent that is not there: connected() resolves as the Describe fails, not at its deadline', async () => {
    const tls = loadTlsMaterial(lab.tlsDir, 'controller');
    // Nothing listens on port 1 of the loopback: the connection is refused at once.
    const vm = vmAgentApi({ side: 'vm', target: '127.0.0.1:1' }, { tls, timeoutMs: 30_000, describeNow: true });
    try {
      const started = Date.now();
      await vm.connected();
      expect(Date.now() - started).toBeLessThan(10_000);
      await expect(vm.describe()).rejects.toThrow(/cannot reach vm-agent at 127\.0\.0\.1:1/);
    } finally {
      vm.close();
    }
  });
});

describe('wgctl up', () => {
  afterEach(() => {
    jest.dontMock('../orchestrator');
    jest.dontMock('winston');
    jest.dontMock('../commands/context');
  });

  it('loads the orchestrator once both connections are up, and winston not at all below debug', async () => {
    const order: string[] = [];
    await jest.isolateModulesAsync(async () => {
      jest.doMock('../commands/context', () => {
        const actual = jest.requireActual('../commands/context') as typeof import('../commands/context');
        return {
          ...actual,
          openAgents: (...args: Parameters<typeof actual.openAgents>) => {
            const agents = actual.openAgents(...args);
            order.push('agents opened');
            const connected = agents.connected;
            return { ...agents, connected: () => connected().then(() => void order.push('connected')) };
          },
        };
      });
      jest.doMock('../orchestrator', () => {
        order.push('orchestrator loaded');
        return jest.requireActual('../orchestrator');
      });
      jest.doMock('winston', () => {
        order.push('winston loaded');
        return jest.requireActual('winston');
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { cli, writeLabConfig } = require('../testing/cli-harness') as typeof import('../testing/cli-harness');
      const r = await cli(['--config', writeLabConfig(lab), 'up']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
    expect(order).toEqual(['agents opened', 'connected', 'orchestrator loaded']);
    expect(lab.agents.calls.filter((c) => c.rpc === 'Describe').map((c) => c.side).sort()).toEqual(['mac', 'vm']);
  });
});
