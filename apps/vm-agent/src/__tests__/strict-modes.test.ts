/**
 * StrictModes at start (the built bundle, a real process): the vm-agent runs as root and changes
 * routes and firewalls for whoever its CA trusts, and Down trusts its journal — so a CA, key,
 * TLS directory or state directory another user can change stops it: exit 1, one line naming
 * the path and the command that fixes it. `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createPki } from '@wgctl/transport';

const BUNDLE = resolve(__dirname, '../../../../dist/apps/vm-agent/vm-agent.js');
const OTHER_UID = 4242;

/** Runs the agent; one that starts (no check) is killed after the timeout and fails the test. */
function runAgent(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BUNDLE, ...args], { timeout: 8_000, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
      done({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr: String(stderr) });
    });
  });
}

describe('vm-agent refuses to start with untrusted TLS material or state (StrictModes)', () => {
  let dir: string;
  let tls: string;
  let args: string[];
  let wgConfig: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-vstrict-'));
    tls = join(dir, 'etc', 'tls');
    await createPki(tls, { vmAddresses: ['127.0.0.1'] });
    mkdirSync(join(dir, 'wireguard'), { mode: 0o700 });
    wgConfig = join(dir, 'wireguard', 'wtv9.conf');
    writeFileSync(wgConfig, '[Interface]\nAddress = 192.0.2.2/32\n', { mode: 0o600 });
    args = ['--listen', '127.0.0.1:0', '--tls-dir', tls, '--wg-config', wgConfig, '--state-dir', join(dir, 'state'), '--log-level', 'error'];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a world-writable ca.crt: exit 1 naming the file and chmod go-w', async () => {
    const ca = join(tls, 'ca.crt');
    chmodSync(ca, 0o666);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr.trim()).toBe(`vm-agent: CA certificate ${ca} is writable by group and others (mode 0666); run: chmod go-w ${ca}`);
    } finally {
      chmodSync(ca, 0o644);
    }
  });

  it('a group-writable directory above the TLS directory: names that directory', async () => {
    const parent = join(dir, 'etc');
    chmodSync(parent, 0o775);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr).toContain(`TLS directory ${tls}: ${parent} is writable by group (mode 0775); run: chmod go-w ${parent}`);
    } finally {
      chmodSync(parent, 0o755);
    }
  });

  it('a certificate owned by another user: chown root', async () => {
    const cert = join(tls, 'vm-agent.crt');
    chownSync(cert, OTHER_UID, 0);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr).toContain(`certificate ${cert} is owned by uid ${OTHER_UID}, not root; run: chown root ${cert}`);
    } finally {
      chownSync(cert, 0, 0);
    }
  });

  it('a group-writable directory above the wg-quick config (its PostUp lines run as root)', async () => {
    const parent = join(dir, 'wireguard');
    chmodSync(parent, 0o770);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr).toContain(`wg-quick config ${wgConfig}: ${parent} is writable by group (mode 0770); run: chmod go-w ${parent}`);
    } finally {
      chmodSync(parent, 0o700);
    }
  });

  it('a writable state directory, or a journal another user owns', async () => {
    const state = join(dir, 'state');
    mkdirSync(state, { recursive: true });
    chmodSync(state, 0o777);
    const first = await runAgent(args);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(`state directory ${state} is writable by group and others (mode 0777); run: chmod go-w ${state}`);
    chmodSync(state, 0o700);
    const journal = join(state, 'journal.json');
    writeFileSync(journal, '{}', { mode: 0o600 });
    chownSync(journal, OTHER_UID, 0);
    const second = await runAgent(args);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`${journal} is owned by uid ${OTHER_UID}, not root; run: chown root ${journal}`);
    rmSync(journal);
  });
});
