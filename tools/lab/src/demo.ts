/**
 * The demo (README command #1, `npm run demo`): the whole product in the namespace lab, as a
 * user would run it, with every step's output shown and checked:
 *
 *   lab up → wgctl init → the VM's certificates copied (init's next steps) → both agents
 *   started from the built bundles with mTLS → the web host sees the coffee shop →
 *   wgctl up → wgctl status → both agents' /metrics scraped with the monitor certificate →
 *   wgctl verify (IPv4, then IPv6) → the web host sees the WireGuard server →
 *   wgctl down → the web host sees the coffee shop again →
 *   the café gets a captive portal → wgctl up fails and names it → wgctl portal (background) →
 *   status shows the sign-in window → sign in from the Mac (HTTP POST) → the window closes on
 *   the handshake → wgctl verify → down, portal off → lab down
 *
 * Exit 0 only if every step passed. Whatever happens (a failed step, Ctrl-C), the tunnel is
 * taken down and the lab removed, unless --keep. Usage (root):
 *   node tools/lab/demo.mjs [--prefix P] [--keep]
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { ExecRunner, spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { eventually } from '../../e2e/observe';
import { assertBuilt, bundlePath, REPO_ROOT, stackFor, type Stack } from '../../e2e/stack';
import { metricsAgentArgs, metricsListen, scrapeAgentInLab } from '../../monitoring/lab-metrics';
import { agentLogPath, type AgentName } from './agents';
import { createLab, destroyLab, labHttpGet, labNamespaces } from './lab';
import { inNamespace } from './plan';
import { startCaptivePortal, type CaptivePortal } from './portal';
import { validatePrefix, type Lab } from './topology';

const DEFAULT_PREFIX = 'wgdemo';
/**
 * How long the vm-agent waits for a first handshake (wgctl init --handshake-timeout): short, so
 * that `wgctl up` behind the portal fails quickly; the lab's handshakes take milliseconds.
 */
const HANDSHAKE_TIMEOUT_S = 3;
/** The longest the sign-in window may stay open; signing in closes it at the next handshake (≤ 5 s). */
const PORTAL_WINDOW_S = 60;

interface Options {
  prefix: string;
  keep: boolean;
}

interface StepRecord {
  title: string;
  ok: boolean;
  ms: number;
  note?: string;
}

class StepFailed extends Error {}

interface WgctlRun {
  code: number;
  /** stdout and stderr lines, in the order they came. */
  output: string;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { prefix: DEFAULT_PREFIX, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--prefix' && argv[i + 1]) options.prefix = argv[++i];
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: node tools/lab/demo.mjs [--prefix P] [--keep]   (as root)\n');
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}' (usage: node tools/lab/demo.mjs [--prefix P] [--keep])`);
  }
  validatePrefix(options.prefix);
  return options;
}

const out = (text = '') => process.stdout.write(`${text}\n`);
const indent = (text: string, by = '    ') =>
  text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `${by}${l}`)
    .join('\n');
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const shown = (path: string) => (path.startsWith(REPO_ROOT) ? relative(REPO_ROOT, path) : path);

export async function runDemo(argv: string[]): Promise<number> {
  const options = parseArgs(argv);
  if (process.getuid?.() !== 0) {
    out('The demo builds network namespaces, veth links and WireGuard interfaces: run it as root (sudo npm run demo).');
    return 2;
  }
  assertBuilt();
  return new Demo(options).run();
}

/** One demo run: its steps in order (each group a method), then the cleanup and the summary. */
class Demo {
  private readonly started = Date.now();
  private readonly steps: StepRecord[] = [];
  private readonly runner = new ExecRunner();
  private labUp: Lab | undefined;
  private stackUp: Stack | undefined;
  /** From `wgctl up` on: the cleanup runs `wgctl down`. */
  private tunnelUp = false;
  private portal: CaptivePortal | undefined;
  /** `wgctl portal`, left running in the background by its step. */
  private portalRun: ReturnType<Demo['startWgctl']> | undefined;
  private interrupted = false;
  private readonly onSignal = () => {
    this.interrupted = true;
    out('\n(interrupted: cleaning up)');
  };

