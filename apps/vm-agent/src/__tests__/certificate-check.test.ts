/**
 * The vm-agent's Status carries the `certificate` check run.ts wires in (its own certificate
 * and the CA, red within 30 days): advisory — it is in Status, but the health verdict is the
 * tunnel's, not the certificate's.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuleRunner } from '@wgctl/runner';
import { certificateCheck, createPki, loadTlsMaterial } from '@wgctl/transport';
import { VmEngine } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { vmStatusMessage } from '../service/server';
import { ProcSysctl } from '../host/sysctl';

describe('vm-agent Status: the certificate check', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-vcert-'));
    mkdirSync(join(dir, 'sys/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is in every sample, red 12 days before expiry, and does not decide serving', async () => {
    await createPki(join(dir, 'pki'), { vmAddresses: ['192.0.2.10'], validityDays: 13 });
    const tls = loadTlsMaterial(join(dir, 'pki'), 'vm-agent');
    const engine = new VmEngine({
      configPath: join(dir, 'wtv0.conf'), // absent: the sample says so in its own check
      runner: new RuleRunner([{ match: () => true, reply: { exitCode: 1 } }]),
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal: new JournalStore(join(dir, 'state')),
      advisoryChecks: () => [certificateCheck(tls, new Date())],
    });
    const sample = await engine.sample();
    expect(sample.status.checks.find((c) => c.name === 'certificate')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^vm-agent certificate expires in 12 days \(.*\): renew with `wgctl init --rotate`/),
    });
    expect(sample.reasons.some((r) => r.startsWith('certificate'))).toBe(false);
    expect(vmStatusMessage(sample, '').health?.reasons).toEqual(sample.reasons);
  });
});
