import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
      const path = await installSystemd(run, { nodePath: '/usr/bin/node', scriptPath: '/x.js', agentArgs: [], unitDir: dir });
      expect(readFileSync(path, 'utf8')).toContain('ExecStart=/usr/bin/node /x.js\n');
      await uninstallSystemd(run, { unitDir: dir });
      expect(existsSync(path)).toBe(false);
      await uninstallSystemd(run, { unitDir: dir });
      run.assertDone();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
