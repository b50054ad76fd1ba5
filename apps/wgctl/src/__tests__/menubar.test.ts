/**
 * #16: `wgctl menubar` renders the xbar/SwiftBar plugin's output from real `wgctl status
 * --json` documents: produced here by the CLI against fake agents (real gRPC + mTLS) in each
 * state, then fed to `wgctl menubar --status-json -`. Every line must read the same in xbar
 * and SwiftBar (testing/xbar-menu.ts), and nothing from the agents may add a parameter.
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PORTAL_STATE_FILE } from '../portal-state';
import { parseStatusDocument, renderMenubar } from '../render/menubar';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, healthyMacStatus, healthyVmStatus, startLab } from '../testing/fake-agents';
import { type Menu, type MenuLine, actionArgv, itemNamed, param, parseMenu } from '../testing/xbar-menu';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
});

afterEach(async () => {
  await lab.cleanup();
});

async function statusJson(): Promise<string> {
  const r = await cli(['--config', config, '--json', 'status']);
  expect(r.stdout.startsWith('{')).toBe(true);
  return r.stdout;
}

/** `wgctl menubar --status-json -` on a document; exit 0 always. */
async function menubar(document: string): Promise<{ menu: Menu; stdout: string }> {
  const r = await cli(['--config', config, 'menubar', '--status-json', '-'], { stdin: document });
  expect(r.code).toBe(0);
  return { menu: parseMenu(r.stdout), stdout: r.stdout };
}

const texts = (menu: Menu) => menu.items.map((l) => l.text.trim());
const reasons = (menu: Menu) => menu.items.filter((l) => l.text.startsWith('⚠ ')).map((l) => l.text.trim().slice(2));

function expectTitle(menu: Menu, text: string | RegExp, color: string): void {
  expect(menu.title).toHaveLength(1);
  const [title] = menu.title as [MenuLine];
  if (typeof text === 'string') expect(title.text.trim()).toBe(text);
  else expect(title.text.trim()).toMatch(text);
  expect(title.params).toEqual([['color', color]]);
}

/** This very wgctl: in-process, the node binary and the script jest runs from. */
const self = () => ({ node: process.execPath, script: realpathSync(process.argv[1]!), config: resolve(config) });

function expectAction(menu: Menu, text: string, args: string[]): void {
  const line = itemNamed(menu, text);
  expect(line).toBeDefined();
  const { node, script, config: cfg } = self();
  const more = args.slice(1).map((_, i) => `param${i + 5}`);
  expect(line!.params.map(([k]) => k)).toEqual(['bash', 'param1', 'param2', 'param3', 'param4', ...more, 'terminal', 'refresh']);
  expect(actionArgv(line!)).toEqual([node, script, '--config', cfg, ...args]);
  expect(param(line!, 'terminal')).toBe('false');
  expect(param(line!, 'refresh')).toBe('true');
}

function agentsDown(): void {
  lab.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false };
  lab.agents.mac.status = { ...healthyMacStatus(), up: false, killSwitch: { loaded: false, enabled: false, referenced: false, tokenHeld: false, interface: '', rules: [] } };
}

