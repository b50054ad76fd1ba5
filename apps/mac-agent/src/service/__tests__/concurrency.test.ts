/**
 * The reads that do not depend on each other run side by side (issue #7: every avoidable
 * millisecond of `wgctl up`). Each test holds the reads of one wave until all of them have
 * started (ConcurrencyGate): run one after another, they time out and the test fails.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { RuleRunner, ScriptedRunner, SharedReadRunner, formatArgv, type StepRecord, type StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import { LinuxDriver } from '../../host/linux';
import { ConcurrencyGate, GatedRunner } from '../../testing/concurrency-gate';
import { FakeDriver, fakeHost } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const fixture = (dir: string, name: string) => readFileSync(join(__dirname, '../../../../../libs/parsers/src', dir, '__fixtures__', name), 'utf8');

const intent: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' };

describe('reads run side by side', () => {
  describe('engine (in-memory host)', () => {
    let dir: string;
    let driver: FakeDriver;
    let gate: ConcurrencyGate;
    let engine: MacAgentEngine;
    const noMonitor = (argv: readonly string[]): StreamingProcess => {
      const exited = Promise.resolve({ code: 0, signal: null });
      return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => exited };
    };

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'wtm-concurrency-'));
      driver = new FakeDriver(fakeHost());
      gate = new ConcurrencyGate();
      driver.gate = gate;
      engine = new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: new JournalStore(dir), logger: silentLogger(), spawnMonitor: noMonitor, roamDebounceMs: 10_000 });
    });

    afterEach(async () => {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Each step's wave is armed when the step starts. */
    const wavesBySteps = (waves: Record<string, string[]>) => (s: StepRecord) => {
      if (s.state === 'started') gate.expect(waves[s.step] ?? []);
    };

    it('Up: discover reads the uplink and the vnic together; verify reads routes and kill switch together', async () => {
      const steps: StepRecord[] = [];
      const listener = wavesBySteps({ discover: ['discoverUplink', 'discoverVnic 192.0.2.130'], verify: ['readRoutes', 'readKillSwitch'] });
      const outcome = await engine.up(intent, {}, (s) => {
        steps.push(s);
        listener(s);
      });
      expect(outcome).toMatchObject({ ok: true, error: '' });
      expect(gate.released).toEqual([
        ['discoverUplink', 'discoverVnic 192.0.2.130'],
        ['readRoutes', 'readKillSwitch'],
      ]);
    });

    it('Down: verify-clean reads routes and kill switch together', async () => {
      expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
      const outcome = await engine.down({}, wavesBySteps({ 'verify-clean': ['readRoutes', 'readKillSwitch'] }));
      expect(outcome).toMatchObject({ ok: true, error: '' });
      expect(gate.released).toEqual([['readRoutes', 'readKillSwitch']]);
    });

    it('Describe: uplink and vnic together', async () => {
      gate.expect(['discoverUplink', 'discoverVnic 192.0.2.130']);
      await expect(engine.describe('192.0.2.130')).resolves.toMatchObject({ uplink: { interface: 'en0' }, vnic: { interface: 'bridge100' } });
      expect(gate.released).toHaveLength(1);
    });

    it('discover still reports the uplink first when both fail, and nothing runs on after the step', async () => {
      driver.failures.set('discoverUplink', 'ip: cannot read the routing table');
      driver.failures.set('discoverVnic', 'no route to the VM address 192.0.2.130');
      const outcome = await engine.up(intent, {}, () => undefined);
      expect(outcome).toMatchObject({ ok: false, failedStep: 'discover', error: 'ip: cannot read the routing table' });
      expect(driver.calls).toEqual(['discoverUplink', 'discoverVnic 192.0.2.130']);
    });
  });

  describe('drivers', () => {
    const addrJson = (ifname: string, v4: string) =>
      JSON.stringify([{ ifindex: 3, ifname, flags: ['UP'], addr_info: [{ family: 'inet', local: v4, prefixlen: 24, scope: 'global' }] }]);

    it('linux: the IPv4 and IPv6 tables of the uplink discovery together, and the addresses with them', async () => {
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a.join(' ') === 'ip -j route show table main', reply: { stdout: fixture('linux', 'ip-route-main.json') } },
        { match: (a) => a.join(' ') === 'ip -j -6 route show table main', reply: { stdout: fixture('linux', 'ip-6-route-main.json') } },
        { match: (a) => a.join(' ') === 'ip -j addr show', reply: { stdout: addrJson('wtmx0', '192.0.2.2') } },
      ]);
      gate.expect(['ip -j route show table main', 'ip -j -6 route show table main', 'ip -j addr show']);
      await expect(new LinuxDriver().discoverUplink(new GatedRunner(answers, gate))).resolves.toEqual({ interface: 'wtmx0', gateway: '192.0.2.1', gateway6: 'fe80::1', address: '192.0.2.2' });
      expect(gate.released).toHaveLength(1);
    });

    it('linux: the uplink and the vnic from one round of three reads (both tables, the addresses), the vnic with no read of its own', async () => {
      const gate = new ConcurrencyGate();
      const vnicRoute = { dst: '192.0.2.128/26', dev: 'wtmv0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.129', flags: [] };
      const answers = new RuleRunner([
        { match: (a) => a.join(' ') === 'ip -j route show table main', reply: { stdout: JSON.stringify([...JSON.parse(fixture('linux', 'ip-route-main.json')), vnicRoute]) } },
        { match: (a) => a.join(' ') === 'ip -j -6 route show table main', reply: { stdout: fixture('linux', 'ip-6-route-main.json') } },
        { match: (a) => a.join(' ') === 'ip -j addr show', reply: { stdout: `[${addrJson('wtmx0', '192.0.2.2').slice(1, -1)},${addrJson('wtmv0', '192.0.2.129').slice(1, -1)}]` } },
      ]);
      // Describe and discover: one round of reads, three processes (no `ip route get`).
      gate.expect(['ip -j route show table main', 'ip -j -6 route show table main', 'ip -j addr show']);
      const shared = new SharedReadRunner(new GatedRunner(answers, gate));
      const driver = new LinuxDriver();
      const [uplink, vnic] = await Promise.all([driver.discoverUplink(shared), driver.discoverVnic(shared, '192.0.2.130')]);
      expect(uplink).toMatchObject({ interface: 'wtmx0', address: '192.0.2.2' });
      expect(vnic).toEqual({ interface: 'wtmv0', address: '192.0.2.129' });
      expect(gate.released).toHaveLength(1);
      expect(answers.calls.map((a) => a.join(' '))).toHaveLength(3);
    });

    it('linux: resolv.conf link and content together', async () => {
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a[0] === 'readlink', reply: { exitCode: 1 } },
        { match: (a) => a[0] === 'cat', reply: { stdout: 'nameserver 192.0.2.53\n' } },
      ]);
      gate.expect(['readlink /tmp/wtm-resolv.conf', 'cat /tmp/wtm-resolv.conf']);
      const snapshot = await new LinuxDriver({ resolvConfPath: '/tmp/wtm-resolv.conf' }).readDns(new GatedRunner(answers, gate));
      expect(snapshot).toMatchObject({ resolvConf: 'nameserver 192.0.2.53\n', services: [{ servers: ['192.0.2.53'] }] });
      expect(gate.released).toHaveLength(1);
    });

    it('darwin: the DNS snapshot reads the services side by side, at most 8 networksetup reads at once', async () => {
      const names = ['Wi-Fi', 'Ethernet', 'Thunderbolt Bridge', 'iPhone USB', 'Parallels Shared #0'];
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a[1] === '-listallnetworkservices', reply: { stdout: `An asterisk (*) denotes that a network service is disabled.\n${names.join('\n')}\n` } },
        { match: (a) => a[1] === '-getdnsservers', reply: { stdout: '192.0.2.53\n' } },
        { match: (a) => a[1] === '-getsearchdomains', reply: { stdout: 'corp.example\n' } },
      ]);
      let inFlight = 0;
      let most = 0;
      const counting = {
        run: async (argv: readonly string[], options?: Parameters<typeof answers.run>[1]) => {
          inFlight++;
          most = Math.max(most, inFlight);
          try {
            return await new GatedRunner(answers, gate).run(argv, options);
          } finally {
            inFlight--;
          }
        },
      };
      // The first four services' two reads each: all eight in flight together.
      gate.expect(names.slice(0, 4).flatMap((n) => [formatArgv(['networksetup', '-getdnsservers', n]), formatArgv(['networksetup', '-getsearchdomains', n])]));
      const snapshot = await new DarwinDriver().readDns(counting);
      expect(gate.released).toHaveLength(1);
      expect(most).toBe(8);
      expect(snapshot.services.map((x) => x.name)).toEqual(names); // in the listed order
      expect(snapshot.services[4]).toEqual({ name: 'Parallels Shared #0', servers: ['192.0.2.53'], searchDomains: ['corp.example'] });
    });

    it('darwin: the uplink and the vnic (Describe, discover) from one round of two reads: netstat -rn and one ifconfig', async () => {
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a.join(' ') === 'netstat -rn', reply: { stdout: fixture('darwin', 'netstat-rn-grep-default-ventura-ugscg-tp.txt') } },
        { match: (a) => a.join(' ') === 'ifconfig', reply: { stdout: `${fixture('darwin', 'ifconfig-en0-ventura-tp.txt')}${fixture('darwin', 'ifconfig-bridge100-utm-vmnet.txt')}` } },
      ]);
      gate.expect(['netstat -rn', 'ifconfig']);
      const shared = new SharedReadRunner(new GatedRunner(answers, gate));
      const driver = new DarwinDriver();
      const [uplink, vnic] = await Promise.all([driver.discoverUplink(shared), driver.discoverVnic(shared, '192.168.64.2')]);
      expect(uplink).toEqual({ interface: 'en0', gateway: '10.33.19.254', address: '10.33.16.202' });
      expect(vnic).toMatchObject({ interface: 'bridge100' });
      expect(gate.released).toHaveLength(1);
      expect(answers.calls).toHaveLength(2);
    });

    it('darwin: the kill switch read-back (PF info, main rules, anchor, references) all at once', async () => {
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a.join(' ') === 'pfctl -s info', reply: { stdout: fixture('darwin', 'pfctl-s-info-enabled-macos26-capture.txt') } },
        { match: (a) => a.join(' ') === 'pfctl -sr', reply: { stdout: 'anchor "com.apple/*" all\n' } },
        { match: (a) => a.join(' ') === 'pfctl -a com.apple/000.wgctl -sr', reply: { stdout: 'block drop out quick all\n' } },
        { match: (a) => a.join(' ') === 'pfctl -s References', reply: { stdout: fixture('darwin', 'pfctl-s-references-none-macos26-capture.txt') } },
      ]);
      gate.expect(['pfctl -s info', 'pfctl -sr', 'pfctl -a com.apple/000.wgctl -sr', 'pfctl -s References']);
      const status = await new DarwinDriver().readKillSwitch(new GatedRunner(answers, gate), undefined, { pfToken: '1' });
      expect(status).toMatchObject({ loaded: true, enabled: true, referenced: true, tokenHeld: false, rules: ['block drop out quick all'] });
      expect(gate.released).toHaveLength(1);
    });

    it('darwin: the kill switch load reads the main rules, the interfaces and the references all at once', async () => {
      const gate = new ConcurrencyGate();
      const answers = new RuleRunner([
        { match: (a) => a.join(' ') === 'pfctl -sr', reply: { stdout: 'anchor "com.apple/*" all\n' } },
        { match: (a) => a.join(' ') === 'ifconfig', reply: { stdout: 'lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n\tinet 127.0.0.1 netmask 0xff000000\n' } },
        { match: (a) => a.join(' ') === 'pfctl -s References', reply: { stdout: fixture('darwin', 'pfctl-s-references-none-macos26-capture.txt') } },
        { match: (a) => a[0] === 'pfctl' && a[1] === '-E', reply: { stderr: 'pf enabled\nToken : 42\n' } },
        { match: () => true, reply: {} },
      ]);
      gate.expect(['pfctl -sr', 'ifconfig', 'pfctl -s References']);
      const policy = { uplink: 'en0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'bridge100', allowDhcp6: false, blockIpv6: true };
      const handle = await new DarwinDriver({ stateDir: '/tmp/wgctl-test' }).loadKillSwitch(new GatedRunner(answers, gate), policy, { pfToken: '1' });
      expect(handle).toEqual({ pfToken: '42', pfAnchor: 'com.apple/000.wgctl' });
      expect(gate.released).toHaveLength(1);
    });
  });
});
