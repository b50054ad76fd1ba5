/**
 * The lab's command line: `node tools/lab/run.mjs <command>` (run.mjs bundles this file).
 *   up     [--prefix P] [--dir D] [--json]   build the lab (removing leftovers first)
 *   down   [--prefix P] [--dir D]            remove everything with that prefix
 *   status [--prefix P] [--json]             what exists now
 *   roam   CAFE [--prefix P]                 move the Mac to cafe1 / cafe2
 *   exec   NS [--prefix P] -- CMD…           run a command inside a lab namespace
 *   portal on|off [--cafe C] [--prefix P]    a captive portal on a café's router (default: the Mac's)
 */
import { Command, InvalidArgumentError } from 'commander';
import { CAFE_NAMES, DEFAULT_PREFIX, createLab, destroyLab, labExec, labStatus, readLab, roam, startCaptivePortal, stopCaptivePortal, type CafeName, type Lab } from './src';

function summary(lab: Lab): string {
  const c = lab.cafes[lab.state.macCafe];
  return [
    `lab '${lab.prefix}' (${lab.paths.labJson})`,
    `  namespaces: ${Object.values(lab.ns).join(' ')}`,
    `  mac  ${lab.mac.ns}: uplink ${lab.mac.uplink} ${c.client.ipv4}/${c.client.prefix4} ${c.client.ipv6}/${c.client.prefix6} via ${c.client.gateway4} (${lab.state.macCafe}); vnic ${lab.mac.vnic.interface} ${lab.mac.vnic.ipv4}/${lab.mac.vnic.prefix4}`,
    `  vm   ${lab.vm.ns}: ${lab.vm.eth.interface} ${lab.vm.eth.ipv4}/${lab.vm.eth.prefix4} via ${lab.vm.eth.gateway4}; wg-quick config ${lab.vm.wireguard.configPath} (${lab.vm.wireguard.address}/${lab.vm.wireguard.prefix})`,
    `  srv  ${lab.srv.ns}: ${lab.srv.wan.ipv4}, WireGuard ${lab.srv.wireguard.interface} ${lab.srv.wireguard.address}/${lab.srv.wireguard.prefix} port ${lab.srv.wireguard.listenPort}, DNS ${lab.srv.dns} (tunnel only)`,
    `  web  ${lab.web.ns}: ${lab.web.url4} ${lab.web.url6} (${lab.web.hostname})`,
    `  cafes: cafe1 ${lab.cafes.cafe1.lan.subnet4} gw ${lab.cafes.cafe1.lan.ipv4}, cafe2 ${lab.cafes.cafe2.lan.subnet4} gw ${lab.cafes.cafe2.lan.ipv4}`,
  ].join('\n');
}