  constructor(private readonly options: Options) {}

  private get lab(): Lab {
    if (!this.labUp) throw new StepFailed('the lab is not up');
    return this.labUp;
  }

  private get stack(): Stack {
    if (!this.stackUp) throw new StepFailed('the stack is not set up');
    return this.stackUp;
  }

  async run(): Promise<number> {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    out(`wgctl demo: every packet of a "Mac" through a WireGuard tunnel in a "Linux VM" — network namespaces on this machine, lab prefix "${this.options.prefix}".`);
    out('[mac] / [vm]: the command runs in that namespace (ip netns exec …), as it would on that machine.');
    let failed = false;
    try {
      await this.setUp();
      await this.throughTheTunnel();
      await this.atThePortal();
      await this.planAnExclusion();
    } catch (error) {
      failed = true;
      if (!(error instanceof StepFailed)) out(`\nunexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (this.labUp) showAgentLogs(this.labUp);
    }
    if (!(await this.cleanUp())) failed = true;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    return this.summary(failed);
  }

  /** Runs one titled step; a failed check throws StepFailed (the rest is skipped, cleanup runs). */
  private async step(title: string, body: () => Promise<unknown>, options: { evenIfInterrupted?: boolean } = {}): Promise<void> {
    if (this.interrupted && !options.evenIfInterrupted) throw new StepFailed('interrupted');
    out(`\n━━ ${this.steps.length + 1}. ${title}`);
    const t = Date.now();
    try {
      const result = await body();
      const note = typeof result === 'string' ? result : undefined; // a step's note: what it proved
      this.steps.push({ title, ok: true, ms: Date.now() - t, note });
      out(`  ✓ ${title} (${seconds(Date.now() - t)})${note ? ` — ${note}` : ''}`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.steps.push({ title, ok: false, ms: Date.now() - t, note: message.split('\n')[0] });
      out(`  ✗ ${title} FAILED: ${message}`);
      throw error instanceof StepFailed ? error : new StepFailed(message);
    }
  }

  /**
   * Starts `wgctl ARGS` in the Mac's namespace, output streamed as the user would see it (lines
   * of a command left running in the background marked with `tag`) and kept for the checks.
   */
  private startWgctl(args: string[], options: { tag?: string; shows?: (line: string) => boolean } = {}): { process: StreamingProcess; done: Promise<WgctlRun> } {
    const tag = options.tag ?? '';
    out(`  [mac] $ wgctl ${args.join(' ')}${tag ? ' &' : ''}`);
    const lines: string[] = [];
    const show = (line: string, by: string) => {
      lines.push(line);
      if (options.shows?.(line) ?? true) out(indent(line, `${by}${tag}`));
    };
    const wgctl = spawnStreaming(inNamespace(this.lab.mac.ns, [process.execPath, bundlePath('wgctl'), ...args]), {
      env: { WGCTL_CONFIG: this.stack.configFile },
      onLine: (line) => show(line, '    '),
      onStderrLine: (line) => show(line, '    ! '),
    });
    return { process: wgctl, done: wgctl.exited.then((exit) => ({ code: exit.code ?? -1, output: lines.join('\n') })) };
  }

  private async wgctlMustExit(args: string[], expected = 0): Promise<WgctlRun> {
    const run = await this.startWgctl(args).done;
    if (run.code !== expected) throw new StepFailed(`wgctl ${args[0]} exited with ${run.code}, expected ${expected}`);
    return run;
  }

  /** The lab, `wgctl init`, the VM's certificates, both agents. */
  private async setUp(): Promise<void> {
    const { options, runner } = this;
    await this.step('lab up: coffee shops, the Mac, the VM, a WireGuard server, a web host', async () => {
      out(`  $ node tools/lab/run.mjs up --prefix ${options.prefix}`);
      const lab = (this.labUp = await createLab({ prefix: options.prefix, runner }));
      // --vm-address6: the VM's IPv6 on the vnic, so the Mac's IPv6 goes through the tunnel too.
      const initArgs = ['--handshake-timeout', String(HANDSHAKE_TIMEOUT_S), ...(lab.vm.eth.ipv6 ? ['--vm-address6', lab.vm.eth.ipv6] : [])];
      this.stackUp = stackFor(lab, { runner, initArgs, ...metricsAgentArgs(lab) });
      out(indent(`the Mac: ${lab.mac.uplink} ${lab.cafes.cafe1.client.ipv4} ${lab.cafes.cafe1.client.ipv6} on the coffee shop's LAN (gateway ${lab.cafes.cafe1.client.gateway4}), ${lab.mac.vnic.interface} ${lab.mac.vnic.ipv4} ${lab.mac.vnic.ipv6} to the VM`));
      out(indent(`the VM:  ${lab.vm.eth.interface} ${lab.vm.eth.ipv4}; WireGuard config ${lab.vm.wireguard.configPath} (tunnel ${lab.vm.wireguard.address}, server ${lab.srv.endpoint})`));
      out(indent(`the web: ${lab.web.url4} ${lab.web.url6} (${lab.web.hostname}); tunnel-only resolver ${lab.srv.dns}`));
    });

    await this.step('wgctl init: config and pairing PKI', async () => {
      await this.wgctlMustExit(this.stack.initArgs());
      out(`  (from here on: export WGCTL_CONFIG=${this.stack.configFile})`);
    });

    await this.step("the VM's certificate and key copied to the VM (init's next step 1)", async () => {
      const commands = await this.stack.installVmCertificates();
      for (const argv of commands) out(`  [vm] $ ${argv.join(' ')}`);
    });

    await this.step('both agents started (built bundles, real flags, mTLS)', async () => {
      const [vm, mac] = await this.stack.startAgents();
      for (const agent of [vm, mac]) {
        const where = agent.name === 'vm-agent' ? 'vm' : 'mac';
        out(`  [${where}] $ ${agent.argv.map((a) => (a === process.execPath ? 'node' : shown(a))).join(' ')}`);
        out(indent(`pid ${agent.pid}, log ${agent.logFile}`));
      }
      return `vm-agent on ${this.stack.vmAgentListen}, mac-agent on unix:${this.stack.macAgentSocket}`;
    });
  }

