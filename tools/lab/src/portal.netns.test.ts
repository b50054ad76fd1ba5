/**
 * The café captive portal for real (root, namespaces), without wgctl: before sign-in the café
 * forwards nothing from the Mac (nor the VM behind its NAT) but answers DNS and redirects HTTP to
 * its login page; a POST from the Mac signs it in and then everything passes; stop() puts the
 * café back as it was.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { createLab, destroyLab, labDnsQuery, labExec, labHttpGet, waitForHandshake, wgQuick } from './lab';
import { PORTAL_TABLE, startCaptivePortal, type CaptivePortal } from './portal';
import { APPLE_SUCCESS_BODY } from './scripts';
import type { Lab } from './topology';

const enabled = process.getuid?.() === 0 || process.env.CI === 'true';
const describeNetns = enabled ? describe : describe.skip;

const PREFIX = `wlp${process.pid.toString(36)}`;
const runner = new ExecRunner();

describeNetns('a café with a captive portal (no agents)', () => {
  let lab: Lab;
  let portal: CaptivePortal;
  let dir: string;
  let probeUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-lab-portal-'));
    lab = await createLab({ prefix: PREFIX, dir });
    probeUrl = `http://${lab.web.hostname}/hotspot-detect.html`;
    portal = await startCaptivePortal(lab);
  });

  afterAll(async () => {
    await destroyLab(PREFIX).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it("redirects the Mac's HTTP to any address to its login page, and answers DNS", async () => {
    const dns = await labDnsQuery(lab, 'mac', lab.cafes.cafe1.client.dns, lab.web.hostname);
    expect(dns).toEqual({ ok: true, addresses: [lab.web.wan.ipv4] });

    const probe = await labHttpGet(lab, 'mac', probeUrl);
    expect(probe).toMatchObject({ ok: true, status: 302, location: portal.loginUrl });
    const login = await labHttpGet(lab, 'mac', portal.loginUrl);
    expect(login).toMatchObject({ ok: true, status: 200 });
    expect(login.ok && login.body).toContain('<form method="post"');
    // The portal, not the web host, saw the probe (the web host logs nothing from the café).
    expect(portal.requests().map((r) => [r.host, r.url])).toContainEqual([lab.web.hostname, '/hotspot-detect.html']);
  });

  it('forwards nothing else before sign-in: no ping, no IPv6 HTTP, no WireGuard handshake from the VM', async () => {
    const ping = await labExec(lab, 'mac', ['ping', '-n', '-c', '1', '-W', '1', lab.web.wan.ipv4], { allowFailure: true });
    expect(ping.exitCode).not.toBe(0);
    const v6 = await labHttpGet(lab, 'mac', lab.web.url6, { timeoutMs: 1000 });
    expect(v6.ok).toBe(false);
    await wgQuick(lab, 'up');
    await expect(waitForHandshake(lab, { timeoutMs: 2000 })).rejects.toThrow(/timed out/);
  });

  it('lets the Mac (and the VM behind its NAT) through once the Mac signs in', async () => {
    const signIn = await labHttpGet(lab, 'mac', portal.loginUrl, { method: 'POST' });
    expect(signIn).toMatchObject({ ok: true, status: 200, body: `signed in: ${lab.cafes.cafe1.client.ipv4}\n` });
    expect(await portal.signedIn()).toEqual([lab.cafes.cafe1.client.ipv4]);

    const probe = await labHttpGet(lab, 'mac', probeUrl);
    expect(probe).toMatchObject({ ok: true, status: 200, body: APPLE_SUCCESS_BODY });
    const generate204 = await labHttpGet(lab, 'mac', `http://${lab.web.hostname}/generate_204`);
    expect(generate204).toMatchObject({ ok: true, status: 204, body: '' });
    // wireguard-go retries its handshake every 5 s.
    expect(await waitForHandshake(lab, { timeoutMs: 8000 })).toBeGreaterThan(0);
  });

  it('leaves the café as it was once stopped', async () => {
    await portal.stop();
    const tables = await labExec(lab, 'cafe1', ['nft', 'list', 'tables'], { runner, readOnly: true });
    expect(tables.stdout).not.toContain(PORTAL_TABLE);
    const login = await labHttpGet(lab, 'mac', portal.loginUrl, { timeoutMs: 1000 });
    expect(login.ok).toBe(false);
  });
});
