/**
 * `wgctl metrics --textfile DIR` against the fake agents: the file node_exporter's textfile
 * collector reads, replaced whole (a new inode renamed over the old one), promtool-clean; an
 * unreachable agent; a missing or unusable DIR.
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promtoolCheckMetrics } from '@wgctl/metrics/testing';
import { type Lab, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';

let lab: Lab;
let config: string;
let dir: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
  dir = join(lab.dir, 'textfile');
  mkdirSync(dir);
});
afterEach(() => lab.cleanup());

const samplesOf = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#'));

describe('wgctl metrics --textfile', () => {
  it('writes DIR/wgctl.prom, mode 0644, both agents reachable, what promtool accepts, nothing else left in DIR', async () => {
    const r = await cli(['--config', config, 'metrics', '--textfile', dir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const path = join(dir, 'wgctl.prom');
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['wgctl.prom']);
    const text = readFileSync(path, 'utf8');
    expect(samplesOf(text)).toEqual(
      expect.arrayContaining([
        'wgctl_agent_reachable{agent="vm-agent"} 1',
        'wgctl_agent_reachable{agent="mac-agent"} 1',
        'wireguard_latest_handshake_seconds{interface="wg0",public_key="PEERKEYPEERKEYPEERKEYPEERKEYPEERKEYPEERKEY=",allowed_ips="0.0.0.0/0"} ' +
          (lab.agents.vm.status as { peers: { latestHandshakeUnix: string }[] }).peers[0].latestHandshakeUnix,
        'wireguard_received_bytes_total{interface="wg0",public_key="PEERKEYPEERKEYPEERKEYPEERKEYPEERKEYPEERKEY=",allowed_ips="0.0.0.0/0"} 1048576',
        'wgctl_killswitch_loaded 1',
        'wgctl_routes_present 3',
      ]),
    );
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
    expect(lab.agents.calls.filter((c) => c.rpc === 'Status').map((c) => c.side).sort()).toEqual(['mac', 'vm']);
  });

  it('replaces an existing wgctl.prom whole: a new file renamed over it, the old one never rewritten in place', async () => {
    const path = join(dir, 'wgctl.prom');
    const old = '# HELP old_metric Old.\n# TYPE old_metric gauge\nold_metric 1\n';
    writeFileSync(path, old, { mode: 0o600 });
    // A second name for the old file: a write in place (truncate, write) would show through it.
    linkSync(path, join(lab.dir, 'old-link'));
    const oldInode = statSync(path).ino;
    expect((await cli(['--config', config, 'metrics', '--textfile', dir])).code).toBe(0);
    expect(readFileSync(join(lab.dir, 'old-link'), 'utf8')).toBe(old);
    expect(statSync(path).ino).not.toBe(oldInode);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readFileSync(path, 'utf8')).toContain('wgctl_agent_reachable{agent="vm-agent"} 1\n');
    expect(readdirSync(dir)).toEqual(['wgctl.prom']);
  });

  it('an unreachable agent: wgctl_agent_reachable 0 and no other series of it; exit 0, the reason on stderr', async () => {
    await lab.agents.stop('mac');
    const r = await cli(['--config', config, '--timeout', '3', 'metrics', '--textfile', dir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^wgctl metrics: mac-agent unreachable: /);
    const text = readFileSync(join(dir, 'wgctl.prom'), 'utf8');
    const lines = samplesOf(text);
    expect(lines).toEqual(expect.arrayContaining(['wgctl_agent_reachable{agent="mac-agent"} 0', 'wgctl_agent_reachable{agent="vm-agent"} 1']));
    expect(lines.filter((l) => l.includes('mac-agent') && !l.startsWith('wgctl_agent_reachable'))).toEqual([]);
    expect(lines.filter((l) => /^wgctl_(killswitch|mac_up|route|dns|uplink|roams|last_roam|portal|allow_lan)/.test(l))).toEqual([]);
    expect(lines.some((l) => l.startsWith('wireguard_sent_bytes_total'))).toBe(true);
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
  });

  it('a missing DIR or a file: exit 2 naming it, no agent asked; a file that cannot be replaced: exit 1, no temp file left', async () => {
    const missing = join(lab.dir, 'nope');
    const r = await cli(['--config', config, 'metrics', '--textfile', missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--textfile ${missing}: no such directory`);
    writeFileSync(join(lab.dir, 'plain'), '');
    const file = await cli(['--config', config, 'metrics', '--textfile', join(lab.dir, 'plain')]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('not a directory');
    expect(lab.agents.calls).toEqual([]);

    mkdirSync(join(dir, 'wgctl.prom')); // rename(2) cannot put a file over a directory
    const blocked = await cli(['--config', config, 'metrics', '--textfile', dir]);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toContain(`cannot write ${join(dir, 'wgctl.prom')}`);
    expect(readdirSync(dir)).toEqual(['wgctl.prom']);
  });

  it('--help says what it is for, the file name, and that --textfile is needed', async () => {
    const help = await cli(['metrics', '--help']);
    expect(help.stdout).toMatch(/textfile\s+collector/);
    expect(help.stdout).toMatch(/launchd\s+or\s+cron/);
    expect(help.stdout).toContain('DIR/wgctl.prom');
    const bare = await cli(['--config', config, 'metrics']);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/--textfile/);
  });
});
