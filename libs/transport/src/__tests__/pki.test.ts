import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { ExecRunner } from '@wgctl/runner';
import {
  ROLES,
  certificateInfo,
  checkKeyFilePermissions,
  createPki,
  loadTlsMaterial,
  type Role,
} from '../index';

const NOW = new Date('2030-01-15T12:00:00Z');

const hasOpenssl = ['/usr/bin/openssl', '/usr/local/bin/openssl', '/opt/homebrew/bin/openssl'].some((p) => existsSync(p));

describe('createPki', () => {
  let root: string;
  let dir: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'wgctl-pki-'));
    dir = join(root, 'pki');
    await createPki(dir, {
      vmAddresses: ['192.0.2.10', '2001:db8::10'],
      macAgentAddresses: ['192.0.2.1'],
      validityDays: 30,
      now: NOW,
    });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes the directory 0700, keys 0600 and certificates 0644', () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const name of ['ca', ...ROLES]) {
      expect({ name, mode: statSync(join(dir, `${name}.key`)).mode & 0o777 }).toEqual({ name, mode: 0o600 });
      expect({ name, mode: statSync(join(dir, `${name}.crt`)).mode & 0o777 }).toEqual({ name, mode: 0o644 });
    }
  });

  it('issues one certificate per role with CN = role and the agents\' IP SANs', () => {
    const info = (role: Role) => certificateInfo(readFileSync(join(dir, `${role}.crt`)));
    for (const role of ROLES) expect(info(role).subjectCN).toBe(role);
    expect(info('vm-agent').sans).toEqual(['DNS:vm-agent', 'IP:192.0.2.10', 'IP:2001:db8::10']);
    expect(info('mac-agent').sans).toEqual(['DNS:mac-agent', 'IP:192.0.2.1']);
    expect(info('controller').sans).toEqual(['DNS:controller']);
    expect(info('controller').notAfter.toISOString()).toBe('2030-02-14T12:00:00.000Z');
    expect(info('controller').notBefore.getTime()).toBeLessThan(NOW.getTime());
    expect(info('controller').isCa).toBe(false);
    const ca = certificateInfo(readFileSync(join(dir, 'ca.crt')));
    expect(ca.isCa).toBe(true);
    expect(info('monitor').issuerCN).toBe(ca.subjectCN);
  });

  it('marks usages: agents serve and call, controller and monitor only call', () => {
    const eku = (role: Role) => new X509Certificate(readFileSync(join(dir, `${role}.crt`))).keyUsage ?? [];
    expect(eku('vm-agent').sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(eku('mac-agent').sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(eku('controller')).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(eku('monitor')).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  (hasOpenssl ? it : it.skip)('produces certificates openssl verifies against the CA, for their purpose', async () => {
    const runner = new ExecRunner();
    const verify = async (role: Role, purpose: string) =>
      (
        await runner.run(
          ['openssl', 'verify', '-attime', String(Math.floor(NOW.getTime() / 1000)), '-purpose', purpose, '-CAfile', join(dir, 'ca.crt'), join(dir, `${role}.crt`)],
          { readOnly: true, timeoutMs: 10_000 },
        )
      ).stdout;
    expect(await verify('vm-agent', 'sslserver')).toContain(': OK');
    expect(await verify('controller', 'sslclient')).toContain(': OK');
    await expect(verify('controller', 'sslserver')).rejects.toThrow();
    const text = (await runner.run(['openssl', 'x509', '-in', join(dir, 'ca.crt'), '-noout', '-text'], { readOnly: true })).stdout;
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toMatch(/prime256v1|P-256/);
  });

  it('refuses to overwrite an existing PKI without rotate', async () => {
    await expect(createPki(dir, { vmAddresses: ['192.0.2.10'] })).rejects.toThrow(/already exists.*rotate/);
  });

  it('rotate keeps the CA and reissues the leaves; rotateCa replaces everything', async () => {
    const copy = join(root, 'rotating');
    await createPki(copy, { vmAddresses: ['192.0.2.10'], now: NOW });
    const caBefore = readFileSync(join(copy, 'ca.crt'), 'utf8');
    const leafBefore = readFileSync(join(copy, 'vm-agent.crt'), 'utf8');
    const keyBefore = readFileSync(join(copy, 'vm-agent.key'), 'utf8');

    const rotated = await createPki(copy, { vmAddresses: ['192.0.2.20'], rotate: true, now: NOW });
    expect(rotated.newCa).toBe(false);
    expect(readFileSync(join(copy, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(readFileSync(join(copy, 'vm-agent.crt'), 'utf8')).not.toBe(leafBefore);
    expect(readFileSync(join(copy, 'vm-agent.key'), 'utf8')).not.toBe(keyBefore);
    expect(certificateInfo(readFileSync(join(copy, 'vm-agent.crt'))).sans).toContain('IP:192.0.2.20');
    // The reissued leaves chain to the kept CA.
    expect(() => loadTlsMaterial(copy, 'vm-agent', NOW)).not.toThrow();

    const replaced = await createPki(copy, { vmAddresses: ['192.0.2.20'], rotate: true, rotateCa: true, now: NOW });
    expect(replaced.newCa).toBe(true);
    expect(readFileSync(join(copy, 'ca.crt'), 'utf8')).not.toBe(caBefore);
    expect(() => loadTlsMaterial(copy, 'controller', NOW)).not.toThrow();
  });

  it('rejects addresses that are not IPs', async () => {
    await expect(createPki(join(root, 'bad'), { vmAddresses: ['vm.example'] })).rejects.toThrow(/"vm.example" is not an IP address/);
  });
});

describe('loadTlsMaterial', () => {
  let root: string;
  let dir: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'wgctl-tls-'));
    dir = join(root, 'pki');
    await createPki(dir, { vmAddresses: ['192.0.2.10'], now: NOW });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('loads ca, cert and key for a role', () => {
    const material = loadTlsMaterial(dir, 'controller', NOW);
    expect(material.ca.toString()).toContain('BEGIN CERTIFICATE');
    expect(material.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(material.key.toString()).toContain('BEGIN PRIVATE KEY');
  });

  it('refuses a key readable by group or world, naming the file', () => {
    const key = join(dir, 'monitor.key');
    chmodSync(key, 0o644);
    try {
      expect(() => loadTlsMaterial(dir, 'monitor', NOW)).toThrow(`private key ${key} is accessible by group or others (mode 0644)`);
      expect(() => checkKeyFilePermissions(key)).toThrow(/chmod 600/);
      chmodSync(key, 0o640);
      expect(() => checkKeyFilePermissions(key)).toThrow(/mode 0640/);
    } finally {
      chmodSync(key, 0o600);
    }
    expect(() => checkKeyFilePermissions(key)).not.toThrow();
  });

  it('refuses a CA certificate, certificate or directory others can write or own (StrictModes)', () => {
    const ca = join(dir, 'ca.crt');
    chmodSync(ca, 0o664);
    try {
      expect(() => loadTlsMaterial(dir, 'controller', NOW)).toThrow(`CA certificate ${ca} is writable by group (mode 0664); run: chmod go-w ${ca}`);
    } finally {
      chmodSync(ca, 0o644);
    }
    chmodSync(dir, 0o702);
    try {
      expect(() => loadTlsMaterial(dir, 'controller', NOW)).toThrow(`TLS directory ${dir} is writable by others (mode 0702); run: chmod go-w ${dir}`);
    } finally {
      chmodSync(dir, 0o700);
    }
    chownSync(join(dir, 'controller.crt'), 4242, 0);
    try {
      expect(() => loadTlsMaterial(dir, 'controller', NOW)).toThrow(`run: chown root ${join(dir, 'controller.crt')}`);
    } finally {
      chownSync(join(dir, 'controller.crt'), 0, 0);
    }
    expect(() => loadTlsMaterial(dir, 'controller', NOW)).not.toThrow();
  });

  it('names a missing file', () => {
    expect(() => loadTlsMaterial(join(root, 'nowhere'), 'controller', NOW)).toThrow(/nowhere\/controller\.key: no such file/);
  });

  it('refuses a certificate issued for another role', () => {
    const swapped = join(root, 'swapped');
    mkdirSync(swapped, { mode: 0o700 });
    copyFileSync(join(dir, 'ca.crt'), join(swapped, 'ca.crt'));
    copyFileSync(join(dir, 'mac-agent.crt'), join(swapped, 'vm-agent.crt'));
    copyFileSync(join(dir, 'mac-agent.key'), join(swapped, 'vm-agent.key'));
    chmodSync(join(swapped, 'vm-agent.key'), 0o600);
    expect(() => loadTlsMaterial(swapped, 'vm-agent', NOW)).toThrow(/is for "mac-agent", expected "vm-agent"/);
  });

  it('refuses a key that does not belong to the certificate, and expired certificates', () => {
    const mixed = join(root, 'mixed');
    mkdirSync(mixed, { mode: 0o700 });
    copyFileSync(join(dir, 'ca.crt'), join(mixed, 'ca.crt'));
    copyFileSync(join(dir, 'controller.crt'), join(mixed, 'controller.crt'));
    writeFileSync(join(mixed, 'controller.key'), readFileSync(join(dir, 'monitor.key')), { mode: 0o600 });
    expect(() => loadTlsMaterial(mixed, 'controller', NOW)).toThrow(/does not belong to certificate/);
    const later = new Date(NOW.getTime() + 900 * 24 * 3600 * 1000);
    expect(() => loadTlsMaterial(dir, 'controller', later)).toThrow(/expired/);
  });
});
