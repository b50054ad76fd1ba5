/**
 * `wgctl status` shows when the controller's certificate (and the CA) expire; within 30 days
 * the status is degraded with the fix named, and `wgctl init --rotate` renews it (same CA, so
 * the agents keep accepting it) — after which status is healthy again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPki } from '@wgctl/transport';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, startLab } from '../testing/fake-agents';
import { statusReportSchema } from '../testing/status-schema';

describe('wgctl status: the controller certificate', () => {
  let lab: Lab;
  let config: string;

  beforeEach(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wth-certstatus-'));
    const tlsDir = join(dir, 'tls');
    await createPki(tlsDir, { vmAddresses: ['127.0.0.1'], validityDays: 20 });
    lab = await startLab({ dir, tlsDir });
    config = writeLabConfig(lab);
  });
  afterEach(() => lab.cleanup());

  it('expiring in 19 days: degraded, the date and the fix; after `wgctl init --rotate`: healthy', async () => {
    const before = await cli(['--config', config, '--json', 'status']);
    const doc = statusReportSchema.parse(JSON.parse(before.stdout));
    expect(before.code).toBe(1);
    expect(doc.overall).toBe('degraded');
    expect(doc.controller?.certificate).toMatchObject({ ok: false, daysLeft: 19, caDaysLeft: expect.any(Number) });
    expect(doc.problems).toEqual([expect.stringMatching(/^controller: controller certificate expires in 19 days \(.*\): renew with `wgctl init --rotate`/)]);

    const table = await cli(['--config', config, 'status']);
    expect(table.stdout).toMatch(/^Controller certificate: controller certificate expires in 19 days/m);

    const rotated = await cli(['--config', config, 'init', '--rotate']);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/Renewed \d+ certificates in .* \(same CA\)/);

    const after = await cli(['--config', config, '--json', 'status']);
    const renewed = statusReportSchema.parse(JSON.parse(after.stdout));
    expect({ code: after.code, overall: renewed.overall, problems: renewed.problems }).toEqual({ code: 0, overall: 'healthy', problems: [] });
    expect(renewed.controller?.certificate).toMatchObject({ ok: true, daysLeft: expect.any(Number) });
    expect(renewed.controller!.certificate.daysLeft).toBeGreaterThan(800);
    const text = await cli(['--config', config, 'status']);
    expect(text.stdout).toMatch(/^Controller certificate: valid: controller until \d{4}-\d\d-\d\d \(82\d days\), CA until/m);
  });
});