function cafeArg(value: string): CafeName {
  if (!(CAFE_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${CAFE_NAMES.join(', ')}`);
  return value as CafeName;
}

/** The lab's command tree. Over 80 lines: one declaration per command and flag, kept together as `--help` shows them. */
async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command('lab').description('wgctl network-namespace lab').showHelpAfterError();

  program
    .command('up')
    .option('--prefix <prefix>', 'name prefix of every namespace and interface', DEFAULT_PREFIX)
    .option('--dir <dir>', 'lab directory (default /tmp/wgctl-lab-<prefix>)')
    .option('--json', 'print lab.json instead of a summary')
    .action(async (opts: { prefix: string; dir?: string; json?: boolean }) => {
      // Ctrl-C stops the build between commands and removes what was built; a second one
      // removes the lab at once.
      const abort = new AbortController();
      const onSignal = () => {
        if (!abort.signal.aborted) {
          process.stderr.write(`\ninterrupted: removing lab '${opts.prefix}'…\n`);
          abort.abort(new Error('interrupted'));
          return;
        }
        void destroyLab(opts.prefix, { dir: opts.dir }).finally(() => process.exit(130));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let lab: Lab;
      try {
        lab = await createLab({ prefix: opts.prefix, dir: opts.dir, signal: abort.signal, log: (line) => process.stderr.write(`  ${line}\n`) });
      } catch (error) {
        if (abort.signal.aborted) process.exit(130);
        throw error;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.stdout.write(opts.json ? JSON.stringify(lab, null, 2) + '\n' : summary(lab) + '\n');
    });

  program
    .command('down')
    .option('--prefix <prefix>', 'lab prefix', DEFAULT_PREFIX)
    .option('--dir <dir>', 'lab directory (default: the one recorded at `up`)')
    .action(async (opts: { prefix: string; dir?: string }) => {
      const report = await destroyLab(opts.prefix, { dir: opts.dir });
      process.stdout.write(
        `lab '${opts.prefix}' removed: ${report.namespaces.length} namespace(s), ${report.pids.length} process(es), ` +
          `${report.sockets.length} stale socket(s), ${report.etcNetns.length} /etc/netns dir(s)\n`,
      );
    });

  program
    .command('status')
    .option('--prefix <prefix>', 'lab prefix', DEFAULT_PREFIX)
    .option('--json', 'machine-readable')
    .action(async (opts: { prefix: string; json?: boolean }) => {
      const status = await labStatus(opts.prefix);
      if (opts.json) {
        process.stdout.write(JSON.stringify(status, null, 2) + '\n');
        return;
      }
      if (!status.namespaces.length) {
        process.stdout.write(`lab '${opts.prefix}': not up\n`);
        exitCode = 3;
        return;
      }
      process.stdout.write(summary(readLab(opts.prefix)) + '\n');
      process.stdout.write(`  the Mac is plugged into: ${status.macCafe ?? 'nothing'}\n`);
      for (const p of status.processes) process.stdout.write(`  ${p.name.padEnd(10)} ${p.pid === null ? 'NOT RUNNING' : `pid ${p.pid}`}  (${p.ns}, log ${p.logFile})\n`);
      for (const w of status.wireguardGo) process.stdout.write(`  wireguard-go ${w.interface} pid ${w.pid}\n`);
    });

  program
    .command('roam')
    .argument('<cafe>', CAFE_NAMES.join(' | '), cafeArg)
    .option('--prefix <prefix>', 'lab prefix', DEFAULT_PREFIX)
    .option('--offline-ms <ms>', 'stay unplugged this long', (v) => Number(v), 0)
    .action(async (cafe: CafeName, opts: { prefix: string; offlineMs: number }) => {
      const lab = await roam(readLab(opts.prefix), cafe, { offlineMs: opts.offlineMs });
      const c = lab.cafes[cafe].client;
      process.stdout.write(`the Mac is now on ${cafe}: ${c.ipv4} via ${c.gateway4}, ${c.ipv6} via ${c.gateway6}\n`);
    });

  program
    .command('exec')
    .argument('<ns>', 'namespace role (inet, cafe1, cafe2, mac, vm, srv, web) or full name')
    .argument('<command...>', 'command and arguments (after --)')
    .option('--prefix <prefix>', 'lab prefix', DEFAULT_PREFIX)
    .description('run a non-interactive command in a lab namespace (interactive: ip netns exec <ns> bash)')
    .action(async (ns: string, command: string[], opts: { prefix: string }) => {
      const r = await labExec(readLab(opts.prefix), ns, command, { allowFailure: true, timeoutMs: 10 * 60_000 });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      exitCode = r.exitCode < 0 ? 1 : r.exitCode;
    });

  program
    .command('portal')
    .argument('<state>', 'on | off')
    .option('--cafe <cafe>', CAFE_NAMES.join(' | '), cafeArg)
    .option('--prefix <prefix>', 'lab prefix', DEFAULT_PREFIX)
    .description("a captive portal on a café's router: it forwards nothing from the LAN until a client POSTs http://<router>/login")
    .action(async (state: string, opts: { cafe?: CafeName; prefix: string }) => {
      const lab = readLab(opts.prefix);
      const cafe = opts.cafe ?? lab.state.macCafe;
      if (state === 'off') {
        await stopCaptivePortal(lab, cafe);
        process.stdout.write(`${cafe}: captive portal removed\n`);
        return;
      }
      if (state !== 'on') throw new InvalidArgumentError(`portal: expected on or off, got "${state}"`);
      const portal = await startCaptivePortal(lab, { cafe });
      process.stdout.write(`${cafe}: captive portal on; sign in with: POST ${portal.loginUrl}\n`);
    });

  await program.parseAsync(argv, { from: 'user' });
  return exitCode;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`lab: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