  /** Up, what it looks like (status, metrics, the menu bar), that nothing leaks, down. */
  private async throughTheTunnel(): Promise<void> {
    const { lab } = this;
    await this.step('before: the web host sees the coffee shop', () => this.webSees('cafe'));

    await this.step('wgctl up', async () => {
      this.tunnelUp = true;
      await this.wgctlMustExit(['up']);
    });

    await this.step('wgctl status', () => this.wgctlMustExit(['status']));

    await this.step("Prometheus's view: both agents' /metrics over mTLS with the monitor certificate", () => this.metricsLines());

    await this.step('the menu bar: what the xbar/SwiftBar plugin (tools/menubar/wgctl.30s.sh) shows', async () => {
      const run = await this.wgctlMustExit(['menubar']);
      const title = run.output.split('\n')[0] ?? '';
      if (!title.startsWith('wgctl ✓')) throw new StepFailed(`the menu bar's title is "${title}", not protected (wgctl ✓)`);
      return 'protected: the title, the facts, then the Up / Down / portal actions';
    });

    await this.step(`wgctl verify: capture on the Mac's uplink and in the VM's tunnel while probing the web host`, () =>
      this.wgctlMustExit(['verify', '--target', lab.web.wan.ipv4]),
    );

    const web6 = lab.web.wan.ipv6;
    if (web6) {
      await this.step('wgctl verify over IPv6: the same, probing the web host over IPv6', () => this.wgctlMustExit(['verify', '--target', web6, '--duration', '2']));
    }

    await this.step('through the tunnel: the web host sees the WireGuard server', () => this.webSees('server'));

    await this.step('wgctl down', async () => {
      await this.wgctlMustExit(['down']);
      this.tunnelUp = false;
    });

    await this.step('after: the web host sees the coffee shop again', () => this.webSees('cafe'));
  }

