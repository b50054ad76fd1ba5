/** `wgctl status [--watch [SECONDS]]`: both agents side by side; exit 0 healthy, 1 degraded, 2 down. */
import type { MacStatus, VmStatus } from '@wgctl/proto';
import { certificateCheck, certificateExpiries, type TlsMaterial } from '@wgctl/transport';
import { dirname } from 'node:path';
import type { CommandContext } from '../command-context';
import { type PortalDetection, readPortalState } from '../portal-state';
import { renderStatusTable } from '../render/status-table';
import { buildStatusReport, type ControllerJson, type Fetched, type StatusReport } from '../status-model';
import { type Agents, configPath, loadClientTls, loadControllerConfig, openAgents, timeoutMs, vmTarget } from './context';

const STATUS_DEFAULT_TIMEOUT_S = 10;
const DEFAULT_WATCH_S = 2;

async function fetched<T>(p: Promise<T>): Promise<Fetched<T>> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** The controller's certificate and CA expiry, as status reports it. */
function controllerJson(tls: Pick<TlsMaterial, 'ca' | 'cert'>, now: Date): ControllerJson {
  const [leaf, ca] = certificateExpiries(tls, now);
  const check = certificateCheck(tls, now);
  return {
    certificate: {
      notAfter: leaf.notAfter.toISOString(),
      daysLeft: leaf.daysLeft,
      caNotAfter: ca.notAfter.toISOString(),
      caDaysLeft: ca.daysLeft,
      ok: check.ok,
      detail: check.detail,
    },
  };
}

async function sampleStatus(
  agents: Agents,
  targets: { vm: string; mac: string },
  now = () => new Date(),
  tls?: Pick<TlsMaterial, 'ca' | 'cert'>,
  portal?: PortalDetection | null,
): Promise<StatusReport> {
  const [vm, mac] = await Promise.all([fetched<VmStatus>(agents.vm.status()), fetched<MacStatus>(agents.mac.status())]);
  const at = now();
  return buildStatusReport(vm, mac, targets, at, tls ? controllerJson(tls, at) : null, portal ?? null);
}

/** The portal `wgctl up` remembered (a local file: no network); a bad file is noted once, not fatal. */
function portalReader(configDir: string, note: (line: string) => void): () => PortalDetection | null {
  const noted = new Set<string>();
  return () => {
    const { detection, note: why } = readPortalState(configDir);
    if (why && !noted.has(why)) {
      noted.add(why);
      note(`wgctl status: ${why}\n`);
    }
    return detection;
  };
}

/** One report, as `wgctl status --json` prints it (`wgctl menubar` renders it). */
export async function sampleStatusOnce(ctx: CommandContext): Promise<StatusReport> {
  const { config } = loadControllerConfig(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, STATUS_DEFAULT_TIMEOUT_S) });
  try {
    const portal = portalReader(dirname(configPath(ctx)), (line) => ctx.io.stderr.write(line))();
    return await sampleStatus(agents, { vm: vmTarget(config), mac: config.mac.agent }, undefined, loadClientTls(config, 'controller'), portal);
  } finally {
    agents.close();
  }
}

export async function statusCommand(ctx: CommandContext, flags: { watch?: number | true }): Promise<number> {
  const { config } = loadControllerConfig(ctx);
  const agents = openAgents(config, { timeoutMs: timeoutMs(ctx, STATUS_DEFAULT_TIMEOUT_S) });
  const tls = loadClientTls(config, 'controller');
  const targets = { vm: vmTarget(config), mac: config.mac.agent };
  const watchS = flags.watch === undefined ? undefined : flags.watch === true ? DEFAULT_WATCH_S : flags.watch;
  const tty = Boolean(ctx.io.stdout.isTTY);
  const rememberedPortal = portalReader(dirname(configPath(ctx)), (line) => ctx.io.stderr.write(line));

  const show = (report: StatusReport, first: boolean) => {
    if (ctx.global.json) {
      // --watch emits one document per line (NDJSON); a single sample is pretty-printed.
      ctx.io.stdout.write(watchS === undefined ? `${JSON.stringify(report, null, 2)}\n` : `${JSON.stringify(report)}\n`);
      return;
    }
    const table = renderStatusTable(report);
    if (watchS === undefined) ctx.io.stdout.write(table);
    else if (tty) ctx.io.stdout.write(`\x1b[H\x1b[2J${report.time}  (every ${watchS} s, Ctrl-C to stop)\n\n${table}`);
    else ctx.io.stdout.write(`${first ? '' : '\n'}--- ${report.time}\n${table}`);
  };

  try {
    let report = await sampleStatus(agents, targets, undefined, tls, rememberedPortal());
    show(report, true);
    if (watchS === undefined) return report.exitCode;

    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const unregister = ctx.io.onInterrupt?.(() => {
      stop();
      return 'handled';
    });
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), watchS * 1000)));
        const why = await Promise.race([tick, stopped.then(() => 'stop' as const)]);
        clearTimeout(timer);
        if (why === 'stop') break;
        report = await sampleStatus(agents, targets, undefined, tls, rememberedPortal());
        show(report, false);
      }
    } finally {
      unregister?.();
    }
    return report.exitCode;
  } finally {
    agents.close();
  }
}
