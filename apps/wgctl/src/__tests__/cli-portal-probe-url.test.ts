/**
 * The captive-portal probe's URL as a config key (issue #14): `wgctl init --portal-probe-url`
 * writes `portal.probeUrl`, `wgctl up` asks it when no handshake comes unless
 * `--portal-probe-url` says otherwise. Through the whole CLI against fake agents; the probe is
 * a real HTTP GET to a portal this test runs on loopback.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Lab, okSteps, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';

/** A portal on loopback: every GET is answered 302 to its login page, and remembered. */
async function startPortal(): Promise<{ server: Server; base: string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(req.url ?? '');
    res.writeHead(302, { Location: 'http://192.0.2.1/login' }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked };
}

describe('wgctl up: the probe URL', () => {
  let lab: Lab;
  let portal: Awaited<ReturnType<typeof startPortal>>;

  beforeEach(async () => {
    lab = await startLab();
    portal = await startPortal();
    lab.agents.vm.up = {
      steps: [...okSteps('wg-quick-up'), { step: 'await-handshake', state: 'failed', message: 'no handshake within 15 s' }],
      outcome: { ok: false, failedStep: 'await-handshake', error: 'no handshake within 15 s' },
    };
  });
  afterEach(async () => {
    await new Promise((resolve) => portal.server.close(resolve));
    await lab.cleanup();
  });

  it("is the config's portal.probeUrl when no flag is given", async () => {
    const config = writeLabConfig(lab, { portal: { probeUrl: `${portal.base}/from-config` } });
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    expect(portal.asked).toEqual(['/from-config']);
    expect(r.stderr).toContain(`a captive portal holds this network (${portal.base}/from-config answered 302 → http://192.0.2.1/login)`);
  });

  it('is --portal-probe-url over the config', async () => {
    const config = writeLabConfig(lab, { portal: { probeUrl: `${portal.base}/from-config` } });
    const r = await cli(['--config', config, 'up', '--portal-probe-url', `${portal.base}/from-flag`]);
    expect(r.code).toBe(1);
    expect(portal.asked).toEqual(['/from-flag']);
  });

  it('refuses an https:// flag before any agent is asked (exit 2), and a config whose portal.probeUrl is not http://', async () => {
    const config = writeLabConfig(lab);
    const flag = await cli(['--config', config, 'up', '--portal-probe-url', 'https://captive.example/']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--portal-probe-url: expected a plain http:\/\/ URL/);
    expect(lab.agents.sequence()).toEqual([]);

    const bad = writeLabConfig(lab, { portal: { probeUrl: 'https://captive.example/' } });
    const fromConfig = await cli(['--config', bad, 'up']);
    expect(fromConfig.code).not.toBe(0);
    expect(fromConfig.stderr).toMatch(/portal\.probeUrl: expected a plain http:\/\/ URL/);
    expect(lab.agents.sequence()).toEqual([]);
    expect(portal.asked).toEqual([]);
  });
});

describe('wgctl init --portal-probe-url', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-init-probe-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes portal.probeUrl into the config', async () => {
    const out = join(dir, 'wgctl');
    const r = await cli(['init', '--dir', out, '--vm-address', '192.0.2.10', '--portal-probe-url', 'http://198.51.100.80/hotspot-detect.html']);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).portal).toEqual({ probeUrl: 'http://198.51.100.80/hotspot-detect.html' });
  });

  it('refuses a URL that is not plain http, naming the flag (exit 2)', async () => {
    const r = await cli(['init', '--dir', join(dir, 'wgctl'), '--vm-address', '192.0.2.10', '--portal-probe-url', 'https://198.51.100.80/']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--portal-probe-url: expected a plain http:\/\/ URL/);
  });
});
