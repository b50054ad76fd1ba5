/**
 * A small private PKI for wgctl: one CA and one certificate per role (CN = role). ECDSA P-256,
 * made with @peculiar/x509 on Node's WebCrypto (no openssl CLI).
 *
 * Files: ca.crt, ca.key, <role>.crt, <role>.key. Keys 0600, certificates 0644, directory 0700.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { isIpAddress } from '@wgctl/config';
import { ROLES, type Role } from './roles';
import { CA_CERT_FILE, CA_KEY_FILE, certFile, keyFile } from './tls';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;

let x509Module: typeof X509 | undefined;
/**
 * @peculiar/x509 takes ~100 ms to load, and only `init`/rotation need it: load it on first use
 * (agents and the controller's other commands never pay for it).
 */
function x509(): typeof X509 {
  if (!x509Module) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('reflect-metadata'); // tsyringe (used by @peculiar/x509) needs the Reflect metadata API at load time
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    x509Module = require('@peculiar/x509') as typeof X509;
    x509Module.cryptoProvider.set(crypto as unknown as Parameters<typeof X509.cryptoProvider.set>[0]);
  }
  return x509Module;
}

const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start a little in the past so a Mac and a VM with skewed clocks agree. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

const DEFAULT_LEAF_VALIDITY_DAYS = 825;
const DEFAULT_CA_VALIDITY_DAYS = 3650;

export interface CreatePkiOptions {
  /** Addresses the controller uses to reach the VM agent (IP SANs of vm-agent.crt). */
  vmAddresses: string[];
  /** IP SANs of mac-agent.crt (when it listens on TCP). */
  macAgentAddresses?: string[];
  /** Leaf certificate validity; default 825 days. The CA gets max(3650, this). */
  validityDays?: number;
  now?: Date;
  /** Keep the CA, reissue every leaf certificate and key. */
  rotate?: boolean;
  /** With rotate: make a new CA too (every peer needs the new ca.crt). */
  rotateCa?: boolean;
}

