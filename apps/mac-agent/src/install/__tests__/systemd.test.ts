import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedRunner } from '@wgctl/runner';
import { SYSTEMD_UNIT_NAME, installSystemd, renderSystemdUnit, uninstallSystemd } from '../systemd';

describe('systemd unit', () => {
  it('runs the bundle with the agent arguments, restarts always, starts before the network', () => {
    const unit = renderSystemdUnit({ nodePath: '/usr/bin/node', scriptPath: '/opt/wg ctl/mac-agent.js', agentArgs: ['--driver', 'linux', '--listen', 'unix:/run/wgctl/mac-agent.sock'] });
    expect(unit).toContain('ExecStart=/usr/bin/node "/opt/wg ctl/mac-agent.js" --driver linux --listen unix:/run/wgctl/mac-agent.sock\n');
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^Environment=MALLOC_ARENA_MAX=2$/m); // idle RSS (docs/BENCHMARKS.md #7)
    expect(unit).toMatch(/^Before=network.target$/m);
    expect(unit).toMatch(/^WantedBy=multi-user.target$/m);
    expect(unit).not.toMatch(/ProtectSystem=(strict|full)/); // it must be able to replace /etc/resolv.conf
  });

  it('installs and uninstalls (idempotently) with systemctl through the runner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wtm-unit-'));
    try {
      const run = new ScriptedRunner([
        { argv: ['systemctl', 'daemon-reload'] },
        { argv: ['systemctl', 'enable', '--now', SYSTEMD_UNIT_NAME] },
        { argv: ['systemctl', 'disable', '--now', SYSTEMD_UNIT_NAME] },
        { argv: ['systemctl', 'daemon-reload'] },
        { argv: ['systemctl', 'disable', '--now', SYSTEMD_UNIT_NAME], exitCode: 1, stderr: 'Failed to disable unit: Unit file wgctl-mac-agent.service does not exist.' },
        { argv: ['systemctl', 'daemon-reload'] },
      ]);
      const script = join(dir, 'mac-agent.js');
      writeFileSync(script, '// agent\n', { mode: 0o644 });
      const path = await installSystemd(run, { nodePath: '/usr/bin/node', scriptPath: script, agentArgs: [], unitDir: dir });
      expect(readFileSync(path, 'utf8')).toContain(`ExecStart=/usr/bin/node ${script}\n`);
      await uninstallSystemd(run, { unitDir: dir });
      expect(existsSync(path)).toBe(false);
      await uninstallSystemd(run, { unitDir: dir });
      run.assertDone();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** ExecStart runs as root: node and script must be root's all the way up (we are root: chown simulates a user's directory). */
describe('systemd install refuses a node or agent script a non-root user could replace', () => {
  let dir: string;
  let userDir: string;
  beforeEach(() => {
    dir = mkdtempSync('/tmp/wtm-trust-');
    userDir = join(dir, 'home-ann');
    mkdirSync(userDir, { mode: 0o755 });
    chownSync(userDir, 1000, 1000);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const unitDir = () => join(dir, 'units');

  it('refuses a script in a user-owned directory: nothing written, systemctl not run', async () => {
    const script = join(userDir, 'mac-agent.js');
    writeFileSync(script, '// agent\n');
    const run = new ScriptedRunner([]);
    await expect(installSystemd(run, { nodePath: '/usr/bin/node', scriptPath: script, agentArgs: [], unitDir: unitDir() })).rejects.toThrow(
      `agent script ${script}: ${userDir} is owned by uid 1000, not root: copy the agent to a root-owned directory first (sudo install -d -m 0755 /usr/local/lib/wgctl`,
    );
    expect(run.calls).toEqual([]);
    expect(existsSync(unitDir())).toBe(false);
  });

  it('refuses a node in a user-owned directory (nvm under a home folder, say)', async () => {
    const node = join(userDir, 'node');
    writeFileSync(node, '', { mode: 0o755 });
    const script = join(dir, 'mac-agent.js');
    writeFileSync(script, '// agent\n');
    await expect(installSystemd(new ScriptedRunner([]), { nodePath: node, scriptPath: script, agentArgs: [], unitDir: unitDir() })).rejects.toThrow(
      `node ${node}: ${userDir} is owned by uid 1000, not root: run install with a node only root can change`,
    );
  });

  it('--allow-untrusted-program installs anyway and warns', async () => {
    const script = join(userDir, 'mac-agent.js');
    writeFileSync(script, '// agent\n');
    const warnings: string[] = [];
    const path = await installSystemd(new ScriptedRunner([]), { nodePath: '/usr/bin/node', scriptPath: script, agentArgs: [], unitDir: unitDir(), start: false, allowUntrustedProgram: true, warn: (l) => void warnings.push(l) });
    expect(readFileSync(path, 'utf8')).toContain(`ExecStart=/usr/bin/node ${script}\n`);
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`^WARNING: installed with --allow-untrusted-program; .*: agent script ${script}: ${userDir} is owned by uid 1000`))]);
  });
});
