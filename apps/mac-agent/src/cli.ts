/**
 * mac-agent's command line. Parsing only: gRPC, the engine and the drivers are required
 * inside the actions, so `--help` stays fast.
 *
 *   mac-agent [--driver darwin|linux] [--listen unix:PATH|ADDR:PORT] [--tls-dir DIR]
 *             [--state-dir DIR] [--log-level L] [--dns-resolv-conf PATH] [--dns-mode M]
 *             [--metrics-listen ADDR:PORT]
 *   mac-agent install   [same options] [--no-start] [--node PATH] [--allow-untrusted-program]  (launchd on darwin, systemd on linux)
 *   mac-agent uninstall [--driver …] [--state-dir DIR]  (stops it and removes what it changed)
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { absolutePath, processOutput, runProgram, tlsDirectory, type CliOutput } from '@wgctl/cli';
import { parseAddress } from '@wgctl/config';
import type { AgentOptions, DriverChoice } from './options';

export const DEFAULT_LISTEN = 'unix:/var/run/wgctl/mac-agent.sock';

export function defaultDriver(platform: NodeJS.Platform = process.platform): DriverChoice {
  return platform === 'darwin' ? 'darwin' : 'linux';
}

export function defaultStateDir(driver: DriverChoice): string {
  return driver === 'darwin' ? '/Library/Application Support/wgctl/mac-agent' : '/var/lib/wgctl/mac-agent';
}

/** Exit code of a bad command line (wgctl's convention too); 1 is a failure at run time. */

/** --listen: unix:/path, ADDR:PORT or [V6]:PORT (port 0 = any free port). */
function listenAddress(value: string): string {
  const parsed = parseAddress(value, { allowPortZero: true });
  if (!parsed.ok) throw new InvalidArgumentError(`${parsed.reason} (e.g. ${DEFAULT_LISTEN})`);
  return value;
}

/** --metrics-listen: ADDR:PORT or [V6]:PORT (TCP: it is HTTPS). */
function metricsListenAddress(value: string): string {
  const parsed = parseAddress(value, { allowPortZero: true });
  if (!parsed.ok || parsed.address.kind !== 'tcp') throw new InvalidArgumentError(`${parsed.ok ? 'a TCP address is needed' : parsed.reason} (e.g. 192.168.64.1:9587)`);
  return value;
}

/** --health-interval: ms, 200 (tests) to 600000 (10 min). */
function healthInterval(value: string): number {
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 200 || Number(value) > 600_000) {
    throw new InvalidArgumentError('expected milliseconds from 200 to 600000');
  }
  return Number(value);
}

/** --roam-check-interval, --heal-check-interval: ms, 0 (off) or 200 (tests) to 600000 (10 min). */
function intervalOrOff(value: string): number {
  if (value === '0') return 0;
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 200 || Number(value) > 600_000) {
    throw new InvalidArgumentError('expected 0 (off) or milliseconds from 200 to 600000');
  }
  return Number(value);
}

/** --socket-group: a group name (POSIX portable characters) or a numeric gid. */
function groupName(value: string): string {
  if (!/^(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$/.test(value)) {
    throw new InvalidArgumentError('expected a group name (letters, digits, _ . -) or a numeric gid');
  }
  return value;
}

function addAgentOptions(command: Command): Command {
  return command
    .addOption(new Option('--driver <name>', 'host network driver').choices(['darwin', 'linux']).default(defaultDriver()))
    .option('--listen <address>', 'unix:PATH, or ADDR:PORT (TCP needs --tls-dir)', listenAddress, DEFAULT_LISTEN)
    .option('--tls-dir <dir>', 'mTLS material: ca.crt, mac-agent.crt, mac-agent.key (clients must be role controller)', tlsDirectory)
    .option('--state-dir <dir>', 'where the journal lives (default: /var/lib/wgctl/mac-agent; darwin: /Library/Application Support/wgctl/mac-agent)', absolutePath)
    .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default(process.env.WGCTL_LOG_LEVEL ?? 'info'))
    .option('--dns-resolv-conf <path>', 'linux: the resolv.conf to manage', absolutePath, '/etc/resolv.conf')
    .addOption(new Option('--dns-mode <mode>', 'linux: resolv.conf file, or systemd-resolved via resolvectl').choices(['resolv-conf', 'resolvectl']).default('resolv-conf'))
    .option('--socket-group <group>', 'group owning the unix socket (default: admin on darwin, root on linux)', groupName)
    .option('--health-interval <ms>', 'background health sampling interval (default: 15000)', healthInterval)
    .option('--roam-check-interval <ms>', 'while up, re-read the default route this often: a roam the routing monitor did not report is caught (0: never; default: 5000 on darwin, 30000 on linux)', intervalOrOff)
    .option('--heal-check-interval <ms>', 'while up, look at the kill switch this often and re-load it if it drifted (0: never; default: 1000 on darwin, PF has no events; 10000 on linux, besides nft monitor events)', intervalOrOff)
    .option(
      '--metrics-listen <addr:port>',
      'serve Prometheus metrics at https://ADDR:PORT/metrics (e.g. 192.168.64.1:9587): mTLS with the pairing CA, client certificate role monitor or controller; from the background sample (a scrape runs no command); needs --tls-dir; off unless given',
      metricsListenAddress,
    );
}

