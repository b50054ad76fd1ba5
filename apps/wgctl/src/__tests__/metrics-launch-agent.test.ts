/**
 * docs/monitoring/com.wgctl.metrics-textfile.plist, the LaunchAgent the README gives for
 * `wgctl metrics --textfile`: a plist launchd reads (parsed by the `plist` package), run every
 * 60 s as the user, and its ProgramArguments — the install paths and placeholders replaced as
 * its comment says — really write DIR/wgctl.prom from both agents with the bundled wgctl.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { BUNDLE_ENV, buildWgctlBundle, REPO_ROOT } from '../testing/bundle';
import { writeLabConfig } from '../testing/cli-harness';
import { type Lab, startLab } from '../testing/fake-agents';

const PLIST = join(REPO_ROOT, 'docs/monitoring/com.wgctl.metrics-textfile.plist');
const runner = new ExecRunner();

interface LaunchAgent {
  Label: string;
  ProgramArguments: string[];
  StartInterval: number;
  RunAtLoad: boolean;
}

/** The `plist` package is ESM-only: parsed in a node child. */
async function parsePlist(text: string): Promise<LaunchAgent> {
  const script = "import { parse } from 'plist'; let s = ''; for await (const c of process.stdin) s += c; process.stdout.write(JSON.stringify(parse(s)));";
  const r = await runner.run([process.execPath, '--input-type=module', '-e', script], { input: text, cwd: REPO_ROOT, readOnly: true });
  return JSON.parse(r.stdout) as LaunchAgent;
}

describe('the LaunchAgent for wgctl metrics --textfile', () => {
  let dir: string;
  let lab: Lab;
  let agent: LaunchAgent;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-launch-agent-'));
    agent = await parsePlist(readFileSync(PLIST, 'utf8'));
    lab = await startLab();
    await buildWgctlBundle(join(dir, 'wgctl.js'));
  }, 60_000);

  afterAll(async () => {
    await lab?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs wgctl metrics --textfile every minute, as the user, with the paths of the README install', () => {
    expect(agent.Label).toBe('com.wgctl.metrics-textfile');
    expect(agent.StartInterval).toBe(60);
    expect(agent.RunAtLoad).toBe(true);
    expect(agent.ProgramArguments.slice(0, 2)).toEqual(['/Library/Application Support/wgctl/node', '/Library/Application Support/wgctl/wgctl.js']);
    expect(agent.ProgramArguments.slice(-3)).toEqual(['metrics', '--textfile', 'TEXTFILE_DIR']);
  });

  it('its ProgramArguments, paths filled in, write wgctl.prom from both agents', async () => {
    const textfileDir = join(dir, 'textfile');
    mkdirSync(textfileDir);
    const config = writeLabConfig(lab);
    const filled: Record<string, string> = {
      '/Library/Application Support/wgctl/node': process.execPath,
      '/Library/Application Support/wgctl/wgctl.js': join(dir, 'wgctl.js'),
      '/Users/USER/.config/wgctl/config.json': config,
      TEXTFILE_DIR: textfileDir,
    };
    const argv = agent.ProgramArguments.map((a) => filled[a] ?? a);
    const r = await runner.run(argv, { env: BUNDLE_ENV, allowFailure: true, timeoutMs: 30_000, cwd: dir, readOnly: true });
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const text = readFileSync(join(textfileDir, 'wgctl.prom'), 'utf8');
    expect(text).toMatch(/^wgctl_agent_reachable\{agent="vm-agent"\} 1$/m);
    expect(text).toMatch(/^wgctl_agent_reachable\{agent="mac-agent"\} 1$/m);
    expect(text).toMatch(/^wgctl_killswitch_loaded 1$/m);
  });
});
