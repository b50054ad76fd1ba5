/**
 * `wgctl metrics --textfile DIR`: both agents' Status (the calls `wgctl status` makes) as
 * Prometheus metrics — the builder the agents' /metrics use — written for node_exporter's
 * textfile collector, for a laptop nothing scrapes (launchd or cron runs it every minute).
 *
 * The collector reads every *.prom file of DIR at each scrape: the file is written whole under
 * a temporary name that does not end in .prom, fsynced, renamed over DIR/wgctl.prom (atomic on
 * one filesystem), so a scrape sees the old file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buildMetricsRegistry } from '@wgctl/metrics';
import type { CommandContext } from '../command-context';
import { CliError, EXIT, errorMessage, UsageError } from '../errors';
import { loadControllerConfig, openAgents, QUICK_DEFAULT_TIMEOUT_S, timeoutMs } from './context';

/** node_exporter's textfile collector reads only files ending in .prom. */
export const TEXTFILE_NAME = 'wgctl.prom';
/** Readable by node_exporter's user; nothing secret in it (no keys, only public keys and addresses). */
const TEXTFILE_MODE = 0o644;

function checkTextfileDirectory(dir: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`--textfile ${dir}: ${code === 'ENOENT' ? 'no such directory (create it, or give node_exporter\'s --collector.textfile.directory)' : errorMessage(error)}`);
  }
  if (!isDirectory) throw new UsageError(`--textfile ${dir}: not a directory`);
}

/** Directory entries are durable only once the directory itself is synced (not possible everywhere: best effort). */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // a filesystem that cannot fsync a directory still has the renamed file
  }
}

/** Writes DIR/NAME whole or not at all: a new temp file (O_EXCL: never through a planted link), fsync, rename. */
export function writeFileAtomically(dir: string, name: string, text: string, mode = TEXTFILE_MODE): string {
  const target = join(dir, name);
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, 'wx', mode);
    try {
      writeSync(fd, text);
      fchmodSync(fd, mode); // whatever the umask
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new CliError(`cannot write ${target}: ${errorMessage(error)}`);
  }
  syncDirectory(dir);
  return target;
}

export async function metricsCommand(ctx: CommandContext, flags: { textfile: string }): Promise<number> {
  const dir = flags.textfile;
  checkTextfileDirectory(dir);
  const { config } = loadControllerConfig(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, QUICK_DEFAULT_TIMEOUT_S) });
  try {
    const [vm, mac] = await Promise.allSettled([agents.vm.status(), agents.mac.status()]);
    const text = await buildMetricsRegistry({
      vm: vm.status === 'fulfilled' ? vm.value : undefined,
      mac: mac.status === 'fulfilled' ? mac.value : undefined,
      reachable: { 'vm-agent': vm.status === 'fulfilled', 'mac-agent': mac.status === 'fulfilled' },
    }).metrics();
    writeFileAtomically(dir, TEXTFILE_NAME, text);
    // The file says so too (wgctl_agent_reachable 0); the reason is only here.
    for (const [agent, result] of [['vm-agent', vm], ['mac-agent', mac]] as const) {
      if (result.status === 'rejected') ctx.io.stderr.write(`wgctl metrics: ${agent} unreachable: ${errorMessage(result.reason)}\n`);
    }
    return EXIT.ok;
  } finally {
    agents.close();
  }
}