describe('wgctl menubar from `wgctl status --json`', () => {
  it('protected: a green title, the key facts, the actions with absolute paths and params in order', async () => {
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ✓', '#34c759');
    expect(texts(menu)[0]).toBe('Protected: all traffic goes through the tunnel');
    expect(reasons(menu)).toEqual([]);
    expect(texts(menu)).toEqual(
      expect.arrayContaining([
        'Uplink: en0 via 192.0.2.1',
        'Server: vpn.example.net (203.0.113.5:51820)',
        'Handshake: 12 s ago',
        'Kill switch: on',
        'DNS: 10.64.0.1 (through the tunnel)',
        'Last roam: never',
        'Heals: Mac 0, VM 0',
      ]),
    );
    expect(texts(menu)).toContainEqual(expect.stringMatching(/^Tunnel: alive \(last reply \d s ago\)$/));
    expectAction(menu, 'Up', ['up']);
    expectAction(menu, 'Down', ['down']);
    // Up already: a sign-in window has nothing to do.
    expect(itemNamed(menu, 'Sign in to a captive portal')).toBeUndefined();
    expect(itemNamed(menu, 'End the sign-in window')).toBeUndefined();
    expect(itemNamed(menu, 'Refresh')!.params).toEqual([['refresh', 'true']]);
  });

  it('the last roam: when, how long it took and how many since the agent started (status --json roams, lastRoamTookMs)', async () => {
    lab.agents.mac.status = { ...healthyMacStatus(), lastRoamUnixMs: String(Date.now() - 120_000), roams: 3, lastRoamTookMs: '212' };
    const json = await statusJson();
    const mac = (JSON.parse(json) as { mac: { roams: number; lastRoamTookMs: number | null } }).mac;
    expect(mac).toMatchObject({ roams: 3, lastRoamTookMs: 212 });
    const { menu } = await menubar(json);
    expect(texts(menu)).toContain('Last roam: 2 min ago (took 212 ms; 3 since the agent started)');
  });

  it('degraded: a stale handshake and a dead tunnel are the reasons, in orange', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const vm = healthyVmStatus(nowS);
    vm.peers[0] = { ...vm.peers[0]!, latestHandshakeUnix: String(nowS - 400), handshakeAgeS: '400' };
    vm.liveness = { ...vm.liveness!, state: 'dead', deadSinceUnixMs: String((nowS - 30) * 1000), detail: 'no reply for 30 s' };
    lab.agents.vm.status = vm;
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ⚠', '#ff9500');
    expect(texts(menu)[0]).toBe('Degraded: up, but something is wrong');
    expect(reasons(menu)).toEqual(['VM: last handshake 400 s ago (stale after 180 s)', 'VM: nothing comes back through the tunnel: no reply for 30 s']);
    for (const line of menu.items.filter((l) => l.text.startsWith('⚠ '))) expect(param(line, 'color')).toBe('#ff9500');
    expect(texts(menu)).toContain('Handshake: 6 min ago');
    expect(texts(menu)).toContainEqual(expect.stringMatching(/^Tunnel: dead \(last reply \d s ago\)$/));
  });

  it('degraded: the kill switch not loaded and a split route missing while up', async () => {
    const mac = healthyMacStatus();
    mac.killSwitch = { ...mac.killSwitch!, loaded: false, enabled: false };
    mac.routes = mac.routes.map((r) => (r.destination === '128.0.0.0/1' ? { ...r, present: false } : r));
    lab.agents.mac.status = mac;
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ⚠', '#ff9500');
    expect(reasons(menu)).toEqual(['Mac: routes missing: 128.0.0.0/1', 'Mac: kill switch not loaded: traffic could leak']);
    expect(texts(menu)).toContain('Kill switch: off');
  });

  it('degraded: the VM up but the mac-agent unreachable', async () => {
    await lab.agents.stop('mac');
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ⚠', '#ff9500');
    expect(reasons(menu)[0]).toMatch(/^mac-agent unreachable \(unix:.*mac-agent\.sock\): /);
    expect(texts(menu)).toContain('Mac: unreachable');
  });

  it('unprotected: neither side up, in red', async () => {
    agentsDown();
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl off', '#ff3b30');
    expect(texts(menu)[0]).toBe('Unprotected: not up, traffic goes straight out');
    expect(reasons(menu)).toEqual(['the tunnel is down on both sides (run `wgctl up`)']);
    expectAction(menu, 'Up', ['up']);
    expectAction(menu, 'Sign in to a captive portal', ['portal']);
  });

  it('not up but the kill switch on (an up half way): degraded, blocked rather than leaking', async () => {
    lab.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false };
    lab.agents.mac.status = { ...healthyMacStatus(), up: false };
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ⚠', '#ff9500');
    expect(texts(menu)[0]).toBe('Blocked: kill switch on, the tunnel is not up');
    expect(texts(menu)).toContain('Kill switch: on');
  });

  it('portal window open: red, with the time left in the title, and the action to end it', async () => {
    lab.agents.mac.status = { ...healthyMacStatus(), portalWindow: { untilUnixMs: String(Date.now() + 90_000), resolvers: ['192.0.2.1'], tcpPorts: [80, 443] } };
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl portal 2m', '#ff3b30');
    expect(texts(menu)[0]).toMatch(/^Sign-in window open \((89|90) s left\): web traffic and DNS leave unprotected$/);
    expect(reasons(menu)[0]).toMatch(/^Mac: SIGN-IN WINDOW OPEN \((89|90) s left\): web traffic \(TCP 80\/443\) and DNS to 192\.0\.2\.1 leave UNPROTECTED$/);
    expectAction(menu, 'End the sign-in window', ['portal', '--end']);
  });

  it('portal detected: the finding of a failed up, with the portal action and a link to its sign-in page', async () => {
    agentsDown();
    const detection = { detectedAt: new Date(Date.now() - 60_000).toISOString(), probeUrl: 'http://127.0.0.1:9/hotspot', address: '127.0.0.1', status: 302, location: 'http://192.0.2.1/login?from=a b', detail: 'answered 302 → http://192.0.2.1/login' };
    writeFileSync(join(lab.dir, PORTAL_STATE_FILE), JSON.stringify(detection), { mode: 0o600 });
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl portal?', '#ff3b30');
    expect(texts(menu)[0]).toBe('Captive portal detected: sign in, then Up');
    expect(reasons(menu)).toContain('captive portal detected 60 s ago (http://127.0.0.1:9/hotspot answered 302 → http://192.0.2.1/login): run `wgctl portal`');
    expectAction(menu, 'Sign in to a captive portal', ['portal']);
    expect(itemNamed(menu, 'Open the sign-in page (192.0.2.1)')!.params).toEqual([['href', 'http://192.0.2.1/login?from=a%20b']]);
  });

  it('a portal location that is not http(s) is not offered as a link', async () => {
    agentsDown();
    const detection = { detectedAt: new Date().toISOString(), probeUrl: 'http://127.0.0.1:9/', address: '127.0.0.1', status: 302, location: 'file:///etc/passwd', detail: 'answered 302' };
    writeFileSync(join(lab.dir, PORTAL_STATE_FILE), JSON.stringify(detection), { mode: 0o600 });
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl portal?', '#ff3b30');
    expect(menu.items.some((l) => param(l, 'href') !== undefined)).toBe(false);
  });

  it('both agents unreachable: unknown, in grey, with the reasons; and so without --status-json', async () => {
    await lab.agents.stop();
    const { menu } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ?', '#8e8e93');
    expect(reasons(menu)).toHaveLength(2);
    const direct = await cli(['--config', config, '--timeout', '2', 'menubar']);
    expect(direct.code).toBe(0);
    expectTitle(parseMenu(direct.stdout), 'wgctl ?', '#8e8e93');
  });

  it('without --status-json it asks the agents as `status --json` does', async () => {
    const r = await cli(['--config', config, 'menubar']);
    expect(r.code).toBe(0);
    const menu = parseMenu(r.stdout);
    expectTitle(menu, 'wgctl ✓', '#34c759');
    expect(lab.agents.calls.filter((c) => c.rpc === 'Status').map((c) => c.side).sort()).toEqual(['mac', 'vm']);
    expectAction(menu, 'Up', ['up']);
  });

  it.each([
    ['not JSON', 'garbage <html>', 'not a `wgctl status --json` document (not JSON)'],
    ['empty', '', 'not a `wgctl status --json` document (not JSON)'],
    ['another document', '{"schema":"something/v2"}', 'not a `wgctl status --json` document (no "schema": "wgctl.status/v1")'],
    ['a truncated one', '{"schema":"wgctl.status/v1","overall":"healthy"}', 'a wgctl.status/v1 document that does not match its schema: time: Invalid input: expected string, received undefined'],
  ])('%s: unknown, exit 0, the reason in the menu', async (_name, document, why) => {
    const { menu } = await menubar(document);
    expectTitle(menu, 'wgctl ?', '#8e8e93');
    expect(texts(menu)[0]).toBe(`Status unknown: ${why}`);
    expectAction(menu, 'Up', ['up']);
  });

  it('no config: unknown with the reason, exit 0', async () => {
    const r = await cli(['--config', join(lab.dir, 'missing.json'), 'menubar']);
    expect(r.code).toBe(0);
    const menu = parseMenu(r.stdout);
    expectTitle(menu, 'wgctl ?', '#8e8e93');
    expect(texts(menu)[0]).toMatch(/^Status unknown: .*missing\.json/);
  });

  it('text from the agents cannot add a parameter, a line or a submenu', async () => {
    const evil = 'pf | bash=/bin/sh param1=-c param2=touch terminal=false\n--- | href=http://192.0.2.66/\r\n--Up | bash=/tmp/x\u2028color=red \\x1b[31m\t"quoted"';
    const mac = healthyMacStatus();
    mac.checks = [{ name: 'kill-switch', ok: false, detail: evil, evidence: [] }];
    mac.uplinkInterface = 'en0|bash=/tmp/y';
    lab.agents.mac.status = mac;
    const { menu, stdout } = await menubar(await statusJson());
    expectTitle(menu, 'wgctl ⚠', '#ff9500');
    // Only our own actions run anything, open anything, or nest.
    expect(menu.items.filter((l) => param(l, 'bash') !== undefined).map((l) => l.text.trim())).toEqual(['Up', 'Down']);
    expect(menu.items.some((l) => param(l, 'href') !== undefined)).toBe(false);
    expect(menu.items.every((l) => l.depth === 0)).toBe(true);
    const [reason] = menu.items.filter((l) => l.text.startsWith('⚠ '));
    expect(reason!.params).toEqual([['color', '#ff9500'], ['length', '100']]);
    // (wgctl shows an agent's \r as \x0d everywhere: untrusted.ts)
    expect(reason!.text.trim()).toBe('⚠ Mac: check kill-switch failed: pf ¦ bash=/bin/sh param1=-c param2=touch terminal=false --- ¦ href=http://192.0.2.66/⧵x0d --Up ¦ bash=/tmp/x color=red ⧵x1b[31m "quoted"');
    expect(texts(menu)).toContain('Uplink: en0¦bash=/tmp/y via 192.0.2.1');
    expect(stdout.split('\n').filter((l) => l.trim() === '---')).toHaveLength(4);
  });
});

describe('renderMenubar with a path no parameter can carry', () => {
  it('a config path holding a quote: the status is shown, the actions are not, and the menu says why', async () => {
    const report = parseStatusDocument(await statusJson());
    const menu = parseMenu(renderMenubar(report, { node: '/usr/bin/node', script: '/opt/wgctl.js', config: '/Users/me/"odd"/config.json' }));
    expectTitle(menu, 'wgctl ✓', '#34c759');
    expect(menu.items.some((l) => param(l, 'bash') !== undefined)).toBe(false);
    expect(texts(menu)).toContain('No actions: cannot write "/Users/me/⧵"odd⧵"/config.json" as a menu parameter (it holds a quote, a backslash, a ¦ or a control character): move wgctl or its config to a plain path');
  });
});
