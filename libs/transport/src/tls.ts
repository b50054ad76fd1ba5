/**
 * Loading TLS material from a PKI directory (ca.crt, <role>.crt, <role>.key) with the checks
 * that make a misconfiguration obvious: private keys must not be readable by group/world, and
 * the certificate must be the one for the role.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkTrustedPath } from '@wgctl/config';
import ipaddr from 'ipaddr.js';
import type { Role } from './roles';

export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Both ends refuse anything older (set explicitly: node's default can be lowered by a flag). */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const certFile = (role: Role | 'ca'): string => `${role}.crt`;
export const keyFile = (role: Role | 'ca'): string => `${role}.key`;

/** Throws (naming the file) when a private key file is missing or readable by group/others. */
export function checkKeyFilePermissions(path: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    throw new Error(`private key ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (mode & 0o077) {
    throw new Error(
      `private key ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`,
    );
  }
}

export interface CertificateInfo {
  subjectCN: string;
  issuerCN: string;
  notBefore: Date;
  notAfter: Date;
  /** 'DNS:vm-agent', 'IP:192.0.2.10', 'IP:2001:db8::1' */
  sans: string[];
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
  isCa: boolean;
}

function commonName(distinguishedName: string): string {
  for (const line of distinguishedName.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3);
  }
  return '';
}

function normalizeSan(entry: string): string {
  const [kind, ...rest] = entry.split(':');
  const value = rest.join(':');
  if (kind === 'IP Address') {
    try {
      return `IP:${ipaddr.parse(value).toString()}`;
    } catch {
      return `IP:${value}`;
    }
  }
  return `${kind}:${value}`;
}

/** Facts about a PEM certificate (first certificate of the PEM). */
export function certificateInfo(pem: string | Buffer): CertificateInfo {
  const cert = new X509Certificate(pem);
  const sans = cert.subjectAltName ? cert.subjectAltName.split(', ').map(normalizeSan) : [];
  return {
    subjectCN: commonName(cert.subject),
    issuerCN: commonName(cert.issuer),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    sans,
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    isCa: cert.ca,
  };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${path}: ${code === 'ENOENT' ? 'no such file (run `wgctl init` to create the PKI)' : (err as Error).message}`);
  }
}

/**
 * StrictModes: whoever can write the CA, a certificate or a key (or a directory above them)
 * chooses who may drive the agents; the directory and each file must be owned by root or the
 * user running us and not be group/world-writable (see @wgctl/config checkTrustedPath).
 */
function checkTrustedTlsFiles(dir: string, files: Array<[what: string, path: string]>): void {
  checkTrustedPath(dir, { what: 'TLS directory', kind: 'directory' });
  for (const [what, path] of files) checkTrustedPath(path, { what });
}

/**
 * Reads ca.crt, <role>.crt and <role>.key from `dir`. Refuses a key readable by group/world, any
 * of them (or a directory above) writable by others or owned by another user, a
 * certificate whose CN is not the role, an expired certificate, or a certificate not signed by
 * the CA.
 */
export function loadTlsMaterial(dir: string, role: Role, now: Date = new Date()): TlsMaterial {
  const keyPath = join(dir, keyFile(role));
  checkKeyFilePermissions(keyPath);
  const ca = readPem(join(dir, CA_CERT_FILE), 'CA certificate');
  const certPath = join(dir, certFile(role));
  const cert = readPem(certPath, 'certificate');
  const key = readPem(keyPath, 'private key');
  checkTrustedTlsFiles(dir, [
    ['CA certificate', join(dir, CA_CERT_FILE)],
    ['certificate', certPath],
    ['private key', keyPath],
  ]);
  let info: CertificateInfo;
  let caCert: X509Certificate;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
    info = certificateInfo(cert);
  } catch (err) {
    throw new Error(`certificate ${certPath} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    caCert = new X509Certificate(ca);
  } catch (err) {
    throw new Error(`CA certificate ${join(dir, CA_CERT_FILE)} is not a PEM certificate: ${(err as Error).message}`);
  }
  if (info.subjectCN !== role) {
    throw new Error(`certificate ${certPath} is for "${info.subjectCN}", expected "${role}"`);
  }
  if (info.notAfter.getTime() < now.getTime()) {
    throw new Error(`certificate ${certPath} expired on ${info.notAfter.toISOString()}; reissue it (wgctl init --rotate)`);
  }
  let keyMatches = false;
  try {
    keyMatches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new Error(`private key ${keyPath} cannot be read: ${(err as Error).message}`);
  }
  if (!keyMatches) throw new Error(`private key ${keyPath} does not belong to certificate ${certPath}`);
  if (!leaf.verify(caCert.publicKey)) {
    throw new Error(`certificate ${certPath} is not signed by ${join(dir, CA_CERT_FILE)}`);
  }
  return { ca, cert, key };
}

// ---------------------------------------------------------------------------------------------
// Certificate expiry, reported long before it stops the agents

/** A certificate or the CA expiring within this many days turns the `certificate` check red. */
export const CERTIFICATE_WARN_DAYS = 30;

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateExpiry {
  /** 'vm-agent', 'controller', … for the leaf; 'CA' for the CA. */
  what: string;
  notAfter: Date;
  /** Whole days left (negative once expired). */
  daysLeft: number;
  expiresSoon: boolean;
}

/** When the leaf certificate and the CA of `material` expire, judged against `now`. */
export function certificateExpiries(material: Pick<TlsMaterial, 'ca' | 'cert'>, now: Date, warnDays = CERTIFICATE_WARN_DAYS): CertificateExpiry[] {
  const leaf = certificateInfo(material.cert);
  const ca = certificateInfo(material.ca);
  return [
    { what: leaf.subjectCN || 'certificate', notAfter: leaf.notAfter },
    { what: 'CA', notAfter: ca.notAfter },
  ].map(({ what, notAfter }) => {
    const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
    return { what, notAfter, daysLeft, expiresSoon: daysLeft < warnDays };
  });
}

/** A status check (the shape of wgctl.v1 Check) named `certificate`: red within `warnDays` of an expiry. */
export function certificateCheck(
  material: Pick<TlsMaterial, 'ca' | 'cert'>,
  now: Date,
  warnDays = CERTIFICATE_WARN_DAYS,
): { name: string; ok: boolean; detail: string; evidence: string[] } {
  const expiries = certificateExpiries(material, now, warnDays);
  const describe = (e: CertificateExpiry) =>
    e.daysLeft < 0
      ? `${e.what} certificate EXPIRED on ${e.notAfter.toISOString()}`
      : `${e.what} certificate expires in ${e.daysLeft} days (${e.notAfter.toISOString()})`;
  const soon = expiries.filter((e) => e.expiresSoon);
  const detail = soon.length
    ? `${soon.map(describe).join('; ')}: renew with \`wgctl init --rotate${soon.some((e) => e.what === 'CA') ? ' --rotate-ca' : ''}\` and copy the new files to the agents`
    : `valid: ${expiries.map((e) => `${e.what} until ${e.notAfter.toISOString().slice(0, 10)} (${e.daysLeft} days)`).join(', ')}`;
  return { name: 'certificate', ok: soon.length === 0, detail, evidence: expiries.map((e) => `${e.what} notAfter=${e.notAfter.toISOString()}`) };
}
