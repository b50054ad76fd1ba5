/** debug parse (table of kinds, error path, no secrets) and CLI usage errors (exit 2, flag named). */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PARSERS } from '../commands/debug-parse';
import { cli } from '../testing/cli-harness';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-debug-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const key = () => randomBytes(32).toString('base64');
const FIXTURES = 'libs/parsers/src/darwin/__fixtures__';

/** No stack frames, no internal file paths: a user-facing message only. */
function expectNoStack(stderr: string): void {
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr).not.toMatch(/\.ts:\d+/);
}

describe('wgctl debug parse', () => {
  it('has at least the kinds the issue lists', () => {
    expect(Object.keys(PARSERS)).toEqual(
      expect.arrayContaining(['netstat', 'route-get', 'route-monitor', 'pf-rules', 'pf-info', 'networksetup-dns', 'wg-dump', 'iptables-save', 'wg-config', 'ip-route']),
    );
  });

  it('parses a saved macOS netstat -rn into JSON', async () => {
    const r = await cli(['debug', 'parse', 'netstat', `${FIXTURES}/netstat-rn-bigsur-11.3-default-hatenablog.txt`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ destination: '0.0.0.0/0', isDefault: true, gateway: expect.objectContaining({ address: '192.168.0.1' }), netif: 'en0' }),
    ]);
  });

  it('parses pfctl -s info', async () => {
    const r = await cli(['debug', 'parse', 'pf-info', `${FIXTURES}/pfctl-s-info-enabled-macos26-capture.txt`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ enabled: true });
  });

  it('reads stdin with -', async () => {
    const r = await cli(['debug', 'parse', 'ip-route', '-'], {
      stdin: JSON.stringify([{ dst: 'default', gateway: '192.0.2.1', dev: 'eth0', flags: [] }]),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.stringify(JSON.parse(r.stdout))).toContain('192.0.2.1');
  });

  it('wg-dump output never contains the private or preshared keys', async () => {
    const priv = key();
    const pub = key();
    const peer = key();
    const psk = key();
    const dump = `${priv}\t${pub}\t51820\toff\n${peer}\t${psk}\t203.0.113.5:51820\t0.0.0.0/0\t1700000000\t1024\t2048\t25\n`;
    const r = await cli(['debug', 'parse', 'wg-dump', file('dump.txt', dump)]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(priv);
    expect(r.stdout).not.toContain(psk);
    expect(r.stdout).toContain(pub);
    expect(r.stdout).toContain(peer);
    const parsed = JSON.parse(r.stdout);
    expect(parsed.peers[0]).toMatchObject({ publicKey: peer, endpointText: '203.0.113.5:51820' });

    const all = await cli(['debug', 'parse', 'wg-dump', file('all.txt', dump.split('\n').filter(Boolean).map((l) => `wg0\t${l}`).join('\n'))]);
    expect(all.code).toBe(0);
    expect(all.stdout).not.toContain(priv);
    expect(all.stdout).not.toContain(psk);
    expect(JSON.parse(all.stdout)[0].name).toBe('wg0');
  });

  it('wg-config output redacts PrivateKey and PresharedKey', async () => {
    const priv = key();
    const psk = key();
    const conf = `[Interface]\nPrivateKey = ${priv}\nAddress = 10.64.0.2/32\nDNS = 10.64.0.1\n\n[Peer]\nPublicKey = ${key()}\nPresharedKey = ${psk}\nEndpoint = 203.0.113.5:51820\nAllowedIPs = 0.0.0.0/0\n`;
    const r = await cli(['debug', 'parse', 'wg-config', file('wg0.conf', conf)]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(priv);
    expect(r.stdout).not.toContain(psk);
    expect(JSON.parse(r.stdout).interface.addresses).toEqual(['10.64.0.2/32']);
  });

  it('bad input: clear message on stderr, exit 2, no stack trace', async () => {
    const r = await cli(['debug', 'parse', 'wg-dump', file('garbage.txt', 'this is not a dump\n')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^wgctl: debug parse wg-dump: .*garbage\.txt: wg show dump: line 1: /);
    expectNoStack(r.stderr);
  });

  it('bad input to every kind fails cleanly (exit 2 or a result, never a crash)', async () => {
    const garbage = file('junk.bin', '\u0000\u0001{"nftables": 3}\n[[[\n\tbroken\tline\n');
    for (const kind of Object.keys(PARSERS)) {
      const r = await cli(['debug', 'parse', kind, garbage]);
      expect([0, 2]).toContain(r.code);
      if (r.code === 2) {
        expect(r.stderr).toMatch(new RegExp(`^wgctl: debug parse ${kind}: `));
        expectNoStack(r.stderr);
      } else JSON.parse(r.stdout);
    }
  });

  it('missing file and unknown kind: exit 2', async () => {
    const missing = await cli(['debug', 'parse', 'netstat', join(dir, 'nope.txt')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.txt: no such file/);
    const unknown = await cli(['debug', 'parse', 'routes', '-']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown kind "routes"; one of: netstat, route-get/);
  });

  it('help lists every kind with the command it expects', async () => {
    const r = await cli(['debug', 'parse', '--help']);
    expect(r.code).toBe(0);
    for (const kind of Object.keys(PARSERS)) expect(r.stdout).toMatch(new RegExp(`^  ${kind} +\\S`, 'm'));
  });
});

describe('usage errors', () => {
  it.each([
    [['--timeout', 'soon', 'status'], /option '--timeout <seconds>' argument 'soon' is invalid/],
    [['--log-level', 'loud', 'status'], /option '--log-level <level>' argument 'loud' is invalid/],
    [['status', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['verify', '--count', '0'], /option '--count <n>' argument '0' is invalid/],
    [['debug', 'parse', 'netstat'], /missing required argument 'file'/],
  ])('%j → exit 2 naming the flag', async (args, message) => {
    const r = await cli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expectNoStack(r.stderr);
  });

  it('no command: help on stderr, exit 2', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Usage: wgctl/);
  });

  it('--help and --version: exit 0', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: wgctl \[options\] \[command\]/);
    for (const command of ['init', 'up', 'down', 'status', 'verify', 'plan', 'health', 'debug']) expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(help.stdout).toMatch(/Exit codes:/);
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('a missing config is exit 2 with a hint', async () => {
    const r = await cli(['status'], { env: { WGCTL_CONFIG: join(dir, 'none.json') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/none\.json: no such file \(run `wgctl init` to create it\)/);
  });
});

describe('debug parse: Maps become JSON objects', () => {
  it('wg-transfer', async () => {
    const peer = key();
    const r = await cli(['debug', 'parse', 'wg-transfer', '-'], { stdin: `${peer}\t1024\t2048\n` });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ [peer]: { rxBytes: '1024', txBytes: '2048' } });
  });
});
