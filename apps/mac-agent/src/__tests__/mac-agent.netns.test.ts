/**
 * The linux driver and the engine against real namespaces (see testing/lab.ts): routes,
 * the nftables kill switch proven with tcpdump on the uplink (the VM's NATed traffic
 * included, no IPv6 leak), roaming without a command, and Down leaving nothing behind.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import { parseIpRouteJson } from '@wgctl/parsers';
import type { StepRecord } from '@wgctl/runner';
import { LinuxDriver } from '../host/linux';
import { MacAgentEngine } from '../service/engine';
import { JournalStore, type UpIntent } from '../service/journal';
import { ADDR, IF, createLab, enableVmIpv6, netnsSpawner, netnsTestsEnabled, type Lab } from '../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const ORIGINAL_RESOLV = '# lab resolv.conf\nnameserver 192.0.2.1\nsearch lan.example\n';

const intent = (overrides: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: ADDR.vm,
  endpoints: [{ host: 'wg.example', ip: ADDR.server, port: ADDR.port }],
  dnsServers: ['198.51.100.53'],
  ipv6: 'auto',
  ...overrides,
});

async function routeLines(lab: Lab, family: '-4' | '-6' = '-4'): Promise<string[]> {
  return (await lab.host.run(['ip', family, 'route', 'show', 'table', 'main'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

describeNetns('mac-agent on a Linux host (network namespaces)', () => {
  let lab: Lab;
  let dir: string;
  let engine: MacAgentEngine;
  let logs: MemoryTransport;
  const resolvPath = () => join(dir, 'resolv.conf');

  const newEngine = () => {
    logs = new MemoryTransport();
    return new MacAgentEngine({
      driver: new LinuxDriver({ resolvConfPath: resolvPath() }),
      runner: lab.host,
      journal: new JournalStore(join(dir, 'state')),
      logger: createLogger({ service: 'mac-agent-test', level: 'debug', transports: [logs] }),
      spawnMonitor: netnsSpawner(lab.ns.host),
    });
  };

  beforeAll(async () => {
    lab = await createLab();
    dir = mkdtempSync(join(tmpdir(), 'wtm-mac-'));
    writeFileSync(resolvPath(), ORIGINAL_RESOLV);
  });

  afterAll(async () => {
    await engine?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // Every test starts from down.
    if (engine) {
      await engine.down({}, () => undefined);
      await engine.close();
    }
  });

  it('Up: pins the server before the /1 routes, loads the kill switch, sets DNS; idempotent; Down restores everything exactly', async () => {
    engine = newEngine();
    const before = await routeLines(lab);
    const steps: StepRecord[] = [];
    const outcome = await engine.up(intent(), {}, (s) => steps.push(s));
    expect(outcome).toMatchObject({ ok: true, failedStep: '' });
    const finished = steps.filter((s) => s.state !== 'started');
    expect(finished.map((s) => `${s.step}:${s.state}`)).toEqual([
      'discover:done',
      'kill-switch:done',
      'pin-endpoint:done',
      'split-routes:done',
      'ipv6:done',
      'dns:done',
      'verify:done',
    ]);
    const argvs = finished.flatMap((s) => s.commands.map((c) => c.argv.join(' ')));
    const pinAt = argvs.indexOf(`ip netns exec ${lab.ns.host} ip route add ${ADDR.server}/32 via ${ADDR.gwA} dev ${IF.hostA}`);
    const splitAt = argvs.indexOf(`ip netns exec ${lab.ns.host} ip route add 0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`);
    expect(pinAt).toBeGreaterThanOrEqual(0);
    expect(splitAt).toBeGreaterThan(pinAt);

    const routes = await routeLines(lab);
    expect(routes).toEqual(
      expect.arrayContaining([
        `0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`,
        `128.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`,
        `${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`,
        `default via ${ADDR.gwA} dev ${IF.hostA}`,
      ]),
    );
    // Traffic to "the internet" now leaves through the VM, the server through the uplink.
    const get = async (dst: string) => parseIpRouteJson((await lab.host.run(['ip', '-j', 'route', 'get', dst])).stdout)[0];
    expect(await get(ADDR.internet)).toMatchObject({ gateway: ADDR.vm, dev: IF.hostV });
    expect(await get(ADDR.server)).toMatchObject({ gateway: ADDR.gwA, dev: IF.hostA });
    expect(readFileSync(resolvPath(), 'utf8')).toMatch(/^nameserver 198\.51\.100\.53$/m);
    expect((await lab.host.run(['nft', 'list', 'table', 'inet', 'wgctl'])).stdout).toContain(`oifname "${IF.hostA}" ip daddr ${ADDR.server} udp dport ${ADDR.port} accept`);

    const status = await engine.status();
    expect(status.reasons).toEqual([]);
    expect(status).toMatchObject({ up: true, healthy: true, uplink: { interface: IF.hostA, gateway: ADDR.gwA } });
    expect(status.routes.map((r) => r.evidence)).toEqual(
      expect.arrayContaining([`${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`, `0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]),
    );
    expect(status.killSwitch).toMatchObject({ loaded: true, enabled: true, interface: IF.hostA, problems: [] });
    expect(status.dns).toEqual({ servers: ['198.51.100.53'], previous: ['192.0.2.1'], managed: true });

    // Again: everything already in place, nothing run that changes anything.
    const again: StepRecord[] = [];
    expect(await engine.up(intent(), {}, (s) => again.push(s))).toMatchObject({ ok: true });
    expect(again.filter((s) => s.state === 'skipped').map((s) => s.step)).toEqual(['kill-switch', 'pin-endpoint', 'split-routes', 'dns']);
    expect(again.flatMap((s) => s.commands).filter((c) => /route add|nft -f|tee|mv/.test(c.argv.join(' ')))).toEqual([]);

    // The user adds a route of their own meanwhile; Down must leave it (and the default) alone.
    await lab.host.run(['ip', 'route', 'add', '198.51.100.0/24', 'via', ADDR.gwA, 'dev', IF.hostA]);
    const down: StepRecord[] = [];
    expect(await engine.down({}, (s) => down.push(s))).toMatchObject({ ok: true });
    expect(down.filter((s) => s.state !== 'started').map((s) => `${s.step}:${s.state}`)).toEqual([
      'restore-dns:done',
      'remove-routes:done',
      'unload-kill-switch:done',
      'verify-clean:done',
    ]);
    expect(new Set(await routeLines(lab))).toEqual(new Set([...before, `198.51.100.0/24 via ${ADDR.gwA} dev ${IF.hostA}`]));
    await lab.host.run(['ip', 'route', 'del', '198.51.100.0/24', 'via', ADDR.gwA, 'dev', IF.hostA]);
    expect(await routeLines(lab)).toEqual(before);
    expect(readFileSync(resolvPath(), 'utf8')).toBe(ORIGINAL_RESOLV);
    expect((await lab.host.run(['nft', 'list', 'tables'])).stdout).not.toContain('wgctl');
  });
});
