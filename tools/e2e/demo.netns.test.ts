/**
 * README command #1 keeps working: the demo (tools/lab/demo.mjs, what `npm run demo` runs
 * after the build) passes every step and leaves no namespace behind.
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
    const r = await runner.run([process.execPath, join(REPO_ROOT, 'tools/lab/demo.mjs'), '--prefix', PREFIX], { allowFailure: true, timeoutMs: 90_000, cwd: REPO_ROOT });
    if (r.exitCode !== 0) throw new Error(`demo exited ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/demo: PASS — (\d+)\/\1 steps passed/);
    for (const step of ['wgctl init', 'wgctl up', 'wgctl status', 'wgctl verify', 'wgctl verify over IPv6', 'wgctl down', 'lab down']) expect(r.stdout).toContain(`✓ ${step}`);
    expect(r.stdout).toContain('verify: PASS');
    expect(await labNamespaces(PREFIX, runner)).toEqual([]);
  }, 90_000);
});
