/**
 * The command-line surface. Only commander is loaded here: every action imports its command
 * module when it runs, so `wgctl --help` never loads gRPC, listr2, the transport or the
 * parsers (esbuild keeps those modules as lazy inits in the bundle).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { CommandContext, GlobalOptions } from './command-context';
import { EXIT, errorMessage, isCliError } from './errors';
import { HEALTH_EXIT, HEALTH_EXIT_HELP } from './health-exit';
import type { CliIo } from './io';
import { commands } from './load-commands';

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'];

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 86_400) {
    throw new InvalidArgumentError('expected a number of seconds between 0 and 86400, e.g. 30 or 0.5');
  }
  return n;
}

function positiveInteger(max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
      throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    }
    return Number(value);
  };
}

function port(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new InvalidArgumentError('expected a port number from 1 to 65535');
  }
  return Number(value);
}

/** A gRPC service name as grpc.health.v1 knows it ('' = the whole server). */
function serviceName(value: string): string {
  if (value !== '' && !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(value)) {
    throw new InvalidArgumentError("expected a fully qualified service name such as wgctl.v1.VmAgent, or '' for the whole server");
  }
  return value;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

const EXIT_CODES_HELP = `
Exit codes:
  0  success (status: healthy; verify: PASS)
  1  the operation failed (status: degraded; verify: FAIL)
  2  bad command-line input or config (status: down or an agent unreachable)
  3  down: everything of ours was removed, but settings whose previous values only the lost
     journal knew were not restored (listed on stderr)
  health has grpc_health_probe's codes instead: see \`wgctl health --help\`.

Config: --config FILE, else $WGCTL_CONFIG, else ~/.config/wgctl/config.json (written by \`wgctl init\`).`;

type Action<O> = (ctx: CommandContext, options: O, ...args: string[]) => Promise<number>;

/**
 * The whole command tree. Over 80 lines: one declaration per command and flag, kept in one place
 * so `--help` and the parsers read as the README's table does; each action only loads its module.
 */
function buildProgram(io: CliIo, setExit: (code: number) => void, version: string): Command {
  const program = new Command('wgctl');
  program
    .description('Send every packet of this Mac through a WireGuard tunnel in a Linux VM: fail-closed, leak-free, observable.')
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .addOption(new Option('-c, --config <file>', 'config file (default: $WGCTL_CONFIG or ~/.config/wgctl/config.json)'))
    .option('--json', 'machine-readable JSON on stdout instead of text')
    .addOption(new Option('--log-level <level>', 'controller log level, logs go to stderr as JSON lines').choices(LOG_LEVELS))
    .addOption(new Option('--timeout <seconds>', 'deadline of each agent call (default: 10 for status/health, 120 for up/down/plan)').argParser(positiveSeconds))
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  /** Wraps a lazily loaded command: (ctx, options, ...positional) → exit code. */
  function run<O>(load: () => Promise<Action<O>>) {
    return async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const options = args[args.length - 2] as O;
      const positional = args.slice(0, -2) as string[];
      const all = command.optsWithGlobals() as GlobalOptions & Record<string, unknown>;
      const ctx: CommandContext = {
        io,
        global: { config: all.config, json: Boolean(all.json), logLevel: all.logLevel, timeout: all.timeout },
      };
      const action = await load();
      setExit(await action(ctx, options, ...positional));
    };
  }

  program
    .command('init')
    .description('write the config and a pairing PKI (CA + certificates for controller, vm-agent, mac-agent, monitor)')
    .option('--dir <dir>', 'directory for config.json and tls/ (default: ~/.config/wgctl)')
    .option('--vm-address <ip>', "the VM's address on the Mac-VM network (where vm-agent listens; next hop of the Mac's routes)")
    .option('--vm-address6 <ip>', "the VM's IPv6 on the Mac-VM network: with it, ipv6 auto/route send the Mac's IPv6 through the tunnel")
    .addOption(new Option('--vm-port <port>', 'vm-agent TCP port (default: 7443)').argParser(port))
    .option('--mac-agent <address>', 'mac-agent address: unix:PATH or ADDR:PORT (default: unix:/var/run/wgctl/mac-agent.sock)')
    .option('--dns <ip>', 'resolver reached through the tunnel (repeatable or comma-separated; default: the DNS of the VM\'s wg config)', collect)
    .addOption(new Option('--ipv6 <mode>', 'IPv6 on the Mac: route sends it through the tunnel (needs --vm-address6, an IPv6 Address in the VM\'s wg config and IPv6 on the Mac\'s vnic), auto routes when all are there else blocks, block drops it (default: auto)').choices(['auto', 'route', 'block']))
    .option('--exclude <cidr>', 'a destination the tunnel must not carry (a network that checks the source, a local service): routed via the Mac\'s own gateway, IN CLEAR, revealing the real address to it (repeatable or comma-separated)', collect)
    .option('--allow-lan', 'with the kill switch on, reach the uplink\'s directly connected private subnets and mDNS (printers, NAS, AirPlay), both ways; DNS still goes through the tunnel. Keep it off on networks you do not trust')
    .addOption(new Option('--handshake-timeout <seconds>', 'how long vm-agent waits for the first handshake').argParser(positiveSeconds))
    .option('--portal-probe-url <url>', 'the plain-http URL `wgctl up` asks to tell a captive portal when no handshake comes (config portal.probeUrl; default http://captive.apple.com/hotspot-detect.html)')
    .option('--force', 'overwrite an existing config (the PKI is kept; use --rotate to renew it)')
    .option('--rotate', 'renew every certificate and key under the existing CA (config unchanged)')
    .option('--rotate-ca', 'with --rotate: make a new CA too (every agent needs the new ca.crt)')
    .action(run(async () => commands('init').initCommand));

  program
    .command('up')
    .description('VM up (handshake awaited; the Mac made fail-closed meanwhile: kill switch, endpoint pinning), then the Mac: routes via the VM, DNS')
    .option('--dry-run', 'show the plan instead (same as `wgctl plan`)')
    .option('--mac-source <ip>', "the Mac's address facing the VM, when the mac-agent cannot tell")
    .option('--exclude <cidr>', 'for this run, besides the config\'s: a destination reached through the Mac\'s own gateway, in clear (repeatable)', collect)
    .option('--allow-lan', 'for this run: the kill switch lets the uplink\'s private subnets and mDNS through (printers, NAS, AirPlay); LAN hosts can reach the Mac')
    .option('--portal-probe-url <url>', 'when no handshake comes: the plain-http URL asked (after the rollback) to tell a captive portal (default: the config\'s portal.probeUrl, else http://captive.apple.com/hotspot-detect.html)')
    .action(run(async () => commands('up').upCommand));

  program
    .command('portal')
    .description('sign in to a captive portal: up, with a bounded window (default 120 s) in which the Mac\'s web traffic and DNS pass the kill switch UNPROTECTED; closes by itself on the handshake')
    .addOption(new Option('--duration <seconds>', 'longest the window stays open (1..300, default 120)').argParser(positiveSeconds))
    .option('--mac-source <ip>', "the Mac's address facing the VM, when the mac-agent cannot tell")
    .option('--end', 'close an open sign-in window now (from another terminal): the Mac stays fail-closed')
    .action(run(async () => commands('portal').portalCommand));

  program
    .command('down')
    .description('Mac first, then the VM; an unreachable agent does not stop the other side')
    .option('--dry-run', 'ask both agents what they would remove, change nothing')
    .option('--force', 'vm-agent: run wg-quick down even if it did not bring the interface up')
    .action(run(async () => commands('down').downCommand));

  program
    .command('status')
    .description('both agents side by side: handshake, transfer, endpoint, routes, IPv6, kill switch, DNS, gateway, uplink')
    .addOption(new Option('--watch [seconds]', 'refresh every SECONDS (default 2) until Ctrl-C').argParser(positiveSeconds))
    .action(run(async () => commands('status').statusCommand));

  program
    .command('verify')
    .description('prove nothing leaks: capture on the Mac uplink and the VM tunnel while probing through the tunnel')
    .option('--target <ip>', 'probe target (default: the first DNS server of the wgctl config, else of the VM\'s wg-quick config)')
    .addOption(new Option('--duration <seconds>', 'capture duration (default: 5)').argParser(positiveSeconds))
    .addOption(new Option('--count <n>', 'probe packets (default: 3)').argParser(positiveInteger(100)))
    .action(run(async () => commands('verify').verifyCommand));

  program
    .command('plan')
    .description('every command both agents would run for `up`, in order, without running any')
    .option('--mac-source <ip>', "the Mac's address facing the VM, when the mac-agent cannot tell")
    .option('--exclude <cidr>', 'as for up: an excluded destination for this run (repeatable)', collect)
    .option('--allow-lan', 'as for up: let the uplink\'s private subnets and mDNS through for this run')
    .action(run(async () => commands('plan').planCommand));

  program
    .command('health')
    .description("grpc.health.v1 probe for cron/launchd/monitoring, with grpc_health_probe's exit codes: 0 SERVING, 1 invalid arguments, 2 connection failure, 3 RPC failure, 4 not serving")
    .addOption(new Option('--agent <which>', 'which agent to probe').choices(['vm', 'mac', 'both']).default('both'))
    .option('--service <name>', "service name to check ('' = the whole server)", serviceName, '')
    .addOption(new Option('--cert <role>', 'client certificate to use (default: monitor if present, else controller)').choices(['monitor', 'controller']))
    .addOption(new Option('--connect-timeout <seconds>', 'longest wait for a connection, before the Check (whose deadline is --timeout); default: the same as --timeout, 10').argParser(positiveSeconds))
    .addHelpText('after', HEALTH_EXIT_HELP)
    .action(run(async () => commands('health').healthCommand));

  program
    .command('metrics')
    .description("both agents' status as Prometheus metrics for node_exporter's textfile collector: for a Mac nothing scrapes, run it from launchd or cron (e.g. every minute)")
    .requiredOption('--textfile <dir>', "node_exporter's --collector.textfile.directory: DIR/wgctl.prom is replaced whole (temp file in DIR, fsync, rename; mode 0644)")
    .addHelpText(
      'after',
      `
The metrics are those the agents serve at https://ADDR:PORT/metrics (--metrics-listen), plus
wgctl_agent_reachable{agent}: 0 for an agent the controller could not reach (and no other
series of it). Exit 0 when the file was written (also with an agent unreachable: the reason
goes to stderr), 2 when DIR is missing or not a directory, 1 when the file cannot be written.`,
    )
    .action(run(async () => commands('metrics').metricsCommand));

  program
    .command('menubar')
    .description('the menu bar: what the xbar/SwiftBar plugin tools/menubar/wgctl.30s.sh shows (title, reasons, up/down/portal actions); exits 0 even when the status cannot be had, so the menu says why')
    .option('--status-json <file>', 'render this `wgctl status --json` output (FILE, or - for stdin) instead of asking the agents')
    .action(run(async () => commands('menubar').menubarCommand));

  const debug = program.command('debug').description('tools for troubleshooting');
  debug
    .command('parse')
    .description('print the parsed JSON of a saved command output (FILE, or - for stdin)')
    .argument('<kind>', 'what the output is (see the list below)')
    .argument('<file>', 'file with the saved output, or - for stdin')
    .addHelpText('after', () => `\n${commands('debug-parse').kindsHelp()}`)
    .action(run(async () => commands('debug-parse').debugParseCommand));

  for (const command of [program, ...program.commands, ...debug.commands]) {
    command.exitOverride().configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  }
  return program;
}

/**
 * The subcommand `argv` names (its first operand past the program's options), whether or not
 * parsing got that far: a bad global flag before `health` is still a usage error of health.
 */
function subcommandOf(program: Command, argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) return arg;
    const flag = arg.split('=')[0];
    const option = program.options.find((o) => o.long === flag || o.short === flag);
    if (option?.required && !arg.includes('=')) i += 1; // its value
  }
  return undefined;
}

/** Runs the CLI in-process; returns the exit code (never calls process.exit). */
export async function runCli(argv: string[], io: CliIo, version = '0.0.0-dev'): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram(io, (code) => (exitCode = code), version);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
      // commander already printed the message (naming the flag) on stderr.
      return subcommandOf(program, argv) === 'health' ? HEALTH_EXIT.invalidArguments : EXIT.usage;
    }
    if (isCliError(error)) {
      io.stderr.write(`wgctl: ${error.message}\n`);
      return error.exitCode;
    }
    const debug = (program.opts().logLevel as string | undefined) === 'debug';
    io.stderr.write(`wgctl: ${debug && error instanceof Error && error.stack ? error.stack : errorMessage(error)}\n`);
    return EXIT.failed;
  }
}
