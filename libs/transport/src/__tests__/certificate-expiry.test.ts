/**
 * Certificate expiry is reported long before it stops anything: the `certificate` check is red
 * within 30 days of the leaf's or the CA's expiry (naming which, when, and the fix), and green
 * again after `createPki({ rotate })` renews the leaves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CERTIFICATE_WARN_DAYS, certificateCheck, certificateExpiries, createPki, loadTlsMaterial } from '../index';

const DAY = 24 * 60 * 60 * 1000;

describe('certificate expiry', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-certexp-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a fresh PKI is green, with both dates', async () => {
    await createPki(dir, { vmAddresses: ['192.0.2.10'] });
    const now = new Date();
    const check = certificateCheck(loadTlsMaterial(dir, 'vm-agent'), now);
    expect(check).toMatchObject({ name: 'certificate', ok: true });
    expect(check.detail).toMatch(/^valid: vm-agent until \d{4}-\d\d-\d\d \(82[45] days\), CA until \d{4}-\d\d-\d\d \(36(49|50) days\)$/);
    expect(check.evidence).toHaveLength(2);
  });

  it(`a leaf expiring within ${CERTIFICATE_WARN_DAYS} days is red, names it and the fix; rotate makes it green`, async () => {
    await createPki(dir, { vmAddresses: ['192.0.2.10'], validityDays: 20 });
    const now = new Date();
    const [leaf, ca] = certificateExpiries(loadTlsMaterial(dir, 'controller'), now);
    expect(leaf).toMatchObject({ what: 'controller', daysLeft: 19, expiresSoon: true });
    expect(ca.expiresSoon).toBe(false);
    const check = certificateCheck(loadTlsMaterial(dir, 'controller'), now);
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/^controller certificate expires in 19 days \(\d{4}-.*Z\): renew with `wgctl init --rotate` and copy the new files to the agents$/);
    // Still 31 days out: green; one day into the window: red.
    expect(certificateCheck(loadTlsMaterial(dir, 'controller'), new Date(now.getTime() - 12 * DAY)).ok).toBe(true);
    expect(certificateCheck(loadTlsMaterial(dir, 'controller'), new Date(now.getTime() - 10 * DAY)).ok).toBe(false);

    await createPki(dir, { vmAddresses: ['192.0.2.10'], rotate: true });
    expect(certificateCheck(loadTlsMaterial(dir, 'controller'), now).ok).toBe(true);
  });

  it('a CA close to its end is red and asks for --rotate-ca; an expired one says EXPIRED', async () => {
    const longAgo = new Date(Date.now() - 3640 * DAY);
    await createPki(dir, { vmAddresses: ['192.0.2.10'], now: longAgo, validityDays: 3650 }); // leaves last as long as the CA
    const tls = loadTlsMaterial(dir, 'mac-agent', longAgo);
    const check = certificateCheck(tls, new Date());
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/mac-agent certificate expires in 9 days .*; CA certificate expires in 9 days .*: renew with `wgctl init --rotate --rotate-ca`/);
    expect(certificateCheck(tls, new Date(Date.now() + 11 * DAY)).detail).toMatch(/^mac-agent certificate EXPIRED on .*; CA certificate EXPIRED on /);
  });
});
