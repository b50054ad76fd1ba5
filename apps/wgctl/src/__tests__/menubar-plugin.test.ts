/**
 * #16: the shipped xbar/SwiftBar plugin (tools/menubar/wgctl.30s.sh) and the bundled wgctl it
 * runs, as processes: the plugin execs the configured node + wgctl.js with the right argv,
 * the menu it prints names that same wgctl by absolute path (directories with spaces, as
 * "/Library/Application Support" has), and running an action's argv the way xbar does
 * (exec, no shell, no terminal) really brings the fake agents up and down.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { BUNDLE_ENV, buildWgctlBundle, REPO_ROOT } from '../testing/bundle';
import { writeLabConfig } from '../testing/cli-harness';
import { type Lab, startLab } from '../testing/fake-agents';
import { type Menu, actionArgv, itemNamed, parseMenu } from '../testing/xbar-menu';

const root = REPO_ROOT;
const PLUGIN = join(root, 'tools/menubar/wgctl.30s.sh');
// Only what the plugin needs: xbar runs plugins with a bare environment too.
const runner = new ExecRunner({ PATH: process.env.PATH ?? '/usr/bin:/bin' });
const bundleEnv = BUNDLE_ENV;

let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl menubar-'));
  mkdirSync(join(dir, 'Application Support'));
  bundle = join(dir, 'Application Support', 'wgctl.js');
  await buildWgctlBundle(bundle);
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runPlugin(vars: Record<string, string>) {
  return runner.run([PLUGIN], { env: { ...bundleEnv, ...vars }, allowFailure: true, timeoutMs: 30_000, cwd: dir, readOnly: true });
}

describe('the shipped plugin, tools/menubar/wgctl.30s.sh', () => {
  let fakeNode: string;
  let argvFile: string;
  let script: string;

  beforeAll(() => {
    mkdirSync(join(dir, 'fake bin'), { recursive: true });
    fakeNode = join(dir, 'fake bin', 'node');
    argvFile = join(dir, 'argv');
    // Records its argv (one per line) and prints a menu, as wgctl menubar would.
    writeFileSync(fakeNode, `#!/bin/sh\nprintf '%s\\n' "$@" > "$ARGV_FILE"\necho 'wgctl ✓ | color=#34c759'\n`);
    chmodSync(fakeNode, 0o755);
    script = join(dir, 'Application Support', 'fake-wgctl.js');
    writeFileSync(script, '// never run: the fake node only records its argv\n');
  });

  const recordedArgv = () => readFileSync(argvFile, 'utf8').split('\n').slice(0, -1);

  it('is executable, and xbar/SwiftBar metadata declare the variables with the defaults the script uses', () => {
    expect(statSync(PLUGIN).mode & 0o111).toBe(0o111);
    const text = readFileSync(PLUGIN, 'utf8');
    for (const tag of ['xbar.title', 'xbar.version', 'xbar.author', 'xbar.desc', 'xbar.dependencies', 'swiftbar.hideRunInTerminal']) {
      expect(text).toMatch(new RegExp(`^# <${tag.replace('.', '\\.')}>[^<]+</${tag.replace('.', '\\.')}>$`, 'm'));
    }
    const declared = [...text.matchAll(/<xbar\.var>string\((VAR_\w+)="([^"]*)"\): [^<]+<\/xbar\.var>/g)].map((m) => [m[1], m[2]]);
    const used = [...text.matchAll(/^\w+="\$\{(VAR_\w+):-([^}]*)\}"$/gm)].map((m) => [m[1], m[2]]);
    expect(declared.map(([name]) => name)).toEqual(['VAR_WGCTL_NODE', 'VAR_WGCTL_SCRIPT', 'VAR_WGCTL_CONFIG']);
    expect(used).toEqual(declared);
  });

  it('execs the configured node with wgctl.js, the config and `menubar`, paths with spaces intact', async () => {
    const config = join(dir, 'my config', 'config.json');
    const r = await runPlugin({ VAR_WGCTL_NODE: fakeNode, VAR_WGCTL_SCRIPT: script, VAR_WGCTL_CONFIG: config, ARGV_FILE: argvFile });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('wgctl ✓ | color=#34c759\n');
    expect(recordedArgv()).toEqual([script, '--config', config, '--timeout', '5', 'menubar']);
  });

  it('without a config variable, leaves the config to wgctl (its default or $WGCTL_CONFIG)', async () => {
    const r = await runPlugin({ VAR_WGCTL_NODE: fakeNode, VAR_WGCTL_SCRIPT: script, ARGV_FILE: argvFile });
    expect(r.exitCode).toBe(0);
    expect(recordedArgv()).toEqual([script, '--timeout', '5', 'menubar']);
  });

  it.each([
    ['no node at the default path', {}, 'VAR_WGCTL_NODE is not an executable node binary'],
    ['a directory for node', { VAR_WGCTL_NODE: '/usr/bin' }, 'VAR_WGCTL_NODE is not an executable node binary'],
    ['no wgctl.js', { VAR_WGCTL_NODE: process.execPath, VAR_WGCTL_SCRIPT: '/nonexistent/wgctl.js' }, 'VAR_WGCTL_SCRIPT is not a file (wgctl.js)'],
  ])('%s: a grey "wgctl ?" menu saying what to set, exit 0', async (_name, vars, why) => {
    const r = await runPlugin(vars as Record<string, string>);
    expect(r.exitCode).toBe(0);
    const menu = parseMenu(r.stdout);
    expect(menu.title.map((l) => l.raw)).toEqual(['wgctl ? | color=#8e8e93']);
    expect(menu.items[0]!.text).toBe(why);
  });
});

describe('the plugin running the bundled wgctl against agents', () => {
  let lab: Lab;
  let config: string;

  beforeAll(async () => {
    lab = await startLab();
    mkdirSync(join(dir, 'my config'), { recursive: true });
    config = join(dir, 'my config', 'config.json');
    copyFileSync(writeLabConfig(lab), config);
  });

  afterAll(async () => {
    await lab.cleanup();
  });

  async function pluginMenu(): Promise<Menu> {
    const r = await runPlugin({ VAR_WGCTL_NODE: process.execPath, VAR_WGCTL_SCRIPT: bundle, VAR_WGCTL_CONFIG: config });
    expect(r.exitCode).toBe(0);
    return parseMenu(r.stdout);
  }

  /** A click as xbar makes it with terminal=false: exec bash with param1…N, no shell. */
  async function click(menu: Menu, text: string) {
    const line = itemNamed(menu, text);
    expect(line).toBeDefined();
    return runner.run(actionArgv(line!), { env: bundleEnv, allowFailure: true, timeoutMs: 60_000, cwd: dir });
  }

  it('shows the status, and its actions name this node, this wgctl.js and this config (quoted: they hold spaces)', async () => {
    const menu = await pluginMenu();
    expect(menu.title.map((l) => l.raw)).toEqual(['wgctl ✓ | color=#34c759']);
    const up = itemNamed(menu, 'Up')!;
    expect(actionArgv(up)).toEqual([process.execPath, bundle, '--config', config, 'up']);
    expect(up.raw).toContain(` param1="${bundle}" param2=--config param3="${config}" param4=up terminal=false refresh=true`);
  });

  it('clicking Up then Down runs them for real on both agents', async () => {
    const menu = await pluginMenu();
    lab.agents.calls.length = 0;
    const up = await click(menu, 'Up');
    expect(up.exitCode).toBe(0);
    // The Mac made fail-closed while the VM comes up (the two in parallel), then the Mac's Up.
    const ups = lab.agents.sequence();
    expect([...ups.slice(0, 2)].sort()).toEqual(['mac.Up', 'vm.Up']);
    expect(ups.slice(2)).toEqual(['mac.Up']);
    const down = await click(menu, 'Down');
    expect(down.exitCode).toBe(0);
    expect(lab.agents.sequence().slice(3)).toEqual(['mac.Down', 'vm.Down']);
  });
});
