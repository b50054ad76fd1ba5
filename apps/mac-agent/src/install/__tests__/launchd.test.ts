import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ExecRunner, ScriptedRunner } from '@wgctl/runner';
import { buildProgram, main } from '../../cli';
import {
  BOOTSTRAP_RETRY,
  LAUNCHD_PATH,
  daemonPathProblem,
  daemonPaths,
  installArgv,
  installLaunchd,
  launchdPlistPath,
  renderLaunchdPlist,
  stableNodePath,
  trustedDaemonProgram,
  uninstallArgv,
  uninstallLaunchd,
  type PathProbe,
} from '../launchd';
import { untrustedProgram } from '../program-trust';
import { machOExecutable } from './macho-fixture';

const ROOT = join(__dirname, '../../../../..');

/**
 * Parses a plist with the `plist` package. It is ESM-only, so it runs in a node child (through
 * the runner, as every command here) rather than being required into this CommonJS test.
 */
async function parsePlist(xml: string): Promise<Record<string, unknown>> {
  const script = "import { parse } from 'plist'; let s = ''; for await (const c of process.stdin) s += c; process.stdout.write(JSON.stringify(parse(s)));";
  const result = await new ExecRunner().run([process.execPath, '--input-type=module', '-e', script], { input: xml, cwd: ROOT, timeoutMs: 20_000 });
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

/**
 * A Mac's file system as far as the path checks see it: plain files, and symlinks to their
 * targets, all root's (ownership is tested on real files below).
 */
function fakeFileSystem(files: string[], links: Record<string, string> = {}): PathProbe {
  const realpath = (path: string): string => {
    const target = links[path] ?? path;
    if (!files.includes(target)) throw Object.assign(new Error(`ENOENT: no such file or directory, realpath '${path}'`), { code: 'ENOENT' });
    return target;
  };
  return {
    exists: (path) => {
      try {
        realpath(path);
        return true;
      } catch {
        return false;
      }
    },
    realpath,
    untrusted: () => ({ node: [], script: [] }),
  };
}

const options = {
  label: 'com.wgctl.mac-agent',
  program: '/usr/local/bin/node',
  args: ['/usr/local/lib/wgctl/mac-agent.js', '--driver', 'darwin', '--state-dir', '/Library/Application Support/wgctl/mac-agent', '--note', 'a&b <c> "d"'],
  logDir: '/Library/Logs/wgctl',
};
const SCRIPT = '/usr/local/lib/wgctl/mac-agent.js';
const AGENT_ARGS = options.args.slice(1);
const noWait = async () => undefined;

describe('renderLaunchdPlist', () => {
  it('is a plist launchd reads: label, program + args, run at load, keep alive, throttle, logs, PATH', async () => {
    const parsed = await parsePlist(renderLaunchdPlist(options));
    expect(parsed).toEqual({
      Label: 'com.wgctl.mac-agent',
      ProgramArguments: ['/usr/local/bin/node', ...options.args],
      RunAtLoad: true,
      KeepAlive: true,
      ThrottleInterval: 5,
      StandardOutPath: '/Library/Logs/wgctl/com.wgctl.mac-agent.out.log',
      StandardErrorPath: '/Library/Logs/wgctl/com.wgctl.mac-agent.err.log',
      EnvironmentVariables: { PATH: LAUNCHD_PATH },
    });
    // pfctl, route, ifconfig live in /sbin; netstat, networksetup in /usr/sbin.
    expect(LAUNCHD_PATH.split(':')).toEqual(expect.arrayContaining(['/sbin', '/usr/sbin']));
  });

  it('refuses what launchd would not run', () => {
    expect(() => renderLaunchdPlist({ ...options, program: 'node' })).toThrow(/absolute/);
    expect(() => renderLaunchdPlist({ ...options, logDir: 'logs' })).toThrow(/absolute/);
    expect(() => renderLaunchdPlist({ ...options, label: 'bad label' })).toThrow(/reverse-DNS/);
    expect(() => renderLaunchdPlist({ ...options, args: ['\u0007'] })).toThrow(/control character/);
  });
});

describe('launchd install/uninstall argv', () => {
  const plistPath = '/Library/LaunchDaemons/com.wgctl.mac-agent.plist';
  const macWithNode = fakeFileSystem(['/usr/local/bin/node', SCRIPT]);

  it('install: bootout (not loaded is fine) → plist root:wheel 0644 → enable → bootstrap, and no kickstart', async () => {
    expect(launchdPlistPath('com.wgctl.mac-agent')).toBe(plistPath);
    const plist = renderLaunchdPlist(options);
    // Bootstrap of the RunAtLoad job starts it; a `kickstart -k` after it would kill that instance.
    expect(installArgv(options).map((c) => c.argv)).toEqual([
      ['launchctl', 'bootout', 'system/com.wgctl.mac-agent'],
      ['mkdir', '-p', '/Library/Logs/wgctl'],
      ['tee', plistPath],
      ['chown', 'root:wheel', plistPath],
      ['chmod', '0644', plistPath],
      ['launchctl', 'enable', 'system/com.wgctl.mac-agent'],
      ['launchctl', 'bootstrap', 'system', plistPath],
    ]);
    const run = new ScriptedRunner([
      { argv: ['launchctl', 'bootout', 'system/com.wgctl.mac-agent'], exitCode: 3, stderr: 'Boot-out failed: 3: No such process\n' },
      { argv: ['mkdir', '-p', '/Library/Logs/wgctl'] },
      { argv: ['tee', plistPath], input: plist },
      { argv: ['chown', 'root:wheel', plistPath] },
      { argv: ['chmod', '0644', plistPath] },
      { argv: ['launchctl', 'enable', 'system/com.wgctl.mac-agent'] },
      { argv: ['launchctl', 'bootstrap', 'system', plistPath] },
    ]);
    const installed = await installLaunchd(run, { nodePath: options.program, scriptPath: SCRIPT, agentArgs: AGENT_ARGS, probe: macWithNode });
    run.assertDone();
    expect(installed).toEqual({ plistPath, nodePath: '/usr/local/bin/node', scriptPath: SCRIPT, warnings: [] });
  });

  it('install from a Homebrew Cellar node: ProgramArguments runs the stable link, which survives brew upgrade + cleanup', async () => {
    const cellarNode = '/opt/homebrew/Cellar/node/22.3.0/bin/node';
    const homebrew = fakeFileSystem([cellarNode, SCRIPT], { '/opt/homebrew/bin/node': cellarNode });
    const run = new ScriptedRunner(installArgv({ ...options, program: '/opt/homebrew/bin/node' }).map((c) => ({ argv: c.argv })));
    const installed = await installLaunchd(run, { nodePath: cellarNode, scriptPath: SCRIPT, agentArgs: AGENT_ARGS, probe: homebrew });
    run.assertDone();
    expect(installed.nodePath).toBe('/opt/homebrew/bin/node');
    const tee = run.calls.find((c) => c.argv[0] === 'tee');
    expect((await parsePlist(tee?.input ?? '')).ProgramArguments).toEqual(['/opt/homebrew/bin/node', SCRIPT, ...AGENT_ARGS]);
  });

  it('install retries a bootstrap that fails while launchd still releases the booted-out label', async () => {
    const waits: number[] = [];
    const commands = installArgv(options);
    const run = new ScriptedRunner([
      ...commands.slice(0, 6).map((c) => ({ argv: c.argv })),
      { argv: ['launchctl', 'bootstrap', 'system', plistPath], exitCode: 5, stderr: 'Bootstrap failed: 5: Input/output error\n' },
      { argv: ['launchctl', 'bootstrap', 'system', plistPath], exitCode: 37, stderr: 'Bootstrap failed: 37: Operation already in progress\n' },
      { argv: ['launchctl', 'bootstrap', 'system', plistPath] },
    ]);
    await installLaunchd(run, { nodePath: options.program, scriptPath: SCRIPT, agentArgs: AGENT_ARGS, probe: macWithNode, wait: async (ms) => void waits.push(ms) });
    run.assertDone();
    expect(waits).toEqual([BOOTSTRAP_RETRY.delayMs, BOOTSTRAP_RETRY.delayMs]);
  });

  it('install fails loudly when launchd keeps refusing to load it', async () => {
    const bootstrapFails = { argv: ['launchctl', 'bootstrap', 'system', plistPath], exitCode: 5, stderr: 'Bootstrap failed: 5: Input/output error\n' };
    const run = new ScriptedRunner([
      ...installArgv(options).slice(0, 6).map((c) => ({ argv: c.argv, exitCode: c.argv[1] === 'bootout' ? 3 : 0 })),
      ...Array.from({ length: BOOTSTRAP_RETRY.attempts }, () => bootstrapFails),
    ]);
    await expect(installLaunchd(run, { nodePath: options.program, scriptPath: SCRIPT, agentArgs: AGENT_ARGS, probe: macWithNode, wait: noWait })).rejects.toThrow(/Input\/output error/);
    run.assertDone();
  });

  it('install refuses a path before changing anything', async () => {
    const run = new ScriptedRunner([]);
    const scriptOnDesktop = '/Users/ann/Desktop/wgctl/mac-agent.js';
    await expect(
      installLaunchd(run, { nodePath: options.program, scriptPath: scriptOnDesktop, agentArgs: AGENT_ARGS, probe: fakeFileSystem(['/usr/local/bin/node', scriptOnDesktop]) }),
    ).rejects.toThrow(/agent script \/Users\/ann\/Desktop\/wgctl\/mac-agent.js is under Desktop/);
    expect(run.calls).toEqual([]);
  });

  it('install with start=false only writes the plist (loaded at next boot)', () => {
    expect(installArgv({ ...options, start: false }).map((c) => c.argv[0])).toEqual(['mkdir', 'tee', 'chown', 'chmod']);
  });

  it('uninstall: bootout (not loaded is fine) → remove the plist', async () => {
    expect(uninstallArgv().map((c) => c.argv)).toEqual([
      ['launchctl', 'bootout', 'system/com.wgctl.mac-agent'],
      ['rm', '-f', plistPath],
    ]);
    const run = new ScriptedRunner([
      { argv: ['launchctl', 'bootout', 'system/com.wgctl.mac-agent'], exitCode: 3, stderr: 'Boot-out failed: 3: No such process\n' },
      { argv: ['rm', '-f', plistPath] },
    ]);
    expect(await uninstallLaunchd(run)).toBe(plistPath);
    run.assertDone();
  });
});

describe('stableNodePath', () => {
  it('maps a Cellar node to the link Homebrew keeps across upgrades (Apple silicon and Intel prefixes)', () => {
    // After `brew upgrade node` the link points at the new version: still the same formula.
    const upgraded = fakeFileSystem(['/opt/homebrew/Cellar/node/22.4.1/bin/node'], { '/opt/homebrew/bin/node': '/opt/homebrew/Cellar/node/22.4.1/bin/node' });
    expect(stableNodePath('/opt/homebrew/Cellar/node/22.3.0/bin/node', upgraded)).toBe('/opt/homebrew/bin/node');
    const intelNode = fakeFileSystem(['/usr/local/Cellar/node/21.7.1/bin/node'], { '/usr/local/bin/node': '/usr/local/Cellar/node/21.7.1/bin/node' });
    expect(stableNodePath('/usr/local/Cellar/node/21.7.1/bin/node', intelNode)).toBe('/usr/local/bin/node');
  });

  it('maps a keg-only node@N to its opt link (it has none in bin)', () => {
    const node20 = fakeFileSystem(['/usr/local/Cellar/node@20/20.11.1/bin/node'], { '/usr/local/opt/node@20/bin/node': '/usr/local/Cellar/node@20/20.11.1/bin/node' });
    expect(stableNodePath('/usr/local/Cellar/node@20/20.11.1/bin/node', node20)).toBe('/usr/local/opt/node@20/bin/node');
  });

  it('refuses a Cellar node whose link is missing or belongs to another formula, naming the fix', () => {
    const cellarNode = '/opt/homebrew/Cellar/node/22.3.0/bin/node';
    expect(() => stableNodePath(cellarNode, fakeFileSystem([cellarNode]))).toThrow(
      'node /opt/homebrew/Cellar/node/22.3.0/bin/node is a versioned Homebrew path that `brew cleanup` deletes after an upgrade (the daemon would then never start), so the daemon runs Homebrew\'s stable link /opt/homebrew/bin/node, which is missing: run `brew link node`, or give --node PATH',
    );
    const otherFormula = fakeFileSystem([cellarNode, '/opt/homebrew/Cellar/node@20/20.11.1/bin/node'], { '/opt/homebrew/bin/node': '/opt/homebrew/Cellar/node@20/20.11.1/bin/node' });
    expect(() => stableNodePath(cellarNode, otherFormula)).toThrow(
      /resolves to \/opt\/homebrew\/Cellar\/node@20\/20.11.1\/bin\/node, not to Homebrew's node: run `brew link --overwrite node`, or give --node PATH$/,
    );
    const node20 = '/opt/homebrew/Cellar/node@20/20.11.1/bin/node';
    expect(() => stableNodePath(node20, fakeFileSystem([node20]))).toThrow(/stable link \/opt\/homebrew\/opt\/node@20\/bin\/node, which is missing: run `brew reinstall node@20`, or give --node PATH$/);
  });

  it('refuses a node elsewhere in the Cellar (another formula\'s bundled node)', () => {
    expect(() => stableNodePath('/opt/homebrew/Cellar/some-app/1.2.0/libexec/bin/node', fakeFileSystem([]))).toThrow(/in Homebrew's Cellar.*give --node/);
  });

  it('passes other paths through without looking at the disk', () => {
    const untouchable: PathProbe = {
      exists: () => {
        throw new Error('looked');
      },
      realpath: () => {
        throw new Error('looked');
      },
      untrusted: () => {
        throw new Error('looked');
      },
    };
    expect(stableNodePath('/usr/local/bin/node', untouchable)).toBe('/usr/local/bin/node');
    expect(stableNodePath('/opt/homebrew/opt/node@20/bin/node', untouchable)).toBe('/opt/homebrew/opt/node@20/bin/node');
  });
});

describe('daemonPathProblem: what launchd cannot run as root from boot', () => {
  it.each([
    ['/Users/ann/Desktop/wgctl/mac-agent.js', /under Desktop, which macOS privacy controls \(TCC\) close to a daemon/],
    ['/Users/ann/Documents/wgctl/dist/apps/mac-agent/mac-agent.js', /under Documents, which macOS privacy controls/],
    ['/Users/bob/Downloads/mac-agent.js', /under Downloads/],
    ['/Users/ann/Library/Mobile Documents/com~apple~CloudDocs/mac-agent.js', /under Library\/Mobile Documents/],
    ['/Users/ann/Library/CloudStorage/Dropbox/mac-agent.js', /under Library\/CloudStorage/],
    ['/users/ann/desktop/mac-agent.js', /under desktop/],
    ['/usr/local/../../Users/ann/Desktop/mac-agent.js', /under Desktop/],
    ['/Volumes/USB/wgctl/mac-agent.js', /under \/Volumes, which may not be mounted when launchd starts the daemon at boot/],
    ['/Users/ann/.nvm/versions/node/v22.3.0/bin/node', /nvm's versioned tree, removed by `nvm uninstall`/],
    ['/var/root/.nvm/versions/node/v22.3.0/bin/node', /nvm's versioned tree/],
    ['/Users/ann/src/wgctl/dist/apps/mac-agent/mac-agent.js', /in a home folder, writable by its user without sudo while the daemon runs it as root/],
    ['/Users/Shared/mac-agent.js', /in a home folder/],
    ['dist/apps/mac-agent/mac-agent.js', /not an absolute path/],
  ])('refuses %s', (path, reason) => {
    expect(daemonPathProblem(path)).toMatch(reason);
  });

  it.each(['/usr/local/bin/node', '/opt/homebrew/bin/node', '/usr/local/lib/wgctl/mac-agent.js', '/Library/Application Support/wgctl/mac-agent.js'])('accepts %s by its path (owners: trustedDaemonProgram)', (path) => {
    expect(daemonPathProblem(path)).toBeUndefined();
  });
});

describe('daemonPaths: node and agent script checked together', () => {
  it('names the fix: copy the agent out, or give --node PATH', () => {
    const script = '/Users/ann/Documents/wgctl/mac-agent.js';
    expect(() => daemonPaths({ nodePath: '/usr/local/bin/node', scriptPath: script }, fakeFileSystem(['/usr/local/bin/node', script]))).toThrow(
      "agent script /Users/ann/Documents/wgctl/mac-agent.js is under Documents, which macOS privacy controls (TCC) close to a daemon (\"Operation not permitted\"): copy the agent to a root-owned directory first (sudo install -d -m 0755 '/Library/Application Support/wgctl' && sudo install -m 0644 /Users/ann/Documents/wgctl/mac-agent.js '/Library/Application Support/wgctl'/) and run install from there",
    );
    const nvmNode = '/Users/ann/.nvm/versions/node/v22.3.0/bin/node';
    expect(() => daemonPaths({ nodePath: nvmNode, scriptPath: SCRIPT }, fakeFileSystem([nvmNode, SCRIPT]))).toThrow(/^node \/Users\/ann\/\.nvm\/.*`nvm uninstall`.*: Homebrew's node cannot pass .* copy the nodejs\.org build's bin\/node .*--node '\/Library\/Application Support\/wgctl'\/node\)$/);
  });

  it('checks what a symlink resolves to: launchd runs the target', () => {
    const linked = '/usr/local/lib/wgctl/mac-agent.js';
    const target = '/Users/ann/Downloads/mac-agent.js';
    expect(() => daemonPaths({ nodePath: '/usr/local/bin/node', scriptPath: linked }, fakeFileSystem(['/usr/local/bin/node', target], { [linked]: target }))).toThrow(
      /^agent script \/usr\/local\/lib\/wgctl\/mac-agent.js resolves to \/Users\/ann\/Downloads\/mac-agent.js, which is under Downloads/,
    );
  });

  it('refuses relative or missing paths', () => {
    const mac = fakeFileSystem(['/usr/local/bin/node', SCRIPT]);
    expect(() => daemonPaths({ nodePath: 'node', scriptPath: SCRIPT }, mac)).toThrow('node node is not an absolute path: give --node PATH');
    expect(() => daemonPaths({ nodePath: '/usr/local/bin/node', scriptPath: 'mac-agent.js' }, mac)).toThrow('agent script mac-agent.js is not an absolute path');
    expect(() => daemonPaths({ nodePath: '/usr/bin/node', scriptPath: SCRIPT }, mac)).toThrow('node /usr/bin/node does not exist: give --node PATH');
    expect(daemonPaths({ nodePath: '/usr/local/bin/node', scriptPath: SCRIPT }, mac)).toEqual({ nodePath: '/usr/local/bin/node', scriptPath: SCRIPT });
  });
});

describe('mac-agent install --node', () => {
  // main() sets process.exitCode, which would otherwise become jest's.
  afterEach(() => {
    process.exitCode = undefined;
  });

  async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
    let stderr = '';
    const code = await main(['node', 'mac-agent', ...args], { stdout: () => undefined, stderr: (text: string) => void (stderr += text) });
    return { code, stderr };
  }

  it('is documented in install --help', () => {
    const install = buildProgram().commands.find((c) => c.name() === 'install');
    expect(install?.helpInformation()).toContain('--node <path>');
  });

  it('must be absolute, and is for launchd only (exit 2, before anything is installed)', async () => {
    expect(await cli(['install', '--driver', 'darwin', '--node', 'node'])).toMatchObject({ code: 2, stderr: expect.stringContaining('expected an absolute path') });
    expect(await cli(['install', '--driver', 'linux', '--node', '/usr/local/bin/node'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--node is for launchd (--driver darwin)') });
  });
});

/**
 * StrictModes for what launchd runs as root, on real files: we are root, so a directory chowned
 * to uid 501 is the Intel Mac's /usr/local/lib (Homebrew gives it to the user) or Homebrew's
 * prefix. Trees are built under a fresh 0700 directory in /tmp (root-owned, under a sticky /tmp).
 */
describe('install refuses a node or agent script a non-root user could replace', () => {
  const USER_UID = 501;
  let tree: string;
  const file = (path: string, content: string | Buffer = '// code\n', mode = 0o755): string => {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, content, { mode });
    return path;
  };
  /** A directory the user owns (as Homebrew's /usr/local/lib or /opt/homebrew). */
  const userOwned = (path: string): string => {
    mkdirSync(path, { recursive: true, mode: 0o755 });
    chownSync(path, USER_UID, 20);
    return path;
  };
  // The nodejs.org build: a Mach-O that loads only macOS's own libraries (dprint's macOS build stands in).
  const officialNode = () => copyFileSync(join(ROOT, 'node_modules/dprint-node/dprint-node.darwin-arm64.node'), file(join(tree, 'app-support/wgctl/node')));
  const install = (paths: { nodePath: string; scriptPath: string }, allowUntrustedProgram = false, run = new ScriptedRunner([])) =>
    installLaunchd(run, { ...paths, agentArgs: AGENT_ARGS, start: false, daemonDir: join(tree, 'LaunchDaemons'), logDir: join(tree, 'Logs'), allowUntrustedProgram });

  beforeEach(() => {
    tree = mkdtempSync('/tmp/wgctl-launchd-trust-');
  });
  afterEach(() => rmSync(tree, { recursive: true, force: true }));

  it('accepts node and script in a root-owned tree (where `wgctl init` puts them), checking node\'s libraries', async () => {
    officialNode();
    const paths = { nodePath: join(tree, 'app-support/wgctl/node'), scriptPath: file(join(tree, 'app-support/wgctl/mac-agent.js'), '// agent\n', 0o644) };
    const run = new ScriptedRunner(installArgv({ label: 'com.wgctl.mac-agent', program: paths.nodePath, args: [paths.scriptPath, ...AGENT_ARGS], logDir: join(tree, 'Logs'), daemonDir: join(tree, 'LaunchDaemons'), start: false }).map((c) => ({ argv: c.argv })));
    expect(await install(paths, false, run)).toMatchObject({ ...paths, warnings: [] });
    run.assertDone();
  });

  it('refuses a script under a user-owned /usr/local/lib, before changing anything, naming the root-owned place', async () => {
    const lib = userOwned(join(tree, 'usr/local/lib'));
    const scriptPath = file(join(lib, 'wgctl/mac-agent.js'), '// agent\n', 0o644); // root's file, in the user's directory
    officialNode();
    const run = new ScriptedRunner([]);
    const refusal = install({ nodePath: join(tree, 'app-support/wgctl/node'), scriptPath }, false, run);
    await expect(refusal).rejects.toThrow(`agent script ${scriptPath}: ${lib} is owned by uid ${USER_UID}, not root: copy the agent to a root-owned directory first (sudo install -d -m 0755 '/Library/Application Support/wgctl'`);
    await expect(refusal).rejects.toThrow(/--allow-untrusted-program installs anyway/);
    expect(run.calls).toEqual([]);
  });

  it('refuses a group-writable agent directory', async () => {
    officialNode();
    const dir = join(tree, 'app-support/wgctl');
    chmodSync(dir, 0o775);
    await expect(install({ nodePath: join(dir, 'node'), scriptPath: file(join(dir, 'mac-agent.js')) })).rejects.toThrow(`${dir} is writable by group (mode 0775)`);
  });

  it('refuses Homebrew\'s node: the /usr/local/bin/node link leads into the user-owned Cellar', async () => {
    file(join(userOwned(join(tree, 'usr/local/Cellar')), 'node/22.3.0/bin/node'));
    const linkDir = join(tree, 'usr/local/bin');
    mkdirSync(linkDir, { recursive: true });
    symlinkSync('../Cellar/node/22.3.0/bin/node', join(linkDir, 'node'));
    const scriptPath = file(join(tree, 'app-support/wgctl/mac-agent.js'));
    await expect(install({ nodePath: join(linkDir, 'node'), scriptPath })).rejects.toThrow(
      new RegExp(`node ${join(linkDir, 'node')}: ${join(tree, 'usr/local/Cellar')} is owned by uid ${USER_UID}, not root: Homebrew's node cannot pass`),
    );
  });

  it('refuses a root-owned copy of a node that loads libraries from a user-owned prefix (Homebrew\'s libuv)', async () => {
    const libuv = file(join(userOwned(join(tree, 'homebrew')), 'opt/libuv/lib/libuv.1.dylib'));
    const nodePath = file(join(tree, 'app-support/wgctl/node'), machOExecutable(['/usr/lib/libSystem.B.dylib', libuv]));
    const scriptPath = file(join(tree, 'app-support/wgctl/mac-agent.js'));
    await expect(install({ nodePath, scriptPath })).rejects.toThrow(`node ${nodePath} loads ${libuv}: library ${libuv}: ${join(tree, 'homebrew')} is owned by uid ${USER_UID}, not root`);
  });

  it('follows @rpath and @loader_path to the library dyld would load, and refuses one the user could create', async () => {
    const nodePath = file(join(tree, 'app-support/wgctl/bin/node'), machOExecutable(['@rpath/libnode.127.dylib'], ['@loader_path/../lib', join(tree, 'homebrew/lib')]));
    userOwned(join(tree, 'homebrew/lib'));
    const found = trustedDaemonProgramProblems({ nodePath, scriptPath: file(join(tree, 'app-support/wgctl/mac-agent.js')) });
    // Missing in the root-owned ../lib: fine (only root can add it); missing in the user's directory: they could add it.
    expect(found).toEqual([expect.stringContaining(`loads @rpath/libnode.127.dylib: library ${join(tree, 'homebrew/lib/libnode.127.dylib')} (missing): directory ${join(tree, 'homebrew/lib')} is owned by uid ${USER_UID}`)]);
  });

  it('--allow-untrusted-program installs anyway, returning loud warnings', async () => {
    const lib = userOwned(join(tree, 'usr/local/lib'));
    const scriptPath = file(join(lib, 'wgctl/mac-agent.js'));
    officialNode();
    const nodePath = join(tree, 'app-support/wgctl/node');
    const run = new ScriptedRunner(installArgv({ label: 'com.wgctl.mac-agent', program: nodePath, args: [scriptPath, ...AGENT_ARGS], logDir: join(tree, 'Logs'), daemonDir: join(tree, 'LaunchDaemons'), start: false }).map((c) => ({ argv: c.argv })));
    const installed = await install({ nodePath, scriptPath }, true, run);
    run.assertDone();
    expect(installed.warnings).toEqual([`WARNING: installed with --allow-untrusted-program; the service runs it as root, and whoever can change it can run their code as root: agent script ${scriptPath}: ${lib} is owned by uid ${USER_UID}, not root: copy the agent to a root-owned directory first (sudo install -d -m 0755 '/Library/Application Support/wgctl' && sudo install -m 0644 ${scriptPath} '/Library/Application Support/wgctl'/) and run install from there`]);
  });

  /** The problems trustedDaemonProgram finds (with allow, they come back as warnings). */
  function trustedDaemonProgramProblems(paths: { nodePath: string; scriptPath: string }): string[] {
    return trustedDaemonProgram(paths, { exists: () => true, realpath: (p) => p, untrusted: untrustedProgram }, true);
  }
});