  /**
   * The café gets a captive portal: `wgctl up` fails and names it, `wgctl portal` opens a
   * bounded sign-in window (status says so), the user signs in from the Mac, the window closes
   * by itself on the handshake, verify passes; then down and the portal removed.
   */
  private async atThePortal(): Promise<void> {
    const { lab, options } = this;
    const probeUrl = `http://${lab.web.hostname}/hotspot-detect.html`;
    let loginUrl = '';
    await this.step("portal on: the coffee shop's router holds everything until the Mac signs in", async () => {
      out(`  $ node tools/lab/run.mjs portal on --prefix ${options.prefix}`);
      this.portal = await startCaptivePortal(lab);
      loginUrl = this.portal.loginUrl;
      out(`  [mac] HTTP GET ${probeUrl}`);
      const r = await labHttpGet(lab, 'mac', probeUrl);
      if (!r.ok || r.status !== 302 || r.location !== loginUrl) throw new StepFailed(`expected a 302 to ${loginUrl}, got ${JSON.stringify(r)}`);
      out(indent(`302 → ${r.location}`));
      return `the Mac's web traffic lands on the portal (${loginUrl})`;
    });

    await this.step('wgctl up at the portal: no handshake, rolled back, the portal named', async () => {
      this.tunnelUp = true; // a failed up rolls back, but cleanup's `wgctl down` is harmless either way
      const run = await this.startWgctl(['up', '--portal-probe-url', probeUrl]).done;
      if (run.code === 0) throw new StepFailed('wgctl up succeeded behind the portal');
      if (!run.output.includes('a captive portal holds this network')) throw new StepFailed('wgctl up did not name the captive portal');
      return `exit ${run.code}, the portal named with the next command (wgctl portal)`;
    });

    await this.step('wgctl portal: a sign-in window opens (left running in the background)', async () => {
      this.portalRun = this.startWgctl(['portal', '--duration', String(PORTAL_WINDOW_S)], { tag: '(portal) ' });
      await eventually('the sign-in window to open', () => this.signInWindowOpen(), 20_000, 200);
    });

    await this.step('wgctl status: the window is open, web and DNS UNPROTECTED', async () => {
      // Its exit code is not checked: an open window makes the Mac's state a problem (not healthy).
      const run = await this.startWgctl(['status']).done;
      if (!/SIGN-IN WINDOW OPEN/.test(run.output)) throw new StepFailed('status does not show the open sign-in window');
    });

    await this.step("sign in from the Mac: HTTP POST to the portal's login page", async () => {
      out(`  [mac] HTTP POST ${loginUrl}`);
      const r = await labHttpGet(lab, 'mac', loginUrl, { method: 'POST' });
      if (!r.ok || r.status !== 200) throw new StepFailed(`the portal did not accept the sign-in: ${JSON.stringify(r)}`);
      out(indent(`${r.status} ${r.body.trim()}`));
      return `the portal signed in ${(await this.portal!.signedIn()).join(', ')}`;
    });

    await this.step('the window closes by itself once the handshake comes', async () => {
      const run = await this.portalRun!.done;
      this.portalRun = undefined;
      if (run.code !== 0) throw new StepFailed(`wgctl portal exited with ${run.code}`);
      if (!run.output.includes('the sign-in window is CLOSED')) throw new StepFailed('wgctl portal did not report the window closed');
      if (await this.signInWindowOpen()) throw new StepFailed('status still shows the sign-in window');
      return 'wgctl portal exited 0: the tunnel is up, the window closed';
    });

    await this.step('wgctl verify after signing in: nothing leaks', () => this.wgctlMustExit(['verify', '--target', lab.web.wan.ipv4, '--duration', '2']));

    await this.step('wgctl down, portal off: the web host sees the coffee shop again', async () => {
      await this.wgctlMustExit(['down']);
      this.tunnelUp = false;
      out(`  $ node tools/lab/run.mjs portal off --prefix ${options.prefix}`);
      await this.portal!.stop();
      this.portal = undefined;
      return this.webSees('cafe');
    });
  }

