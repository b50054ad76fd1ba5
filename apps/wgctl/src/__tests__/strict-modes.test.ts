/**
 * StrictModes for the controller, as a real user (the built bundle run with uid 4242): what
 * `wgctl init` writes passes, and a config or CA that someone else could change is refused
 * with the path and the fix. The controller's files may be owned by the user or by root.
 * `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BUNDLE = resolve(__dirname, '../../../../dist/apps/wgctl/wgctl.js');
const USER_UID = 4242;
const OTHER_UID = 4243;

function wgctlAsUser(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BUNDLE, ...args],
      { uid: USER_UID, gid: USER_UID, env: { PATH: process.env.PATH, HOME: home }, timeout: 20_000 },
      (error, stdout, stderr) => done({ code: error ? Number((error as { code?: number }).code) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

describe('wgctl as a user: StrictModes on its config and TLS material', () => {
  let home: string;
  let out: string;
  let health: string[];
  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'wth-cstrict-'));
    chownSync(home, USER_UID, USER_UID);
    out = join(home, 'wgctl');
    // The mac-agent on a socket that does not exist: health fails to connect, after loading everything.
    const init = await wgctlAsUser(['init', '--dir', out, '--vm-address', '127.0.0.1', '--mac-agent', `unix:${join(home, 'none.sock')}`], home);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    health = ['--config', join(out, 'config.json'), '--json', 'health', '--agent', 'mac', '--timeout', '2'];
    // health exits as grpc_health_probe: a config or TLS file it cannot load is "invalid arguments", 1.
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('accepts what init wrote (owned by the user): loads config and TLS, then only the agent is unreachable', async () => {
    const r = await wgctlAsUser(health, home);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ command: 'health', agents: [{ agent: 'mac', status: 'UNREACHABLE' }] });
  });

  it('accepts root-owned TLS files too', async () => {
    const ca = join(out, 'tls', 'ca.crt');
    chownSync(ca, 0, 0);
    try {
      const r = await wgctlAsUser(health, home);
      expect(r.stderr).toBe('');
    } finally {
      chownSync(ca, USER_UID, USER_UID);
    }
  });

  it('refuses a CA certificate owned by another user: chown to the user', async () => {
    const ca = join(out, 'tls', 'ca.crt');
    chownSync(ca, OTHER_UID, OTHER_UID);
    try {
      const r = await wgctlAsUser(health, home);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`CA certificate ${ca} is owned by uid ${OTHER_UID}, not ${USER_UID} or root; run: chown ${USER_UID} ${ca}`);
    } finally {
      chownSync(ca, USER_UID, USER_UID);
    }
  });

  it('refuses a config in a group-writable directory', async () => {
    chmodSync(out, 0o770);
    try {
      const r = await wgctlAsUser(health, home);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${join(out, 'config.json')}: ${out} is writable by group (mode 0770); run: chmod go-w ${out}`);
    } finally {
      chmodSync(out, 0o700);
    }
  });
});
