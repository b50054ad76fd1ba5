/**
 * End to end in the namespace lab, through `wgctl` only: an excluded destination
 * (`wgctl init --exclude WEB/32`, issue #14 item 4).
 *   - up: the web host is reached directly through the café, in clear (the café uplink's
 *     capture sees it from the Mac's café address; the VM's tunnel does not see it); every other
 *     host (the internet router's far port) only through the tunnel;
 *   - status shows it (the Excluded row, `excluded` in --json);
 *   - roaming to cafe2 re-pins it via cafe2's gateway;
 *   - down removes its route;
 *   - `--exclude 0.0.0.0/0` and a CIDR covering the VM are refused with exit 2 and a message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TcpdumpPacket } from '@wgctl/parsers';
import { currentCafe, defaultLabDir, labExec, labHttpGet, labTopology, roam, type Lab } from '../lab/src';
import { eventually, formatPacket, ping, startCapture } from './observe';
import { createStack, expectExit, netnsTestsEnabled, type Stack } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgex';
/** The lab's web host, known before the lab exists (the topology is fixed per prefix). */
const WEB = labTopology(PREFIX, defaultLabDir(PREFIX)).web.wan.ipv4;

suite('end to end: an excluded destination (netns)', () => {
  let stack: Stack;
  let lab: Lab;
  let elsewhere: string;

  beforeAll(async () => {
    stack = await createStack(PREFIX, { initArgs: ['--exclude', `${WEB}/32`], vmAgentArgs: ['--health-interval', '1000'] });
    lab = stack.lab;
    elsewhere = lab.inet.ports.web.ipv4; // the internet router's port facing the web host: not excluded
  }, 60_000);

  afterAll(async () => {
    if (stack) {
      if ((await currentCafe(lab)) !== 'cafe1') await roam(lab, 'cafe1');
      await stack.wgctl(['down']);
    }
    await stack?.destroy();
  }, 60_000);

  const isIcmpBetween = (a: string, b: string) => (p: TcpdumpPacket) => p.protocol === 'icmp' && ((p.src === a && p.dst === b) || (p.src === b && p.dst === a));

  it('up: the excluded host goes through the café in clear, everything else through the tunnel; status shows it; a roam re-pins it; down removes it', async () => {
    const cafe1 = lab.cafes.cafe1;
    // plan: the Mac's `exclude` step and its route command, run by nobody.
    const plan = expectExit(await stack.wgctl(['plan']), 0);
    expect(plan.stdout).toMatch(new RegExp(`\\d+\\. exclude: excluded ${WEB.replace(/\./g, '\\.')}/32: via ${cafe1.client.gateway4.replace(/\./g, '\\.')}`));
    expect(plan.stdout).toMatch(new RegExp(`ip (-4 )?route \\S+ ${WEB.replace(/\./g, '\\.')}/32 via`));
    expectExit(await stack.wgctl(['up']), 0);

    // The route: via the café's gateway, not the VM.
    expect((await labExec(lab, 'mac', ['ip', 'route', 'get', WEB])).stdout).toContain(`via ${cafe1.client.gateway4} dev ${lab.mac.uplink}`);

    const uplink = await startCapture(lab, 'mac', lab.mac.uplink);
    const tunnel = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    const direct = await ping(lab, 'mac', WEB, { count: 3 });
    const http = await labHttpGet(lab, 'mac', lab.web.url4);
    const tunnelled = await ping(lab, 'mac', elsewhere, { count: 3 });
    const [onUplink, inTunnel] = await Promise.all([uplink.stop(), tunnel.stop()]);

    expect(direct).toMatchObject({ transmitted: 3, received: 3 });
    expect(tunnelled).toMatchObject({ transmitted: 3, received: 3 });
    // The web host sees the café's address: the Mac's real one, not the VPN server's.
    expect(http.ok && JSON.parse(http.body).remote).toBe(cafe1.wan.ipv4);
    // On the café uplink: the excluded host in clear (echoes and replies), nothing of the other host.
    expect(onUplink.filter(isIcmpBetween(cafe1.client.ipv4, WEB)).length).toBeGreaterThanOrEqual(6);
    expect(onUplink.filter((p) => p.src === elsewhere || p.dst === elsewhere).map(formatPacket)).toEqual([]);
    // In the tunnel: the other host, never the excluded one.
    expect(inTunnel.filter((p) => p.protocol === 'icmp' && p.dst === elsewhere).length).toBe(3);
    expect(inTunnel.filter((p) => p.src === WEB || p.dst === WEB).map(formatPacket)).toEqual([]);

    const status = expectExit(await stack.wgctl(['status']), 0);
    expect(status.stdout).toMatch(new RegExp(`Excluded\\s.*${WEB.replace(/\./g, '\\.')}/32`));
    const json = JSON.parse(expectExit(await stack.wgctl(['--json', 'status']), 0).stdout);
    expect(json.mac.excluded).toEqual([{ destination: `${WEB}/32`, present: true }]);

    // Roaming: re-pinned via cafe2's gateway, still in clear, from cafe2's address.
    const cafe2 = lab.cafes.cafe2;
    const roamStart = Date.now();
    await roam(lab, 'cafe2');
    await eventually(
      'the excluded route to follow the roam',
      async () => (await labExec(lab, 'mac', ['ip', 'route', 'get', WEB])).stdout.includes(`via ${cafe2.client.gateway4} dev ${lab.mac.uplink}`),
      5000,
      50,
    );
    process.stdout.write(`exclude: route re-pinned via cafe2 ${Date.now() - roamStart} ms after the move began\n`);
    const afterRoam = await labHttpGet(lab, 'mac', lab.web.url4);
    expect(afterRoam.ok && JSON.parse(afterRoam.body).remote).toBe(cafe2.wan.ipv4);

    // Down: the excluded route is gone with the rest.
    expectExit(await stack.wgctl(['down']), 0);
    expect((await labExec(lab, 'mac', ['ip', 'route', 'show', `${WEB}/32`])).stdout.trim()).toBe('');
    await roam(lab, 'cafe1');
  }, 90_000);

  it('refuses to exclude everything, or a range covering the VM, with exit 2 and a message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgctl-exclude-init-'));
    try {
      const init = (cidr: string) => stack.wgctl(['init', '--dir', dir, '--vm-address', lab.vm.eth.ipv4, '--exclude', cidr]);
      const everything = expectExit(await init('0.0.0.0/0'), 2);
      expect(everything.stderr).toMatch(/--exclude: 0\.0\.0\.0\/0 is too wide to exclude/);
      const vmNet = `${lab.vm.eth.ipv4.split('.').slice(0, 3).join('.')}.0/24`;
      const coversVm = expectExit(await init(vmNet), 2);
      expect(coversVm.stderr).toContain(`--exclude[0]: ${vmNet} covers the VM's address ${lab.vm.eth.ipv4}`);
      // For one run too: refused before any agent is asked (the host's routes and rules unchanged).
      const hostState = async () => [(await labExec(lab, 'mac', ['ip', 'route'])).stdout, (await labExec(lab, 'mac', ['nft', 'list', 'ruleset'])).stdout];
      const before = await hostState();
      const up = expectExit(await stack.wgctl(['up', '--exclude', '::/0']), 2);
      expect(up.stderr).toMatch(/--exclude\[0\]: ::\/0 is too wide/);
      expect(await hostState()).toEqual(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
