/**
 * `mac-agent install|uninstall` on macOS: a launchd daemon in the system domain
 * (/Library/LaunchDaemons/com.wgctl.mac-agent.plist). Rendering and the command sequences are
 * pure; installing runs them through the runner, so every step is an argv in the output.
 *
 * Before anything changes, the node and agent script it will run are checked (daemonPaths): a
 * Homebrew Cellar node becomes its stable link, and paths launchd could not run at boot as root
 * (privacy-protected folders, /Volumes, home folders, nvm) are refused, naming the fix. Then
 * both (and node's libraries) must be root's with root-owned parents (program-trust.ts), unless
 * --allow-untrusted-program.
 *
 * The plist is written here as XML by hand (a handful of keys, all escaped): the `plist`
 * package is ESM-only and cannot be required from this CommonJS build; tests parse the result
 * with it to check the document is what launchd will read.
 */
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { shellQuote } from '@wgctl/config';
import type { Runner } from '@wgctl/runner';
import { enforceTrustedProgram, untrustedProgram, type ProgramPaths, type UntrustedProgram } from './program-trust';

const LAUNCHD_LABEL = 'com.wgctl.mac-agent';
const LAUNCHD_DAEMON_DIR = '/Library/LaunchDaemons';
const LAUNCHD_LOG_DIR = '/Library/Logs/wgctl';
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
  /** Run again after a failure, up to `attempts` runs in all; the last failure is thrown. */
  retry?: { attempts: number; delayMs: number };
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

/** Covers the settle window after a bootout (about 5 s reported), with margin. */
export const BOOTSTRAP_RETRY = { attempts: 15, delayMs: 1_000 };

/**
 * Install: stop a running copy (not loaded is fine), write the plist root:wheel 0644 (launchd
 * refuses group/world-writable or non-root daemon plists), enable, bootstrap.
 * `enable` comes before `bootstrap`: a service left disabled by `launchctl disable` cannot be
 * bootstrapped ("Bootstrap failed: 5: Input/output error").
 * No `kickstart`: bootstrap of a RunAtLoad job starts it, and `kickstart -k` right after would
 * kill that fresh instance, possibly mid-start re-asserting a journaled kill switch. A copy that
 * was running is already stopped by the bootout (SIGTERM; it leaves the kill switch loaded), so
 * bootstrap always starts the new definition.
 * bootout returns before launchd has released the label (a few seconds), and a bootstrap in that
 * window fails with 5 or 37: it is retried, so a reinstall does not leave the daemon down while
 * the kill switch it left loaded blocks the host.
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
          { argv: ['launchctl', 'bootstrap', 'system', path], retry: BOOTSTRAP_RETRY },
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function runLaunchdCommands(run: Runner, commands: LaunchdCommand[], wait: (ms: number) => Promise<void> = sleep): Promise<void> {
  for (const command of commands) {
    const attempts = command.retry?.attempts ?? 1;
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= attempts;
      const result = await run.run(command.argv, { input: command.input, allowFailure: command.ignoreFailure || !last });
      if (result.exitCode === 0 || command.ignoreFailure || last) break;
      await wait(command.retry?.delayMs ?? 0);
    }
  }
}

/** File-system look-ups of the path checks, injected so the checks run (and are tested) anywhere. */
export interface PathProbe {
  /** True when the path exists (following symlinks: a dangling link does not). */
  exists(path: string): boolean;
  /** The path with every symlink resolved. */
  realpath(path: string): string;
  /** What keeps node (and its libraries) or the script from being root's alone (program-trust.ts). */
  untrusted(paths: ProgramPaths): UntrustedProgram;
}

const fileSystemProbe: PathProbe = { exists: existsSync, realpath: (path) => realpathSync(path), untrusted: untrustedProgram };

const HOMEBREW_NODE = /^(?<prefix>\/.+)\/Cellar\/(?<formula>node(?:@[0-9]+)?)\/[^/]+\/bin\/node$/;

/**
 * The node path for the plist. Homebrew's node runs from a versioned Cellar path
 * (/opt/homebrew/Cellar/node/22.3.0/bin/node) that `brew cleanup` deletes after an upgrade:
 * the daemon would never start again. It becomes the link Homebrew keeps across upgrades:
 * PREFIX/bin/node for `node`, PREFIX/opt/node@N/bin/node for the keg-only `node@N`, checked to
 * exist and to resolve into the same formula. Other paths are returned as they are.
 */
