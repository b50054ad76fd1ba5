/**
 * vm-agent's command line. Parsing only: gRPC, the engine and the transport are loaded inside
 * the actions, so `--help` stays fast.
 *
 *   vm-agent --listen ADDR:PORT --tls-dir DIR --wg-config FILE [--state-dir DIR] [--log-level L]
 *            [--insecure-loopback-dev] [--health-interval MS] [--handshake-threshold S]
 *            [--handshake-timeout MS] [--wg-method auto|wg-quick|systemd] [--heal-check-interval MS]
 *            [--metrics-listen ADDR:PORT]
 *   vm-agent install   [the same options] [--prefix DIR] [--root DIR] [--no-enable] [--allow-untrusted-program]
 *   vm-agent uninstall [--wg-config FILE] [--state-dir DIR] [--prefix DIR] [--root DIR] [--keep-network]
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { absolutePath, processOutput, runProgram, tlsDirectory, type CliOutput } from '@wgctl/cli';
import { isInterfaceName, isLoopbackHost, parseAddress } from '@wgctl/config';
import { wgQuickInterfaceFromPath } from '@wgctl/parsers';
import { agentArgs, type AgentOptions } from './options';
import { DEFAULT_STATE_DIR } from './install/unit';

const DEFAULT_WG_CONFIG = '/etc/wireguard/wg0.conf';

function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`expected an integer ${min}–${max}`);
    }
    return Number(value);
  };
}

/** Exit code of a bad command line (wgctl's convention too); 1 is a failure at run time. */

/** --listen: ADDR:PORT, [V6]:PORT (port 0 = any free port) or unix:/path. */
function listenAddress(value: string): string {
  const parsed = parseAddress(value, { allowPortZero: true });
  if (!parsed.ok) throw new InvalidArgumentError(`${parsed.reason} (e.g. 192.168.64.2:7443)`);
  return value;
}

/** --metrics-listen: ADDR:PORT or [V6]:PORT (TCP: it is HTTPS). */
function metricsListenAddress(value: string): string {
  const parsed = parseAddress(value, { allowPortZero: true });
  if (!parsed.ok || parsed.address.kind !== 'tcp') throw new InvalidArgumentError(`${parsed.ok ? 'a TCP address is needed' : parsed.reason} (e.g. 192.168.64.2:9586)`);
  return value;
}

/** --wg-config: wg-quick takes the interface name from the file name, so it must make one. */
function wgConfigPath(value: string): string {
  const iface = wgQuickInterfaceFromPath(value);
  if (!iface || !isInterfaceName(iface)) {
    throw new InvalidArgumentError('the file must be named <interface>.conf, the interface 1–15 characters of a-z A-Z 0-9 _ = + . - not starting with - (e.g. /etc/wireguard/wg0.conf)');
  }
  return value;
}

function addAgentOptions(command: Command): Command {
  return command
    .option('--listen <addr:port>', 'address to serve gRPC on (only this one), e.g. 192.168.64.2:7443', listenAddress)
    .option('--tls-dir <dir>', 'mTLS material: ca.crt, vm-agent.crt, vm-agent.key; clients need a certificate of the pairing CA (role controller; health also monitor)', tlsDirectory)
    .option('--wg-config <file>', 'the wg-quick config the agent manages', wgConfigPath, DEFAULT_WG_CONFIG)
    .option('--state-dir <dir>', 'where the journal of applied changes lives', absolutePath, process.env.STATE_DIRECTORY?.split(':')[0] ?? DEFAULT_STATE_DIR)
    .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default(process.env.WGCTL_LOG_LEVEL ?? 'info'))
    .option('--insecure-loopback-dev', 'DEVELOPMENT ONLY: plaintext gRPC, allowed only on 127.0.0.1/::1', false)
    .option('--health-interval <ms>', 'background health sampling interval (Status answers from it)', integer(200, 600_000), 15_000)
    .option('--handshake-threshold <s>', 'a handshake older than this is NOT_SERVING', integer(1, 86_400), 180)
    .option('--handshake-timeout <ms>', 'how long Up waits for a handshake by default', integer(100, 300_000), 20_000)
    .option(
      '--heal-check-interval <ms>',
      'while up, put back what Up applied when removed: forwarding sysctls read this often, the rules on every nft event (and every check with iptables-legacy); 0: never',
      (value: string) => (value === '0' ? 0 : integer(100, 60_000)(value)),
      1_000,
    )
    .option(
      '--metrics-listen <addr:port>',
      'serve Prometheus metrics at https://ADDR:PORT/metrics (e.g. 192.168.64.2:9586): mTLS with the pairing CA, client certificate role monitor or controller; from the background sample (a scrape runs no command); needs --tls-dir; off unless given',
      metricsListenAddress,
    )
    .addOption(
      new Option('--wg-method <method>', 'how the interface is brought up: systemd (wg-quick@ / systemd-run) when systemd runs the system')
        .choices(['auto', 'wg-quick', 'systemd'])
        .default('auto'),
    );
}

