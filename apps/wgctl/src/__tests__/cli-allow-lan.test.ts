/** `--allow-lan` on the controller (issue #14 item 3): the config key written by init, and the status cell. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@wgctl/config';
import { lanCell } from '../render/status-table';
import { cli } from '../testing/cli-harness';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-allow-lan-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('--allow-lan', () => {
  it('`wgctl init --allow-lan` writes allowLan: true; without it the key is absent (off)', async () => {
    const on = await cli(['init', '--dir', join(dir, 'on'), '--vm-address', '192.0.2.10', '--allow-lan']);
    expect({ code: on.code, stderr: on.stderr }).toEqual({ code: 0, stderr: '' });
    expect(loadConfig(join(dir, 'on', 'config.json')).allowLan).toBe(true);
    const off = await cli(['init', '--dir', join(dir, 'off'), '--vm-address', '192.0.2.10']);
    expect(off.code).toBe(0);
    expect(loadConfig(join(dir, 'off', 'config.json'))).not.toHaveProperty('allowLan');
  });

  it('`init --rotate` refuses it (rotation changes certificates only)', async () => {
    const out = join(dir, 'w');
    expect((await cli(['init', '--dir', out, '--vm-address', '192.0.2.10'])).code).toBe(0);
    const r = await cli(['init', '--dir', out, '--rotate', '--allow-lan']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/drop --allow-lan/);
  });

  it('status shows the subnets the kill switch lets through', () => {
    expect(lanCell({ allowed: true, subnets: ['192.0.2.0/25'] })).toBe('allowed (192.0.2.0/25)');
    expect(lanCell({ allowed: true, subnets: [] })).toBe('allowed (no private subnet on the uplink)');
    expect(lanCell({ allowed: false, subnets: [] })).toBe('blocked');
  });
});
