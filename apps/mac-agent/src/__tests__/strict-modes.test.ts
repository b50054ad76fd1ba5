/**
 * StrictModes at start (the built bundle, a real process): the mac-agent runs as root, sets the
 * kill switch, routes and DNS for whoever its CA trusts, and Down restores DNS from its journal —
 * so a CA, TLS directory or state directory another user can change stops it: exit 1, one line
 * naming the path and the fix. `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createPki } from '@wgctl/transport';
import { JOURNAL_FILE } from '../service/journal';

const BUNDLE = resolve(__dirname, '../../../../dist/apps/mac-agent/mac-agent.js');
const OTHER_UID = 4242;

/** Runs the agent; one that starts (no check) is killed after the timeout and fails the test. */
function runAgent(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BUNDLE, ...args], { timeout: 8_000, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
      done({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr: String(stderr) });
    });
  });
}

describe('mac-agent refuses to start with untrusted TLS material or state (StrictModes)', () => {
  let dir: string;
  let tls: string;
  let state: string;
  let args: string[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-mstrict-'));
    tls = join(dir, 'tls');
    state = join(dir, 'lib', 'state');
    await createPki(tls, { vmAddresses: ['127.0.0.1'] });
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 192.0.2.53\n');
    args = ['--driver', 'linux', '--listen', `unix:${join(dir, 'run', 'mac-agent.sock')}`, '--tls-dir', tls, '--state-dir', state, '--dns-resolv-conf', resolvConf, '--log-level', 'error'];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a world-writable ca.crt: exit 1 naming the file and chmod go-w', async () => {
    const ca = join(tls, 'ca.crt');
    chmodSync(ca, 0o646);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr.trim()).toBe(`mac-agent: CA certificate ${ca} is writable by others (mode 0646); run: chmod go-w ${ca}`);
    } finally {
      chmodSync(ca, 0o644);
    }
  });

  it('a TLS directory owned by another user (the Mac user\'s own folder): chown root', async () => {
    chownSync(tls, OTHER_UID, 0);
    try {
      const { code, stderr } = await runAgent(args);
      expect(code).toBe(1);
      expect(stderr).toContain(`TLS directory ${tls} is owned by uid ${OTHER_UID}, not root; run: chown root ${tls}`);
    } finally {
      chownSync(tls, 0, 0);
    }
  });

  it('a group-writable directory above the state directory, then a writable journal', async () => {
    mkdirSync(state, { recursive: true, mode: 0o700 });
    const parent = join(dir, 'lib');
    chmodSync(parent, 0o770);
    const first = await runAgent(args);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(`state directory ${state}: ${parent} is writable by group (mode 0770); run: chmod go-w ${parent}`);
    chmodSync(parent, 0o755);
    const journal = join(state, JOURNAL_FILE);
    writeFileSync(journal, '{}');
    chmodSync(journal, 0o622);
    const second = await runAgent(args);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`${journal} is writable by group and others (mode 0622); run: chmod go-w ${journal}`);
    rmSync(journal);
  });
});
