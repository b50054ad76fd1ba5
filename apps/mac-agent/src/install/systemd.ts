/**
 * `mac-agent install|uninstall` on a Linux host: a systemd unit of its own
 * (wgctl-mac-agent.service). Rendering is pure; installing writes the unit and runs
 * systemctl through the runner. ExecStart runs as root: node and the agent script must be
 * root's with root-owned parents (program-trust.ts) unless --allow-untrusted-program.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shellQuote } from '@wgctl/config';
import type { Runner } from '@wgctl/runner';
import { enforceTrustedProgram, untrustedProgram } from './program-trust';

export const SYSTEMD_UNIT_NAME = 'wgctl-mac-agent.service';
const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

export interface SystemdUnitOptions {
  /** node binary and the bundled agent script. */
  nodePath: string;
  scriptPath: string;
  /** Agent arguments after the script (--driver linux --listen … --state-dir …). */
  agentArgs: string[];
}

/** systemd's quoting for ExecStart: double quotes around words with spaces or specials. */
function systemdQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%')}"`;
}

export function renderSystemdUnit(options: SystemdUnitOptions): string {
  const exec = [options.nodePath, options.scriptPath, ...options.agentArgs].map(systemdQuote).join(' ');
  return [
    '[Unit]',
    'Description=wgctl mac-agent: routes via the WireGuard VM, kill switch, DNS, roaming',
    'Documentation=https://github.com/wgctl/wgctl',
    // Early, so a journaled kill switch is back before the network comes up after a reboot.
    'Wants=network-pre.target',
    'After=network-pre.target',
    'Before=network.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    // glibc gives each thread that mallocs its own arena; two are plenty for an idle agent and
    // keep ~3 MiB of its idle RSS off (docs/BENCHMARKS.md #7). No such knob on macOS (launchd).
    'Environment=MALLOC_ARENA_MAX=2',
    'Restart=always',
    'RestartSec=1',
    'RuntimeDirectory=wgctl',
    'RuntimeDirectoryPreserve=yes',
    'StateDirectory=wgctl',
    'StateDirectoryMode=0700',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    // Not ProtectSystem=full/strict: the agent replaces /etc/resolv.conf.
    'ProtectSystem=true',
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface InstallSystemdOptions extends SystemdUnitOptions {
  unitDir?: string;
  /** Enable and start the unit (default true). */
  start?: boolean;
  /** Install even when node or the script could be replaced by a non-root user (warned). */
  allowUntrustedProgram?: boolean;
  /** Where the warnings of allowUntrustedProgram go. */
  warn?: (line: string) => void;
}

const LINUX_NODE_FIX = "run install with a node only root can change (your distribution's /usr/bin/node)";
const linuxScriptFix = (script: string) =>
  `copy the agent to a root-owned directory first (sudo install -d -m 0755 /usr/local/lib/wgctl && sudo install -m 0644 ${shellQuote(script)} /usr/local/lib/wgctl/) and run install from there`;

export async function installSystemd(run: Runner, options: InstallSystemdOptions): Promise<string> {
  const found = untrustedProgram({ nodePath: options.nodePath, scriptPath: options.scriptPath });
  const warnings = enforceTrustedProgram(found, { node: LINUX_NODE_FIX, script: linuxScriptFix(options.scriptPath) }, options.allowUntrustedProgram === true);
  for (const warning of warnings) options.warn?.(warning);
  const dir = options.unitDir ?? SYSTEMD_UNIT_DIR;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, SYSTEMD_UNIT_NAME);
  writeFileSync(path, renderSystemdUnit(options), { mode: 0o644 });
  if (options.start !== false) {
    await run.run(['systemctl', 'daemon-reload']);
    await run.run(['systemctl', 'enable', '--now', SYSTEMD_UNIT_NAME]);
  }
  return path;
}

export async function uninstallSystemd(run: Runner, options: { unitDir?: string; stop?: boolean } = {}): Promise<string> {
  const path = join(options.unitDir ?? SYSTEMD_UNIT_DIR, SYSTEMD_UNIT_NAME);
  if (options.stop !== false) {
    // Not installed is fine: uninstall must be safe to repeat.
    await run.run(['systemctl', 'disable', '--now', SYSTEMD_UNIT_NAME], { allowFailure: true });
  }
  rmSync(path, { force: true });
  if (options.stop !== false) await run.run(['systemctl', 'daemon-reload'], { allowFailure: true });
  return path;
}
