/**
 * `mac-agent install|uninstall` on macOS: a launchd daemon in the system domain
 * (/Library/LaunchDaemons/com.wgctl.mac-agent.plist). Rendering and the command sequences are
 * pure; installing runs them through the runner, so every step is an argv in the output.
 *
 * The plist is written here as XML by hand (a handful of keys, all escaped): the `plist`
 * package is ESM-only and cannot be required from this CommonJS build; tests parse the result
 * with it to check the document is what launchd will read.
 */
import { isAbsolute } from 'node:path';
import type { Runner } from '@wgctl/runner';

export const LAUNCHD_LABEL = 'com.wgctl.mac-agent';
export const LAUNCHD_DAEMON_DIR = '/Library/LaunchDaemons';
export const LAUNCHD_LOG_DIR = '/Library/Logs/wgctl';
/** launchd starts daemons with a bare PATH; the agent runs netstat, route, ifconfig, pfctl, networksetup. */
export const LAUNCHD_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

export interface LaunchdPlistOptions {
  label: string;
  /** Absolute path of the program (node). */
  program: string;
  /** Arguments after the program (the agent script, then its options). */
  args: string[];
  /** Directory for StandardOutPath/StandardErrorPath. */
  logDir: string;
  /** PATH for the daemon (default LAUNCHD_PATH). */
  path?: string;
  /** Seconds launchd waits before restarting a daemon that exited (default 5). */
  throttleInterval?: number;
}

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

function escapeXml(text: string): string {
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) throw new Error(`launchd plist: control character in ${JSON.stringify(text)}`);
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function plistXml(value: PlistValue, indent: string): string {
  const inner = `${indent}\t`;
  if (typeof value === 'string') return `${indent}<string>${escapeXml(value)}</string>`;
  if (typeof value === 'boolean') return `${indent}<${value}/>`;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`launchd plist: ${value} is not an integer`);
    return `${indent}<integer>${value}</integer>`;
  }
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.map((v) => plistXml(v, inner)), `${indent}</array>`].join('\n');
  const entries = Object.entries(value).flatMap(([k, v]) => [`${inner}<key>${escapeXml(k)}</key>`, plistXml(v, inner)]);
  return [`${indent}<dict>`, ...entries, `${indent}</dict>`].join('\n');
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

export function renderLaunchdPlist(options: LaunchdPlistOptions): string {
  if (!LABEL.test(options.label)) throw new Error(`launchd label "${options.label}" must be reverse-DNS style (letters, digits, dots, dashes)`);
  if (!isAbsolute(options.program)) throw new Error(`launchd program must be an absolute path (got "${options.program}")`);
  if (!isAbsolute(options.logDir)) throw new Error(`launchd log directory must be an absolute path (got "${options.logDir}")`);
  const log = (stream: string) => `${options.logDir.replace(/\/+$/, '')}/${options.label}.${stream}.log`;
  const document: PlistValue = {
    Label: options.label,
    ProgramArguments: [options.program, ...options.args],
    // Started at boot, before anyone logs in, so a journaled kill switch comes back early.
    RunAtLoad: true,
    // Restarted whenever it exits; the kill switch stays loaded in between (PF is not tied to us).
    KeepAlive: true,
    ThrottleInterval: options.throttleInterval ?? 5,
    StandardOutPath: log('out'),
    StandardErrorPath: log('err'),
    EnvironmentVariables: { PATH: options.path ?? LAUNCHD_PATH },
  };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    plistXml(document, ''),
    '</plist>',
    '',
  ].join('\n');
}

export interface LaunchdCommand {
  argv: string[];
  /** stdin (the plist for `tee`). */
  input?: string;
  /** Failure is expected and fine (bootout of a daemon that is not loaded). */
  ignoreFailure?: boolean;
}

export interface LaunchdInstallOptions extends LaunchdPlistOptions {
  /** Where the plist goes (default /Library/LaunchDaemons). */
  daemonDir?: string;
  /** Load and start it now (default true); false only writes the plist (it loads at next boot). */
  start?: boolean;
}

export function launchdPlistPath(label: string, daemonDir = LAUNCHD_DAEMON_DIR): string {
  return `${daemonDir.replace(/\/+$/, '')}/${label}.plist`;
}

/**
 * Install: stop a running copy (not loaded is fine), write the plist root:wheel 0644 (launchd
 * refuses group/world-writable or non-root daemon plists), then load, enable and (re)start it.
 * `enable` comes before `bootstrap`: a service left disabled by `launchctl disable` cannot be
 * bootstrapped ("Bootstrap failed: 5: Input/output error").
 */
export function installArgv(options: LaunchdInstallOptions): LaunchdCommand[] {
  const plist = renderLaunchdPlist(options);
  const path = launchdPlistPath(options.label, options.daemonDir);
  const service = `system/${options.label}`;
  const start = options.start !== false;
  return [
    ...(start ? [{ argv: ['launchctl', 'bootout', service], ignoreFailure: true }] : []),
    { argv: ['mkdir', '-p', options.logDir] },
    { argv: ['tee', path], input: plist },
    { argv: ['chown', 'root:wheel', path] },
    { argv: ['chmod', '0644', path] },
    ...(start
      ? [
          { argv: ['launchctl', 'enable', service] },
          { argv: ['launchctl', 'bootstrap', 'system', path] },
          { argv: ['launchctl', 'kickstart', '-k', service] },
        ]
      : []),
  ];
}

/** Uninstall: stop and unload (not loaded is fine), then remove the plist. */
export function uninstallArgv(options: { label?: string; daemonDir?: string; stop?: boolean } = {}): LaunchdCommand[] {
  const label = options.label ?? LAUNCHD_LABEL;
  const path = launchdPlistPath(label, options.daemonDir);
  return [...(options.stop !== false ? [{ argv: ['launchctl', 'bootout', `system/${label}`], ignoreFailure: true }] : []), { argv: ['rm', '-f', path] }];
}

export async function runLaunchdCommands(run: Runner, commands: LaunchdCommand[]): Promise<void> {
  for (const command of commands) {
    await run.run(command.argv, { input: command.input, allowFailure: command.ignoreFailure });
  }
}

/** What `mac-agent install` calls (see run.ts): returns the plist path. */
export async function installLaunchd(
  run: Runner,
  options: { nodePath: string; scriptPath: string; agentArgs: string[]; start?: boolean; label?: string; daemonDir?: string; logDir?: string },
): Promise<string> {
  const install: LaunchdInstallOptions = {
    label: options.label ?? LAUNCHD_LABEL,
    program: options.nodePath,
    args: [options.scriptPath, ...options.agentArgs],
    logDir: options.logDir ?? LAUNCHD_LOG_DIR,
    daemonDir: options.daemonDir,
    start: options.start,
  };
  await runLaunchdCommands(run, installArgv(install));
  return launchdPlistPath(install.label, install.daemonDir);
}

/** What `mac-agent uninstall` calls (see run.ts): returns the plist path. */
export async function uninstallLaunchd(run: Runner, options: { stop?: boolean; label?: string; daemonDir?: string } = {}): Promise<string> {
  await runLaunchdCommands(run, uninstallArgv(options));
  return launchdPlistPath(options.label ?? LAUNCHD_LABEL, options.daemonDir);
}
