/**
 * mac-agent's command line. Parsing only: gRPC, the engine and the drivers are required
 * inside the actions, so `--help` stays fast.
 *
 *   mac-agent [--driver darwin|linux] [--listen unix:PATH|ADDR:PORT] [--tls-dir DIR]
 *             [--state-dir DIR] [--log-level L] [--dns-resolv-conf PATH] [--dns-mode M]
 *   mac-agent install   [same options]  (launchd on darwin, systemd on linux)
 *   mac-agent uninstall [--driver …] [--state-dir DIR]  (stops it and removes what it changed)
 */
import { Command, InvalidArgumentError, Option } from 'commander';

export type DriverChoice = 'darwin' | 'linux';

export interface AgentOptions {
  driver: DriverChoice;
  listen: string;
  tlsDir?: string;
  stateDir: string;
  logLevel: string;
  dnsResolvConf: string;
  dnsMode: 'resolv-conf' | 'resolvectl';
  socketGroup?: string;
}

export const DEFAULT_LISTEN = 'unix:/var/run/wgctl/mac-agent.sock';

export function defaultDriver(platform: NodeJS.Platform = process.platform): DriverChoice {
  return platform === 'darwin' ? 'darwin' : 'linux';
}

export function defaultStateDir(driver: DriverChoice): string {
  return driver === 'darwin' ? '/Library/Application Support/wgctl/mac-agent' : '/var/lib/wgctl/mac-agent';
}

function addAgentOptions(command: Command): Command {
  return command
    .addOption(new Option('--driver <name>', 'host network driver').choices(['darwin', 'linux']).default(defaultDriver()))
    .option('--listen <address>', 'unix:PATH, or ADDR:PORT (TCP needs --tls-dir)', DEFAULT_LISTEN)
    .option('--tls-dir <dir>', 'mTLS material: ca.crt, mac-agent.crt, mac-agent.key (clients must be role controller)')
    .option('--state-dir <dir>', 'where the journal lives (default: /var/lib/wgctl/mac-agent; darwin: /Library/Application Support/wgctl/mac-agent)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default(process.env.WGCTL_LOG_LEVEL ?? 'info'))
    .option('--dns-resolv-conf <path>', 'linux: the resolv.conf to manage', '/etc/resolv.conf')
    .addOption(new Option('--dns-mode <mode>', 'linux: resolv.conf file, or systemd-resolved via resolvectl').choices(['resolv-conf', 'resolvectl']).default('resolv-conf'))
    .option('--socket-group <group>', 'group owning the unix socket (default: admin on darwin, root on linux)');
}

export function agentOptionsFrom(raw: Record<string, unknown>): AgentOptions {
  const driver = raw.driver as DriverChoice;
  const listen = String(raw.listen);
  if (!listen.startsWith('unix:') && !raw.tlsDir) {
    throw new InvalidArgumentError(`--listen ${listen} is TCP: give --tls-dir (mTLS is required off the unix socket)`);
  }
  return {
    driver,
    listen,
    tlsDir: raw.tlsDir as string | undefined,
    stateDir: (raw.stateDir as string | undefined) ?? defaultStateDir(driver),
    logLevel: String(raw.logLevel),
    dnsResolvConf: String(raw.dnsResolvConf),
    dnsMode: raw.dnsMode as AgentOptions['dnsMode'],
    socketGroup: (raw.socketGroup as string | undefined) ?? (driver === 'darwin' ? 'admin' : undefined),
  };
}

/** The argv that reproduces these options (for the service definition written by install). */
export function agentArgs(options: AgentOptions): string[] {
  const args = ['--driver', options.driver, '--listen', options.listen, '--state-dir', options.stateDir, '--log-level', options.logLevel];
  if (options.tlsDir) args.push('--tls-dir', options.tlsDir);
  if (options.driver === 'linux') {
    args.push('--dns-mode', options.dnsMode);
    if (options.dnsMode === 'resolv-conf') args.push('--dns-resolv-conf', options.dnsResolvConf);
  }
  if (options.socketGroup) args.push('--socket-group', options.socketGroup);
  return args;
}

export function buildProgram(): Command {
  const program = new Command('mac-agent')
    .description('wgctl host agent: every packet through the WireGuard VM — split routes, server pinning, kill switch, DNS, roaming')
    .showHelpAfterError()
    .enablePositionalOptions();
  addAgentOptions(program).action(async (raw: Record<string, unknown>) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runAgent } = require('./run') as typeof import('./run');
    await runAgent(agentOptionsFrom(raw));
  });
  addAgentOptions(program.command('install').description('install as a system service (launchd on darwin, systemd on linux) and start it'))
    .option('--no-start', 'write the service definition only')
    .option('--unit-dir <dir>', 'linux: where the systemd unit goes', '/etc/systemd/system')
    .action(async (raw: Record<string, unknown>) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { installService } = require('./run') as typeof import('./run');
      await installService(agentOptionsFrom(raw), { start: raw.start !== false, unitDir: raw.unitDir as string });
    });
  addAgentOptions(program.command('uninstall').description('stop the service, undo its routes/kill switch/DNS (from the journal), remove it'))
    .option('--unit-dir <dir>', 'linux: where the systemd unit is', '/etc/systemd/system')
    .action(async (raw: Record<string, unknown>) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { uninstallService } = require('./run') as typeof import('./run');
      await uninstallService(agentOptionsFrom(raw), { unitDir: raw.unitDir as string });
    });
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    process.stderr.write(`mac-agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