export function stableNodePath(nodePath: string, probe: PathProbe): string {
  const cellar = HOMEBREW_NODE.exec(nodePath)?.groups;
  if (!cellar) {
    if (nodePath.includes('/Cellar/')) {
      throw new Error(`node ${nodePath} is in Homebrew's Cellar, a versioned path \`brew cleanup\` deletes after an upgrade: give --node with a path that stays (e.g. /opt/homebrew/bin/node)`);
    }
    return nodePath;
  }
  const { prefix, formula } = cellar;
  const link = formula === 'node' ? `${prefix}/bin/node` : `${prefix}/opt/${formula}/bin/node`;
  const fix = formula === 'node' ? 'run `brew link node`' : `run \`brew reinstall ${formula}\``;
  const why = `node ${nodePath} is a versioned Homebrew path that \`brew cleanup\` deletes after an upgrade (the daemon would then never start), so the daemon runs Homebrew's stable link ${link}`;
  if (!probe.exists(link)) throw new Error(`${why}, which is missing: ${fix}, or give --node PATH`);
  const target = probe.realpath(link);
  if (!target.startsWith(`${prefix}/Cellar/${formula}/`)) {
    throw new Error(`${why}, but it resolves to ${target}, not to Homebrew's ${formula}: ${formula === 'node' ? 'run `brew link --overwrite node`' : fix}, or give --node PATH`);
  }
  return link;
}

/** Folders macOS privacy controls (TCC) close to a daemon: reads fail with "Operation not permitted". */
const TCC_FOLDER = /^\/Users\/[^/]+\/(Desktop|Documents|Downloads|Library\/Mobile Documents|Library\/CloudStorage)(?:\/|$)/i;

/**
 * Why launchd cannot (or must not) run this path as root from boot; undefined when it can.
 * Paths are matched case-insensitively: APFS is, by default.
 */