  /** `wgctl plan --exclude`: what an excluded destination's route would be, nothing changed. */
  private async planAnExclusion(): Promise<void> {
    const { lab } = this;
    await this.step('wgctl plan --exclude: a destination routed around the tunnel, in clear', async () => {
      const excluded = `${lab.web.wan.ipv4}/32`; // the web host
      const gateway = lab.cafes.cafe1.client.gateway4;
      const mentions = (line: string) => line.includes(lab.web.wan.ipv4);
      const run = await this.startWgctl(['plan', '--exclude', excluded], { shows: mentions }).done;
      if (run.code !== 0) throw new StepFailed(`wgctl plan exited with ${run.code}`);
      const routes = run.output.split('\n').filter((line) => mentions(line) && line.includes('route add') && line.includes(gateway));
      if (routes.length === 0) throw new StepFailed(`the plan routes nothing to ${excluded} via the coffee shop's gateway ${gateway}`);
      out(indent(`(only the plan's lines naming ${excluded} shown; nothing was changed)`));
      return `the web host (${excluded}) would be reached via the coffee shop's gateway ${gateway}, not the VM`;
    });
  }

  /** A scrape of each agent as Prometheus makes it (docs/monitoring), a few of its lines shown. */
  private async metricsLines(): Promise<string> {
    const shownFamilies = /^(wireguard_latest_handshake_seconds|wgctl_vm_up|wgctl_killswitch_loaded|wgctl_routes_present|wgctl_mac_up)[ {]/;
    for (const agent of ['vm-agent', 'mac-agent'] as const) {
      out(`  [mac] GET https://${metricsListen(this.lab, agent)}/metrics  (client certificate monitor.crt)`);
      const scrape = await scrapeAgentInLab(this.lab, agent, this.stack.tlsDir);
      if (scrape.status !== 200) throw new StepFailed(`${agent}'s /metrics answered ${scrape.status}`);
      const lines = scrape.body.split('\n').filter((l) => shownFamilies.test(l));
      if (lines.length === 0) throw new StepFailed(`${agent}'s /metrics has none of the expected series`);
      out(indent(lines.join('\n')));
    }
    return 'docs/monitoring has the Grafana dashboard and alert rules for these';
  }

  /**
   * What the web host says about who asked, over IPv4 and IPv6: the coffee shop (it NATs IPv4;
   * IPv6 comes from the Mac's own address), or the WireGuard server (both families tunnelled).
   */
  private async webSees(expected: 'cafe' | 'server'): Promise<string> {
    const l = this.lab;
    const seen: string[] = [];
    for (const family of [4, 6] as const) {
      const cafe = family === 4 ? l.cafes.cafe1.wan.ipv4 : l.cafes.cafe1.client.ipv6;
      const server = family === 4 ? l.srv.wan.ipv4 : l.srv.wan.ipv6;
      const url = family === 4 ? l.web.url4 : l.web.url6;
      out(`  [mac] HTTP GET ${url}`);
      const r = await labHttpGet(l, 'mac', url);
      if (!r.ok) throw new StepFailed(`the web host did not answer over IPv${family}: ${r.error}`);
      out(indent(r.body.trim()));
      const remote = (JSON.parse(r.body) as { remote: string }).remote;
      const label = remote === cafe ? (family === 4 ? "the coffee shop's address" : "the Mac's own address") : remote === server ? "the WireGuard server's address" : 'an unexpected address';
      const want = expected === 'cafe' ? cafe : server;
      if (remote !== want) throw new StepFailed(`over IPv${family} the web host saw ${remote} (${label}), expected ${want}`);
      seen.push(`IPv${family} ${remote} (${label})`);
    }
    return `the web host saw ${seen.join(', ')}`;
  }

  /** `wgctl --json status`, quietly: whether the Mac's sign-in window is open. */
  private async signInWindowOpen(): Promise<boolean> {
    const r = await this.stack.wgctl(['--json', 'status']);
    try {
      return Boolean((JSON.parse(r.stdout) as { mac?: { portalWindow?: unknown } }).mac?.portalWindow);
    } catch {
      return false; // no JSON (an agent unreachable): not open as far as anyone can tell
    }
  }

  /**
   * Whatever happened: the background `wgctl portal` stopped; then, unless --keep, the tunnel
   * down and the lab removed (a step of its own). False when removing the lab failed.
   */
  private async cleanUp(): Promise<boolean> {
    const { options, runner, labUp: lab, stackUp: stack } = this;
    if (this.portalRun) {
      out('\n(cleanup) the background wgctl portal stopped');
      await this.portalRun.process.stop();
    }
    if (options.keep && lab) {
      out(`\n--keep: the lab stays up${this.tunnelUp ? ' (and so does the tunnel)' : ''}. Explore, then tear down:`);
      if (stack) out(`  ip netns exec ${lab.mac.ns} env WGCTL_CONFIG=${stack.configFile} node ${shown(bundlePath('wgctl'))} status`);
      if (this.portal) out(`  node tools/lab/run.mjs portal off --prefix ${lab.prefix}   (the captive portal is still on)`);
      out(`  node tools/lab/run.mjs down --prefix ${lab.prefix}${stack ? ` && rm -rf ${stack.configDir} ${dirname(stack.macAgentSocket)}` : ''}`);
      return true;
    }
    if (this.tunnelUp && stack) {
      out('\n(cleanup) wgctl down');
      await this.startWgctl(['down']).done.catch(() => undefined);
    }
    const labLeft = lab !== undefined || (await labNamespaces(options.prefix, runner)).length > 0;
    if (!labLeft) return true;
    try {
      await this.step(
        'lab down',
        async () => {
          out(`  $ node tools/lab/run.mjs down --prefix ${options.prefix}`);
          if (stack) await stack.destroy();
          else await destroyLab(options.prefix, { runner });
          const left = await labNamespaces(options.prefix, runner);
          if (left.length > 0) throw new StepFailed(`namespaces left: ${left.join(', ')}`);
        },
        { evenIfInterrupted: true },
      );
      return true;
    } catch {
      return false;
    }
  }

  /** The steps, each with its time, and the verdict; the exit code. */
  private summary(failed: boolean): number {
    const { steps } = this;
    out('\nSummary');
    const width = Math.max(...steps.map((s) => s.title.length));
    for (const [i, s] of steps.entries()) out(`  ${s.ok ? '✓' : '✗'} ${String(i + 1).padStart(2)}. ${s.title.padEnd(width)} ${seconds(s.ms).padStart(6)}`);
    const passed = !failed && !this.interrupted && steps.every((s) => s.ok);
    const verdict = passed ? 'PASS' : this.interrupted ? 'INTERRUPTED' : 'FAIL';
    out(`\ndemo: ${verdict} — ${steps.filter((s) => s.ok).length}/${steps.length} steps passed in ${seconds(Date.now() - this.started)}`);
    return passed ? 0 : this.interrupted ? 130 : 1;
  }
}

function showAgentLogs(lab: Lab): void {
  for (const name of ['vm-agent', 'mac-agent'] as AgentName[]) {
    const path = agentLogPath(lab, name);
    if (!existsSync(path)) continue;
    out(`\n--- ${path} (last lines) ---`);
    out(readFileSync(path, 'utf8').trimEnd().split('\n').slice(-15).join('\n'));
  }
}
