/**
 * What a client's set-up costs on the CLI's path to its first RPCs: the two agents' channels
 * share one secure context (each build parses the key and certificates again), and grpc-js's
 * isIPv6 questions about IPv4 hosts never reach node's IPv6 regex.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as nodeNet from 'node:net';
import type * as nodeTls from 'node:tls';
// The module objects themselves, as grpc-js and client.ts see them.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tls = require('node:tls') as typeof nodeTls;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const net = require('node:net') as typeof nodeNet;
import { silentLogger } from '@wgctl/logging';
import { DescribeRequest, MacAgentClient, MacAgentService, MacDescription, VmAgentClient, VmAgentService, VmDescription, type MacAgentServer, type VmAgentServer } from '@wgctl/proto';
import { channelSetup, connectAgent, createAgentServer, createPki, loadTlsMaterial, unaryCall, type AgentServer, type TlsMaterial } from '../index';

describe('client set-up', () => {
  let dir: string;
  let controller: TlsMaterial;
  const servers: AgentServer[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-csetup-'));
    await createPki(dir, { vmAddresses: ['127.0.0.1'], macAgentAddresses: ['127.0.0.1'] });
    controller = loadTlsMaterial(dir, 'controller');
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.shutdown()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds one secure context for both agents, and both mTLS calls work through it', async () => {
    const vmServer = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', tls: loadTlsMaterial(dir, 'vm-agent'), allowedRoles: ['controller'], logger: silentLogger() });
    vmServer.addService(VmAgentService, { describe: (_c, cb) => cb(null, VmDescription.fromPartial({ interface: 'wg0' })) } as Partial<VmAgentServer> as VmAgentServer);
    const macServer = createAgentServer({ serviceName: 'wgctl.v1.MacAgent', tls: loadTlsMaterial(dir, 'mac-agent'), allowedRoles: ['controller'], logger: silentLogger() });
    macServer.addService(MacAgentService, { describe: (_c, cb) => cb(null, MacDescription.fromPartial({ uplinkInterface: 'en0' })) } as Partial<MacAgentServer> as MacAgentServer);
    servers.push(vmServer, macServer);
    const vmAddress = await vmServer.listen('127.0.0.1:0');
    const macAddress = await macServer.listen('127.0.0.1:0');

    const built = jest.spyOn(tls, 'createSecureContext');
    const vm = connectAgent(VmAgentClient, vmAddress, { tls: controller });
    const mac = connectAgent(MacAgentClient, macAddress, { tls: controller });
    try {
      expect(built).toHaveBeenCalledTimes(1);
      const [v, m] = await Promise.all([
        unaryCall(vm.describe.bind(vm), DescribeRequest.fromPartial({}), { timeoutMs: 5000 }),
        unaryCall(mac.describe.bind(mac), DescribeRequest.fromPartial({}), { timeoutMs: 5000 }),
      ]);
      expect(v.interface).toBe('wg0');
      expect(m.uplinkInterface).toBe('en0');
      // Other material (a monitor's certificate, a re-read after rotation) gets its own.
      channelSetup('127.0.0.1:7443', { tls: { ...controller } }, 'vm-agent');
      expect(built).toHaveBeenCalledTimes(2);
    } finally {
      built.mockRestore();
      vm.close();
      mac.close();
    }
  });

  it("answers grpc-js's isIPv6 and tls's isIP about a name or IPv4 host without node's IPv6 regex, and every other question as before", () => {
    const { isIP, isIPv6 } = net;
    // Stand-ins for node's own, to see which questions reach them.
    const regexIsIPv6 = jest.fn((input: string) => isIPv6(input));
    const regexIsIP = jest.fn((input: string) => isIP(input));
    net.isIPv6 = regexIsIPv6;
    net.isIP = regexIsIP;
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const fresh = require('../client') as typeof import('../client');
        fresh.channelSetup('198.51.100.2:7443', { tls: controller }, 'vm-agent');
      });
      for (const host of ['198.51.100.2', '192.0.2.1', 'vm-agent', '']) expect(net.isIPv6(host)).toBe(false);
      const names: Array<[string, number]> = [['198.51.100.2', 4], ['vm-agent', 0], ['mac-agent.example', 0], ['256.1.1.1', 0], ['', 0]];
      for (const [host, family] of names) expect(net.isIP(host)).toBe(family);
      expect(regexIsIPv6).not.toHaveBeenCalled();
      expect(regexIsIP).not.toHaveBeenCalled();
      const v6: Array<[string, boolean]> = [['2001:db8::1', true], ['::ffff:192.0.2.1', true], ['fe80::1%en0', true], ['2001:db8::g', false], [':', false]];
      for (const [host, expected] of v6) {
        expect(net.isIPv6(host)).toBe(expected);
        expect(net.isIP(host)).toBe(expected ? 6 : 0);
      }
      expect(regexIsIPv6).toHaveBeenCalledTimes(v6.length);
      expect(regexIsIP).toHaveBeenCalledTimes(v6.length);
    } finally {
      net.isIPv6 = isIPv6;
      net.isIP = isIP;
    }
  });
});
