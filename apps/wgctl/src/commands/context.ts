/**
 * What the agent-facing commands share: finding and loading the config, the controller's TLS
 * material, the two clients, timeouts, the progress mode and the logger.
 */
import type * as DnsPromises from 'node:dns/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, isIpAddress, loadConfig, type WgctlConfig } from '@wgctl/config';
import { createLogger, type Logger, type LogLevel, parseLogLevel } from '@wgctl/logging';
import { loadTlsMaterial, type TlsMaterial } from '@wgctl/transport';
import type { MacAgentApi, VmAgentApi } from '../agents';
import type { CommandContext } from '../command-context';
import { macAgentApi, vmAgentApi } from '../clients';
import { UsageError } from '../errors';
import type { ProgressMode } from '../render/progress';

const DEFAULT_CONFIG_RELATIVE = join('.config', 'wgctl', 'config.json');

/** --config, else $WGCTL_CONFIG, else ~/.config/wgctl/config.json. */
export function configPath(ctx: CommandContext): string {
  if (ctx.global.config) return ctx.global.config;
  if (ctx.io.env.WGCTL_CONFIG) return ctx.io.env.WGCTL_CONFIG;
  return join(ctx.io.env.HOME || homedir(), DEFAULT_CONFIG_RELATIVE);
}

export function loadControllerConfig(ctx: CommandContext): { config: WgctlConfig; path: string } {
  const path = configPath(ctx);
  try {
    return { config: loadConfig(path), path };
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
}

export function timeoutMs(ctx: CommandContext, defaultSeconds: number): number {
  return Math.round((ctx.global.timeout ?? defaultSeconds) * 1000);
}

/** Describe/Status: quick unless --timeout says otherwise. */
export const QUICK_DEFAULT_TIMEOUT_S = 10;

export function vmTarget(config: WgctlConfig): string {
  const host = config.vm.address.includes(':') ? `[${config.vm.address}]` : config.vm.address;
  return `${host}:${config.vm.port}`;
}

export function loadClientTls(config: WgctlConfig, role: 'controller' | 'monitor'): TlsMaterial {
  try {
    return loadTlsMaterial(config.tlsDir, role);
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The VM address as an IP: the Mac's routes need a literal next hop. */
export async function vmAddressIp(config: WgctlConfig): Promise<string> {
  if (isIpAddress(config.vm.address)) return config.vm.address;
  // Loaded here: every command imports this module, and node:dns/promises costs ~1 ms at start.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { lookup } = require('node:dns/promises') as typeof DnsPromises;
  try {
    return (await lookup(config.vm.address)).address;
  } catch (error) {
    throw new UsageError(`vm.address "${config.vm.address}" does not resolve: ${(error as Error).message}`);
  }
}

export interface Agents {
  vm: VmAgentApi;
  mac: MacAgentApi;
  /** Both channels READY, or their first Describe (describeNow) settled: never rejects. */
  connected(): Promise<void>;
  close(): void;
}

export function openAgents(
  config: WgctlConfig,
  options: { timeoutMs: number; quickTimeoutMs?: number; role?: 'controller' | 'monitor'; vmAddress?: string; describeNow?: boolean },
): Agents {
  const tls = loadClientTls(config, options.role ?? 'controller');
  const timeouts = { timeoutMs: options.timeoutMs, quickTimeoutMs: options.quickTimeoutMs, describeNow: options.describeNow };
  const vm = vmAgentApi({ side: 'vm', target: vmTarget(config), serverName: config.vm.tlsServerName }, { tls, ...timeouts });
  const mac = macAgentApi({ side: 'mac', target: config.mac.agent }, { tls, ...timeouts, vmAddress: options.vmAddress ?? config.vm.address });
  return {
    vm,
    mac,
    connected: async () => {
      await Promise.all([vm.connected(), mac.connected()]);
    },
    close() {
      vm.close();
      mac.close();
    },
  };
}

export function progressMode(ctx: CommandContext): ProgressMode {
  if (ctx.global.json) return 'none';
  const ci = ctx.io.env.CI === 'true' || ctx.io.env.CI === '1';
  return ctx.io.stdout.isTTY && !ci && ctx.io.env.TERM !== 'dumb' ? 'listr' : 'plain';
}

/** --log-level, else $WGCTL_LOG_LEVEL, else warn; a usage error (exit 2) when it is not a level. */
export function controllerLogLevel(ctx: CommandContext): LogLevel {
  try {
    return parseLogLevel(ctx.global.logLevel ?? ctx.io.env.WGCTL_LOG_LEVEL ?? 'warn');
  } catch (error) {
    throw new UsageError(`--log-level / WGCTL_LOG_LEVEL: ${(error as Error).message}`);
  }
}

export function controllerLogger(ctx: CommandContext): Logger {
  return createLogger({ service: 'wgctl', level: controllerLogLevel(ctx), destination: 'stderr' });
}

export function writeJson(ctx: CommandContext, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