export function agentOptionsFrom(raw: Record<string, unknown>): AgentOptions {
  if (!raw.listen) throw new InvalidArgumentError('--listen ADDR:PORT is required');
  const insecure = raw.insecureLoopbackDev === true;
  if (!insecure && !raw.tlsDir) throw new InvalidArgumentError('--tls-dir is required (mTLS); --insecure-loopback-dev is for development on loopback only');
  if (insecure && raw.tlsDir) throw new InvalidArgumentError('give either --tls-dir or --insecure-loopback-dev, not both');
  if (raw.metricsListen && !raw.tlsDir) throw new InvalidArgumentError('--metrics-listen needs --tls-dir: metrics are served over HTTPS with client certificates only (not with --insecure-loopback-dev)');
  if (insecure) {
    const parsed = parseAddress(String(raw.listen), { allowPortZero: true });
    if (!parsed.ok || parsed.address.kind !== 'tcp' || !isLoopbackHost(parsed.address.host)) {
      throw new InvalidArgumentError(`--insecure-loopback-dev: refusing plaintext on --listen ${String(raw.listen)}; only 127.0.0.1, ::1 or localhost`);
    }
  }
  return {
    listen: String(raw.listen),
    tlsDir: raw.tlsDir as string | undefined,
    wgConfig: String(raw.wgConfig),
    stateDir: String(raw.stateDir),
    logLevel: String(raw.logLevel),
    insecureLoopbackDev: insecure,
    healthIntervalMs: Number(raw.healthInterval),
    handshakeThresholdS: Number(raw.handshakeThreshold),
    handshakeTimeoutMs: Number(raw.handshakeTimeout),
    wgMethod: raw.wgMethod as AgentOptions['wgMethod'],
    healCheckIntervalMs: Number(raw.healCheckInterval),
    metricsListen: raw.metricsListen as string | undefined,
  };
}

export function buildProgram(): Command {
  const program = new Command('vm-agent')
    .description(
      'wgctl VM agent: brings up the wg-quick tunnel, forwards and SNATs the Mac\'s traffic into it (kill switch included), and reports health over mTLS gRPC',
    )
    .showHelpAfterError('(run with --help for usage)')
    // Options before a subcommand belong to the program, after it to the subcommand.
    .enablePositionalOptions();
  addAgentOptions(program).action(async (raw: Record<string, unknown>) => {
    const options = agentOptionsFrom(raw);
    const { runAgent } = await import('./run');
    await runAgent(options);
  });

  addAgentOptions(program.command('install').description('install the program and its systemd unit, enable and start it'))
    .option('--prefix <dir>', 'program goes to PREFIX/lib/wgctl/vm-agent.js', absolutePath, '/usr/local')
    .option('--root <dir>', 'install into this root instead of / (no systemctl)', absolutePath, '/')
    .option('--no-enable', 'do not enable/start the unit')
    .option('--allow-untrusted-program', 'install even when node or the program directory could be changed by a non-root user (refused otherwise; warned at every start)')
    .action(async (raw: Record<string, unknown>) => {
      const options = agentOptionsFrom(raw);
      const [{ install }, { ExecRunner }] = await Promise.all([import('./install/install'), import('@wgctl/runner')]);
      await install({
        agentArgs: agentArgs(options),
        bundlePath: process.argv[1],
        nodePath: process.execPath,
        prefix: String(raw.prefix),
        root: String(raw.root),
        enable: raw.enable !== false,
        allowUntrustedProgram: raw.allowUntrustedProgram === true,
        runner: new ExecRunner(),
        log: (line) => process.stdout.write(`${line}\n`),
      });
    });

  program
    .command('uninstall')
    .description('stop and disable the unit, take down what the agent applied (its journal), remove the unit and the program')
    .option('--wg-config <file>', 'the wg-quick config the agent managed', wgConfigPath, DEFAULT_WG_CONFIG)
    .option('--state-dir <dir>', 'the agent\'s journal directory', absolutePath, DEFAULT_STATE_DIR)
    .option('--prefix <dir>', 'where install put the program', absolutePath, '/usr/local')
    .option('--root <dir>', 'uninstall from this root instead of / (no systemctl, no Down)', absolutePath, '/')
    .option('--keep-network', 'leave the tunnel, forwarding and rules as they are', false)
    .action(async (raw: Record<string, unknown>) => {
      const { uninstallAgent } = await import('./run');
      await uninstallAgent({
        wgConfig: String(raw.wgConfig),
        stateDir: String(raw.stateDir),
        prefix: String(raw.prefix),
        root: String(raw.root),
        keepNetwork: raw.keepNetwork === true,
      });
    });
  return program;
}

/**
 * Runs the command line; returns (and sets as process.exitCode) 0, 1 (failed at run time) or
 * 2 (bad command line: the message names the flag). Never calls process.exit itself.
 */
export async function main(argv: string[] = process.argv, output: CliOutput = processOutput): Promise<number> {
  return runProgram('vm-agent', buildProgram(), argv, output);
}
