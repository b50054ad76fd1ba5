import { join } from 'node:path';
import { ExecRunner, ScriptedRunner } from '@wgctl/runner';
import { LAUNCHD_PATH, installArgv, installLaunchd, launchdPlistPath, renderLaunchdPlist, uninstallArgv, uninstallLaunchd } from '../launchd';

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

const options = {
  label: 'com.wgctl.mac-agent',
  program: '/usr/local/bin/node',
  args: ['/usr/local/lib/wgctl/mac-agent.js', '--driver', 'darwin', '--state-dir', '/Library/Application Support/wgctl/mac-agent', '--note', 'a&b <c> "d"'],
  logDir: '/Library/Logs/wgctl',
};

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

  it('install: bootout (not loaded is fine) → plist root:wheel 0644 → enable → bootstrap → kickstart', async () => {
    expect(launchdPlistPath('com.wgctl.mac-agent')).toBe(plistPath);
    const plist = renderLaunchdPlist(options);
    const run = new ScriptedRunner([
      { argv: ['launchctl', 'bootout', 'system/com.wgctl.mac-agent'], exitCode: 3, stderr: 'Boot-out failed: 3: No such process\n' },
      { argv: ['mkdir', '-p', '/Library/Logs/wgctl'] },
      { argv: ['tee', plistPath], input: plist },
      { argv: ['chown', 'root:wheel', plistPath] },
      { argv: ['chmod', '0644', plistPath] },
      { argv: ['launchctl', 'enable', 'system/com.wgctl.mac-agent'] },
      { argv: ['launchctl', 'bootstrap', 'system', plistPath] },
      { argv: ['launchctl', 'kickstart', '-k', 'system/com.wgctl.mac-agent'] },
    ]);
    const path = await installLaunchd(run, { nodePath: options.program, scriptPath: options.args[0], agentArgs: options.args.slice(1) });
    run.assertDone();
    expect(path).toBe(plistPath);
  });

  it('install fails loudly when launchd refuses to load it', async () => {
    const run = new ScriptedRunner([
      ...installArgv(options).slice(0, 6).map((c) => ({ argv: c.argv, exitCode: c.argv[1] === 'bootout' ? 3 : 0 })),
      { argv: ['launchctl', 'bootstrap', 'system', plistPath], exitCode: 5, stderr: 'Bootstrap failed: 5: Input/output error\n' },
    ]);
    await expect(installLaunchd(run, { nodePath: options.program, scriptPath: options.args[0], agentArgs: options.args.slice(1) })).rejects.toThrow(/Input\/output error/);
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