export function daemonPathProblem(path: string): string | undefined {
  if (!isAbsolute(path)) return 'is not an absolute path';
  const normalized = normalize(path);
  const tcc = TCC_FOLDER.exec(normalized);
  if (tcc) return `is under ${tcc[1]}, which macOS privacy controls (TCC) close to a daemon ("Operation not permitted")`;
  // Removable and network volumes are TCC-protected too, and may not be mounted yet at boot,
  // when the daemon has to bring a journaled kill switch back.
  if (/^\/Volumes\//i.test(normalized)) return 'is on a volume under /Volumes, which may not be mounted when launchd starts the daemon at boot (and removable/network volumes are closed to a daemon by privacy controls)';
  // nvm's node (and what `npm i -g` put beside it) is one version's tree, removed by `nvm uninstall`.
  if (/\/\.nvm\/versions\//.test(normalized)) return 'is in nvm\'s versioned tree, removed by `nvm uninstall`, and writable by its owner without sudo while the daemon runs it as root';
  // A home folder's files can be changed by its user without sudo: the daemon would run them as
  // root. (Homebrew's prefix is user-writable too: trustedDaemonProgram refuses it by owner.)
  if (/^\/Users\//i.test(normalized)) return 'is in a home folder, writable by its user without sudo while the daemon runs it as root';
  return undefined;
}

/**
 * Where the agent and its node go: root-owned with root-owned parents on every Mac
 * (/Library root:wheel 0755, /Library/Application Support root:admin 0755), and never Homebrew's.
 * /usr/local/lib and /usr/local/bin are not: Homebrew on Intel gives them to its user.
 */
export const MAC_AGENT_HOME = '/Library/Application Support/wgctl';
const quotedHome = shellQuote(MAC_AGENT_HOME);
const NODE_FIX =
  `Homebrew's node cannot pass (it and the libuv, OpenSSL, ICU it loads are in Homebrew's prefix, which its user owns); ` +
  `copy the nodejs.org build's bin/node (it carries its libraries, loading only macOS's own) next to the agent: ` +
  `sudo install -m 0755 NODEJS_ORG/bin/node ${quotedHome}/node, and run install with that node (or give --node ${quotedHome}/node)`;
const scriptFix = (script: string) =>
  `copy the agent to a root-owned directory first (sudo install -d -m 0755 ${quotedHome} && sudo install -m 0644 ${shellQuote(script)} ${quotedHome}/) and run install from there`;

function checkDaemonPath(role: 'node' | 'agent script', path: string, fix: string, probe: PathProbe): void {
  if (!isAbsolute(path)) throw new Error(`${role} ${path} is not an absolute path${role === 'node' ? ': give --node PATH' : ''}`);
  const problem = daemonPathProblem(path);
  if (problem) throw new Error(`${role} ${path} ${problem}: ${fix}`);
  if (!probe.exists(path)) throw new Error(`${role} ${path} does not exist${role === 'node' ? ': give --node PATH' : ''}`);
  // launchd runs what the links point at: a link in /usr/local/bin to a home folder is no better.
  const target = probe.realpath(path);
  const targetProblem = daemonPathProblem(target);
  if (targetProblem) throw new Error(`${role} ${path} resolves to ${target}, which ${targetProblem}: ${fix}`);
}

/**
 * The node and agent script the plist will run: node as stableNodePath makes it, both checked
 * by daemonPathProblem (the path and what it resolves to) and to exist. Throws naming the fix.
 */
export function daemonPaths(paths: { nodePath: string; scriptPath: string }, probe: PathProbe): { nodePath: string; scriptPath: string } {
  const nodePath = isAbsolute(paths.nodePath) ? stableNodePath(paths.nodePath, probe) : paths.nodePath;
  checkDaemonPath('node', nodePath, NODE_FIX, probe);
  checkDaemonPath('agent script', paths.scriptPath, scriptFix(paths.scriptPath), probe);
  return { nodePath, scriptPath: paths.scriptPath };
}

/** Refuses (naming the fix) a node or script that is not root's alone; with `allow`, returns the warnings. */
export function trustedDaemonProgram(paths: ProgramPaths, probe: PathProbe, allow: boolean): string[] {
  return enforceTrustedProgram(probe.untrusted(paths), { node: NODE_FIX, script: scriptFix(paths.scriptPath) }, allow);
}

export interface LaunchdInstalled {
  plistPath: string;
  /** What ProgramArguments runs: node (a Cellar path made stable), then the agent script. */
  nodePath: string;
  scriptPath: string;
  /** With allowUntrustedProgram: what is not root's alone (the agent logs it again at every start). */
  warnings: string[];
}

/** What `mac-agent install` calls (see run.ts). Checks the paths before changing anything. */
export async function installLaunchd(
  run: Runner,
  options: {
    nodePath: string;
    scriptPath: string;
    agentArgs: string[];
    start?: boolean;
    label?: string;
    daemonDir?: string;
    logDir?: string;
    probe?: PathProbe;
    wait?: (ms: number) => Promise<void>;
    /** Install even when node or the script could be replaced by a non-root user (warned). */
    allowUntrustedProgram?: boolean;
  },
): Promise<LaunchdInstalled> {
  const probe = options.probe ?? fileSystemProbe;
  const { nodePath, scriptPath } = daemonPaths(options, probe);
  const warnings = trustedDaemonProgram({ nodePath, scriptPath }, probe, options.allowUntrustedProgram === true);
  const install: LaunchdInstallOptions = {
    label: options.label ?? LAUNCHD_LABEL,
    program: nodePath,
    args: [scriptPath, ...options.agentArgs],
    logDir: options.logDir ?? LAUNCHD_LOG_DIR,
    daemonDir: options.daemonDir,
    start: options.start,
  };
  await runLaunchdCommands(run, installArgv(install), options.wait);
  return { plistPath: launchdPlistPath(install.label, install.daemonDir), nodePath, scriptPath, warnings };
}

/** What `mac-agent uninstall` calls (see run.ts): returns the plist path. */
export async function uninstallLaunchd(run: Runner, options: { stop?: boolean; label?: string; daemonDir?: string } = {}): Promise<string> {
  await runLaunchdCommands(run, uninstallArgv(options));
  return launchdPlistPath(options.label ?? LAUNCHD_LABEL, options.daemonDir);
}
