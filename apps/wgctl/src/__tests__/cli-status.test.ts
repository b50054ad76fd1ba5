/** status (table, --json validated against the zod schema, --watch, exit 0/1/2); health: cli-health.test.ts. */
import { type Lab, healthyMacStatus, healthyVmStatus, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { statusReportSchema } from '../testing/status-schema';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab({ allowedRoles: ['controller', 'monitor'] });
  config = writeLabConfig(lab);
});
afterEach(() => lab.cleanup());

async function statusJson() {
  const r = await cli(['--config', config, '--json', 'status']);
  const doc = JSON.parse(r.stdout);
  const parsed = statusReportSchema.safeParse(doc);
  if (!parsed.success) throw new Error(`status JSON does not match the schema: ${JSON.stringify(parsed.error.issues, null, 2)}`);
  expect(doc.exitCode).toBe(r.code);
  return { code: r.code, doc: parsed.data, stderr: r.stderr };
}

describe('wgctl status', () => {
  it('healthy: exit 0, JSON valid against the schema, both sides filled', async () => {
    const { code, doc } = await statusJson();
    expect(code).toBe(0);
    expect(doc.overall).toBe('healthy');
    expect(doc.problems).toEqual([]);
    if (!doc.vm.reachable || !doc.mac.reachable) throw new Error('unreachable');
    expect(doc.vm.peers[0]).toMatchObject({ endpoint: '203.0.113.5:51820', handshakeAgeSeconds: 12, rxBytes: 1048576, txBytes: 204800 });
    expect(doc.mac.killSwitch).toMatchObject({ loaded: true, enabled: true, interface: 'en0' });
    expect(doc.mac.uplink).toEqual({ interface: 'en0', gateway: '192.0.2.1' });
    expect(doc.mac.lastRoam).toBeNull();
  });

  it('the table shows both agents side by side', async () => {
    const r = await cli(['--config', config, 'status']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\s+VM \(127\.0\.0\.1:\d+\)\s+Mac \(unix:.*mac-agent\.sock\)$/);
    expect(r.stdout).toMatch(/^Handshake\s+12 s ago\s+-$/m);
    expect(r.stdout).toMatch(/^Transfer\s+rx 1\.0 MiB \/ tx 200\.0 KiB\s+-$/m);
    expect(r.stdout).toMatch(/^Routes\s+ip_forward on, SNAT 192\.0\.2\.2\s+0\.0\.0\.0\/1, 128\.0\.0\.0\/1, 203\.0\.113\.5\/32$/m);
    expect(r.stdout).toMatch(/^Kill switch\s+-\s+on \(en0\)$/m);
    expect(r.stdout).toMatch(/^DNS\s+-\s+10\.64\.0\.1$/m);
    expect(r.stdout).toMatch(/^Gateway\s+-\s+192\.0\.2\.1$/m);
    expect(r.stdout).toMatch(/^Uplink\s+-\s+en0$/m);
    expect(r.stdout).toMatch(/^Overall: HEALTHY$/m);
  });

  it('degraded (exit 1): stale handshake, missing route, kill switch off, failing check', async () => {
    const vm = healthyVmStatus();
    vm.peers[0]!.handshakeAgeS = '400';
    const mac = healthyMacStatus();
    mac.routes[1]!.present = false;
    mac.killSwitch!.enabled = false;
    mac.checks = [{ name: 'dns', ok: false, detail: 'resolver 10.64.0.1 not in effect', evidence: [] }];
    lab.agents.vm.status = vm;
    lab.agents.mac.status = mac;
    const { code, doc } = await statusJson();
    expect(code).toBe(1);
    expect(doc.overall).toBe('degraded');
    expect(doc.problems).toEqual([
      'VM: last handshake 400 s ago (stale after 180 s)',
      'Mac: routes missing: 128.0.0.0/1',
      'Mac: kill switch loaded but not enabled: traffic could leak',
      'Mac: check dns failed: resolver 10.64.0.1 not in effect',
    ]);
  });

  it('IPv6: routed on the Mac and forwarded by the VM is healthy and shown; routed to a VM that does not forward it is degraded', async () => {
    lab.agents.mac.status = { ...healthyMacStatus(), ipv6: 'route', vmAddress6: '2001:db8:6:1::2' };
    lab.agents.vm.status = { ...healthyVmStatus(), macSource6: '2001:db8:6:1::1/128' };
    const routed = await statusJson();
    expect(routed.code).toBe(0);
    if (!routed.doc.vm.reachable || !routed.doc.mac.reachable) throw new Error('unreachable');
    expect(routed.doc.mac).toMatchObject({ ipv6: 'route', vmAddress6: '2001:db8:6:1::2' });
    expect(routed.doc.vm.macSource6).toBe('2001:db8:6:1::1/128');
    const table = await cli(['--config', config, 'status']);
    expect(table.stdout).toMatch(/^IPv6\s+forwarded, NAT66 2001:db8:6:1::1\/128\s+routed via 2001:db8:6:1::2$/m);

    lab.agents.vm.status = { ...healthyVmStatus(), macSource6: '' };
    const broken = await statusJson();
    expect(broken.code).toBe(1);
    expect(broken.doc.problems).toContain('Mac: IPv6 is routed to the VM, but the VM does not forward it (run `wgctl up` again)');
  });

  it('IPv6 blocked: null on the VM side, "block" on the Mac side, healthy', async () => {
    const { code, doc } = await statusJson();
    expect(code).toBe(0);
    if (!doc.vm.reachable || !doc.mac.reachable) throw new Error('unreachable');
    expect(doc.vm.macSource6).toBeNull();
    expect(doc.mac).toMatchObject({ ipv6: 'block', vmAddress6: null });
  });

  it('degraded: never handshaken, agent NOT_SERVING with reasons', async () => {
    const vm = healthyVmStatus();
    vm.peers[0]!.latestHandshakeUnix = '0';
    vm.peers[0]!.handshakeAgeS = '-1';
    vm.health = { state: 2, reasons: ['no handshake'], sampledAtMs: '0' };
    lab.agents.vm.status = vm;
    const { code, doc } = await statusJson();
    expect(code).toBe(1);
    expect(doc.problems).toEqual(['vm-agent NOT_SERVING: no handshake', 'VM: no handshake with the server yet']);
    if (!doc.vm.reachable) throw new Error('unreachable');
    expect(doc.vm.peers[0]).toMatchObject({ latestHandshake: null, handshakeAgeSeconds: null });
    expect(doc.vm.health.sampledAt).toBeNull();
  });

  it('degraded: an agent speaking another protocol version', async () => {
    lab.agents.mac.status = { ...healthyMacStatus(), agent: { ...healthyMacStatus().agent!, protocolVersion: 'wgctl.v2' } };
    const { code, doc } = await statusJson();
    expect(code).toBe(1);
    expect(doc.problems).toEqual(['mac-agent speaks protocol "wgctl.v2", this wgctl "wgctl.v1": upgrade one of them']);
  });

  it('down (exit 2): the tunnel is down on both sides', async () => {
    lab.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false, peers: [] };
    lab.agents.mac.status = { ...healthyMacStatus(), up: false, routes: [] };
    const { code, doc } = await statusJson();
    expect(code).toBe(2);
    expect(doc.overall).toBe('down');
  });

  it('down on both sides with a sign-in window open: the window is still named (its traffic leaves unprotected)', async () => {
    lab.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false, peers: [] };
    lab.agents.mac.status = { ...healthyMacStatus(), up: false, routes: [], portalWindow: { untilUnixMs: String(Date.now() + 90_000), resolvers: ['192.0.2.1'], tcpPorts: [80, 443] } };
    const { code, doc } = await statusJson();
    expect(code).toBe(2);
    expect(doc.problems).toEqual([
      'the tunnel is down on both sides (run `wgctl up`)',
      expect.stringMatching(/^Mac: SIGN-IN WINDOW OPEN \((89|90) s left\): web traffic \(TCP 80\/443\) and DNS to 192\.0\.2\.1 leave UNPROTECTED$/),
    ]);
  });

  it('down (exit 2): an agent unreachable; the other side is still reported', async () => {
    await lab.agents.stop('mac');
    const { code, doc } = await statusJson();
    expect(code).toBe(2);
    expect(doc.mac).toMatchObject({ reachable: false, target: lab.agents.macTarget });
    expect(doc.vm.reachable).toBe(true);
    expect(doc.problems[0]).toMatch(/^mac-agent unreachable \(unix:.*\): cannot reach mac-agent/);

    const table = await cli(['--config', config, 'status']);
    expect(table.code).toBe(2);
    expect(table.stdout).toMatch(/^Agent\s+vm-agent 0\.1\.0 \(nft\) on vm-agent-host\s+UNREACHABLE$/m);
    expect(table.stdout).toMatch(/^Overall: DOWN$/m);
  });

  it('--watch SECONDS samples until Ctrl-C and exits with the last verdict; --json gives one document per line', async () => {
    let samples = 0;
    const healthy = healthyVmStatus();
    Object.defineProperty(lab.agents.vm, 'status', {
      get: () => (++samples >= 3 ? { ...healthy, interfaceUp: false } : healthy),
    });
    const r = await cli(['--config', config, '--json', 'status', '--watch', '0.1'], {
      onStart: (interrupt) => {
        const timer = setInterval(() => {
          if (samples >= 3) {
            clearInterval(timer);
            interrupt();
          }
        }, 20);
      },
    });
    const docs = r.stdout.trim().split('\n').map((l) => statusReportSchema.parse(JSON.parse(l)));
    expect(docs.length).toBeGreaterThanOrEqual(3);
    expect(docs[0]!.overall).toBe('healthy');
    expect(docs[docs.length - 1]!.overall).toBe('degraded');
    expect(r.code).toBe(1);
  });

  it('a bad --watch value is exit 2 naming the flag', async () => {
    const bad = await cli(['--config', config, 'status', '--watch', 'often']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/option '--watch \[seconds\]' argument 'often' is invalid/);
  });
});