export function agentOptionsFrom(raw: Record<string, unknown>): AgentOptions {
  const driver = raw.driver as DriverChoice;
  const listen = String(raw.listen);
  if (!listen.startsWith('unix:') && !raw.tlsDir) {
    throw new InvalidArgumentError(`--listen ${listen} is TCP: give --tls-dir (mTLS is required off the unix socket)`);
  }
  if (raw.metricsListen && !raw.tlsDir) throw new InvalidArgumentError('--metrics-listen needs --tls-dir: metrics are served over HTTPS with client certificates only');
  return {
    driver,
    listen,
    tlsDir: raw.tlsDir as string | undefined,
    stateDir: (raw.stateDir as string | undefined) ?? defaultStateDir(driver),
    logLevel: String(raw.logLevel),
    dnsResolvConf: String(raw.dnsResolvConf),
    dnsMode: raw.dnsMode as AgentOptions['dnsMode'],
    socketGroup: (raw.socketGroup as string | undefined) ?? (driver === 'darwin' ? 'admin' : undefined),
    healthIntervalMs: raw.healthInterval as number | undefined,
    roamCheckIntervalMs: raw.roamCheckInterval as number | undefined,
    healCheckIntervalMs: raw.healCheckInterval as number | undefined,
    metricsListen: raw.metricsListen as string | undefined,
  };
}

export function buildProgram(): Command {
  const program = new Command('mac-agent')
    .description('wgctl host agent: every packet through the WireGuard VM — split routes, server pinning, kill switch, DNS, roaming')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  addAgentOptions(program).action(async (raw: Record<string, unknown>) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runAgent } = require('./run') as typeof import('./run');
    await runAgent(agentOptionsFrom(raw));
  });
  addAgentOptions(program.command('install').description('install as a system service (launchd on darwin, systemd on linux) and start it'))
    .option('--no-start', 'write the service definition only')
    .option('--unit-dir <dir>', 'linux: where the systemd unit goes', absolutePath, '/etc/systemd/system')
    .option(
      '--node <path>',
      'darwin: the node launchd runs (default: this one; a Homebrew Cellar path becomes its stable link; not under a home folder, /Volumes or Desktop/Documents/Downloads)',
      absolutePath,
    )
    .option('--allow-untrusted-program', 'install even when node or the agent script could be replaced by a non-root user (refused otherwise; warned at every start)')
    .action(async (raw: Record<string, unknown>) => {
      const options = agentOptionsFrom(raw);
      if (raw.node !== undefined && options.driver !== 'darwin') throw new InvalidArgumentError('--node is for launchd (--driver darwin); the systemd unit runs this node');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { installService } = require('./run') as typeof import('./run');
      await installService(options, {
        start: raw.start !== false,
        unitDir: raw.unitDir as string,
        node: raw.node as string | undefined,
        allowUntrustedProgram: raw.allowUntrustedProgram === true,
      });
    });
  addAgentOptions(program.command('uninstall').description('stop the service, undo its routes/kill switch/DNS (from the journal), remove it'))
    .option('--unit-dir <dir>', 'linux: where the systemd unit is', absolutePath, '/etc/systemd/system')
    .action(async (raw: Record<string, unknown>) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { uninstallService } = require('./run') as typeof import('./run');
      await uninstallService(agentOptionsFrom(raw), { unitDir: raw.unitDir as string });
    });
  return program;
}

/**
 * Runs the command line; returns (and sets as process.exitCode) 0, 1 (failed at run time) or
 * 2 (bad command line: the message names the flag). Never calls process.exit itself.
 */
export async function main(argv: string[] = process.argv, output: CliOutput = processOutput): Promise<number> {
  return runProgram('mac-agent', buildProgram(), argv, output);
}