export interface PkiResult {
  dir: string;
  /** Whether a new CA was made (false when rotating leaves under the existing CA). */
  newCa: boolean;
  /** Files written, relative to dir. */
  files: string[];
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Extended key usages per role: agents serve, controller and monitor only call. */
const ROLE_USAGES: Record<Role, string[]> = {
  controller: [CLIENT_AUTH],
  monitor: [CLIENT_AUTH],
  'vm-agent': [SERVER_AUTH, CLIENT_AUTH],
  'mac-agent': [SERVER_AUTH, CLIENT_AUTH],
};

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  if (bytes[0] === 0) bytes[0] = 1; // no leading zero byte
  return bytes.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function fromPem(pem: string, label: string): ArrayBuffer {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!match?.[1]) throw new Error(`no ${label} in PEM`);
  const der = Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

/**
 * Writes every file to a temporary name first, then renames them all: a failure while writing
 * leaves the old PKI intact, and keys and certificates change together.
 */
function writeFilesAtomically(dir: string, outputs: Array<{ name: string; content: string; mode: number }>): void {
  const suffix = `.tmp-${process.pid}`;
  try {
    for (const output of outputs) {
      const tmp = join(dir, output.name + suffix);
      writeFileSync(tmp, output.content, { mode: output.mode, flag: 'w' });
      chmodSync(tmp, output.mode); // umask may have cleared bits we asked for
    }
  } catch (err) {
    for (const output of outputs) rmSync(join(dir, output.name + suffix), { force: true });
    throw err;
  }
  for (const output of outputs) renameSync(join(dir, output.name + suffix), join(dir, output.name));
}

function validateAddresses(what: string, addresses: string[]): void {
  for (const address of addresses) {
    if (!isIpAddress(address)) throw new Error(`${what}: "${address}" is not an IP address`);
  }
}

interface CaState {
  cert: X509.X509Certificate;
  keys: CryptoKeyPair;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function createCa(notBefore: Date, notAfter: Date): Promise<CaState> {
  const x = x509();
  const keys = await generateKeys();
  const cert = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=wgctl CA ${randomBytes(4).toString('hex')}, O=wgctl`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(
        x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign | x.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function loadCa(dir: string): Promise<CaState> {
  const x = x509();
  const certPem = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
  const keyPem = readFileSync(join(dir, CA_KEY_FILE), 'utf8');
  const cert = new x.X509Certificate(certPem);
  const privateKey = await crypto.subtle.importKey('pkcs8', fromPem(keyPem, 'PRIVATE KEY'), KEY_ALGORITHM, true, ['sign']);
  const publicKey = await cert.publicKey.export(KEY_ALGORITHM, ['verify'], crypto);
  return { cert, keys: { privateKey, publicKey } };
}

async function issueLeaf(
  ca: CaState,
  role: Role,
  ipAddresses: string[],
  notBefore: Date,
  notAfter: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const x = x509();
  const keys = await generateKeys();
  const names: X509.JsonGeneralName[] = [
    { type: 'dns', value: role },
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${role}, O=wgctl`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter: notAfter.getTime() > ca.cert.notAfter.getTime() ? ca.cert.notAfter : notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x.BasicConstraintsExtension(false, undefined, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
      new x.ExtendedKeyUsageExtension(ROLE_USAGES[role], false),
      new x.SubjectAlternativeNameExtension(names, false),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Creates (or with `rotate`, reissues) the PKI in `dir`. Refuses to touch an existing PKI
 * without `rotate: true`. Everything is generated in memory first, then written file by file
 * through temporary files.
 */
export async function createPki(dir: string, options: CreatePkiOptions): Promise<PkiResult> {
  const macAgentAddresses = options.macAgentAddresses ?? [];
  validateAddresses('vmAddresses', options.vmAddresses);
  validateAddresses('macAgentAddresses', macAgentAddresses);
  const validityDays = options.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error(`validityDays must be a positive integer, got ${validityDays}`);
  if (options.rotateCa && !options.rotate) throw new Error('rotateCa requires rotate: true');

  const exists = existsSync(join(dir, CA_CERT_FILE)) || existsSync(join(dir, CA_KEY_FILE));
  if (exists && !options.rotate) {
    throw new Error(`a PKI already exists in ${dir}; pass rotate to reissue the certificates (rotateCa to replace the CA too)`);
  }

  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const leafNotAfter = new Date(now.getTime() + validityDays * DAY_MS);
  const caNotAfter = new Date(now.getTime() + Math.max(DEFAULT_CA_VALIDITY_DAYS, validityDays) * DAY_MS);

  const newCa = !exists || options.rotateCa === true;
  if (!newCa && !existsSync(join(dir, CA_KEY_FILE))) {
    throw new Error(`cannot rotate: ${join(dir, CA_KEY_FILE)} is missing (use rotateCa to make a new CA)`);
  }
  const ca = newCa ? await createCa(notBefore, caNotAfter) : await loadCa(dir);

  const outputs: Array<{ name: string; content: string; mode: number }> = [];
  if (newCa) {
    outputs.push({ name: CA_CERT_FILE, content: ca.cert.toString('pem') + '\n', mode: 0o644 });
    outputs.push({ name: CA_KEY_FILE, content: await exportPrivateKeyPem(ca.keys.privateKey), mode: 0o600 });
  }
  for (const role of ROLES) {
    const ips = role === 'vm-agent' ? options.vmAddresses : role === 'mac-agent' ? macAgentAddresses : [];
    const { certPem, keyPem } = await issueLeaf(ca, role, ips, notBefore, leafNotAfter);
    outputs.push({ name: certFile(role), content: certPem, mode: 0o644 });
    outputs.push({ name: keyFile(role), content: keyPem, mode: 0o600 });
  }

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeFilesAtomically(dir, outputs);
  return { dir, newCa, files: outputs.map((o) => o.name) };
}
