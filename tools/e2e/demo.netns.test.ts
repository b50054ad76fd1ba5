/**
 * README command #1 keeps working: the demo (tools/lab/demo.mjs, what `npm run demo` runs
 * after the build) passes every step, the captive-portal flow among them in its order (up fails
 * naming the portal, the sign-in window opens, sign-in, it closes on the handshake, verify), and
 * leaves no namespace behind.
 */
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { destroyLab, labNamespaces } from '../lab/src';
import { assertBuilt, REPO_ROOT, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgedemo';

suite('the demo (netns)', () => {
  afterAll(async () => {
    await destroyLab(PREFIX);
  }, 60_000);

  it('passes every step, exits 0 and removes its lab', async () => {
    assertBuilt();
    const runner = new ExecRunner();
    const r = await runner.run([process.execPath, join(REPO_ROOT, 'tools/lab/demo.mjs'), '--prefix', PREFIX], { allowFailure: true, timeoutMs: 110_000, cwd: REPO_ROOT });
    if (r.exitCode !== 0) throw new Error(`demo exited ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/demo: PASS — (\d+)\/\1 steps passed/);
    for (const step of ['wgctl init', 'wgctl up', 'wgctl status', "Prometheus's view", 'the menu bar', 'wgctl verify', 'wgctl verify over IPv6', 'wgctl down', 'lab down']) expect(r.stdout).toContain(`✓ ${step}`);
    expect(r.stdout).toContain('verify: PASS');
    // The captive-portal flow, in this order, each step passed.
    const portalSteps = [
      '✓ portal on',
      '✓ wgctl up at the portal: no handshake, rolled back, the portal named',
      '✓ wgctl portal: a sign-in window opens',
      '✓ wgctl status: the window is open',
      '✓ sign in from the Mac',
      '✓ the window closes by itself once the handshake comes',
      '✓ wgctl verify after signing in',
      '✓ wgctl down, portal off: the web host sees the coffee shop again',
    ];
    expect(portalSteps.filter((step) => !r.stdout.includes(step))).toEqual([]);
    const at = portalSteps.map((step) => r.stdout.indexOf(step));
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(r.stdout).toContain('a captive portal holds this network');
    expect(r.stdout).toMatch(/SIGN-IN WINDOW OPEN/);
    expect(r.stdout).toContain('portal: signed in: the sign-in window is CLOSED');
    expect(r.stdout.match(/verify: PASS/g)).toHaveLength(3);
    expect(r.stdout).toContain('✓ wgctl plan --exclude: a destination routed around the tunnel, in clear');
    expect(await labNamespaces(PREFIX, runner)).toEqual([]);
  }, 120_000);
});
