/**
 * Every flag of the three programs, given a bad value, is refused before anything runs: exit
 * code 2 and a message on stderr that names the flag (or, for a config file, the file).
 *
 * The whole table runs through each program's command-line entry in-process (runCli, main —
 * what the bundles call); a few cases also run the real programs, bundled from source as
 * tools/build does (into a temporary directory), to prove the exit code reaches the shell.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { Readable } from 'node:stream';
import { ExecRunner } from '@wgctl/runner';
import { main as macAgentMain } from '../../apps/mac-agent/src/cli';
import { main as vmAgentMain } from '../../apps/vm-agent/src/cli';
import { runCli } from '../../apps/wgctl/src/cli';

const ROOT = resolve(__dirname, '../..');
const APPS = ['wgctl', 'vm-agent', 'mac-agent'] as const;
type App = (typeof APPS)[number];

let dir: string;
const bundles = {} as Record<App, string>;
const runner = new ExecRunner();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wth-cli-'));
  await Promise.all(
    APPS.map(async (app) => {
      bundles[app] = join(dir, `${app}.js`);
      await build({
        entryPoints: [join(ROOT, 'apps', app, 'src/main.ts')],
        outfile: bundles[app],
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        // Loaded only when an agent serves (never on a refused command line).
        external: ['grpc-health-check', '@grpc/reflection', '@grpc/proto-loader'],
        minify: true,
        logLevel: 'error',
        absWorkingDir: ROOT,
      });
    }),
  );
  mkdirSync(join(dir, 'home'));
  // A valid config, for the wgctl flags checked after the config is read.
  mkdirSync(join(dir, 'cfg'));
  writeFileSync(
    join(dir, 'cfg/config.json'),
    JSON.stringify({ version: 1, vm: { address: '192.0.2.10', port: 7443 }, mac: { agent: 'unix:/nonexistent/wth.sock' }, tlsDir: 'tls' }),
    { mode: 0o600 },
  );
  writeFileSync(join(dir, 'cfg/bad.json'), '{"version": 1, "vm": {"address": "192.0.2.10", "port": 0}}', { mode: 0o600 });
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Test paths are written $DIR/… and resolved when the case runs (the directory is made in beforeAll). */
const at = (argv: string[]): string[] => argv.map((a) => a.replace('$DIR', dir));

/** [program, argv, what stderr must name]. */
const CASES: [App, string[], RegExp][] = [
  // wgctl: global flags
  ['wgctl', ['--timeout', 'soon', 'status'], /--timeout/],
  ['wgctl', ['--timeout', '0', 'status'], /--timeout/],
  ['wgctl', ['--log-level', 'loud', 'status'], /--log-level/],
  ['wgctl', ['--json=yes', 'status'], /--json/],
  ['wgctl', ['--config', '$DIR/nope.json', 'status'], /nope\.json: no such file/],
  ['wgctl', ['--config', '$DIR/cfg/bad.json', 'status'], /bad\.json: invalid configuration[\s\S]*vm\.port: port must be 1–65535[\s\S]*mac: /],
  ['wgctl', ['--bogus'], /unknown option '--bogus'/],
  // wgctl init
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.300'], /--vm-address: expected an IPv4 or IPv6 address/],
  ['wgctl', ['init', '--dir', '$DIR/init'], /--vm-address is required/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--vm-port', '65536'], /--vm-port/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--mac-agent', 'unix:relative.sock'], /--mac-agent: unix socket path must be absolute/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--mac-agent', '192.0.2.1:0'], /--mac-agent: port 0 is out of range/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--dns', '192.0.2.53,dns.example'], /--dns: expected an IPv4 or IPv6 address, got "dns\.example"/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--ipv6', 'sometimes'], /--ipv6/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--handshake-timeout', '-5'], /--handshake-timeout/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--force=yes'], /--force/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--rotate=yes'], /--rotate/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--vm-address', '192.0.2.10', '--rotate-ca'], /--rotate-ca needs --rotate/],
  ['wgctl', ['init', '--dir', '$DIR/init', '--rotate', '--vm-port', '7443'], /--rotate renews certificates only; drop --vm-port/],
  // wgctl up / plan / down
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'up', '--mac-source', '198.51.100.256'], /--mac-source: expected an IPv4 or IPv6 address/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'up', '--dry-run=no'], /--dry-run/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'plan', '--mac-source', 'mac.local'], /--mac-source/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'down', '--dry-run=1'], /--dry-run/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'down', '--force=1'], /--force/],
  // wgctl status / verify / health / debug parse
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'status', '--watch', 'often'], /--watch/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'verify', '--target', 'example.com'], /--target: expected an IPv4 or IPv6 address/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'verify', '--duration', '0'], /--duration/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'verify', '--count', '0'], /--count/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'verify', '--count', '1000'], /--count/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'health', '--agent', 'all'], /--agent/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'health', '--cert', 'vm-agent'], /--cert/],
  ['wgctl', ['-c', '$DIR/cfg/config.json', 'health', '--service', 'wgctl.v1.VmAgent;rm'], /--service/],
  ['wgctl', ['debug', 'parse', 'not-a-kind', '-'], /unknown kind "not-a-kind"/],
  ['wgctl', ['debug', 'parse', 'wg-dump', '$DIR/missing.txt'], /missing\.txt/],
  // vm-agent
  ['vm-agent', ['--listen', '192.0.2.10'], /--listen/],
  ['vm-agent', ['--listen', '192.0.2.10:99999', '--tls-dir', '/etc/wgctl/tls'], /--listen/],
  ['vm-agent', ['--tls-dir', '/etc/wgctl/tls'], /--listen ADDR:PORT is required/],
  ['vm-agent', ['--listen', '192.0.2.10:7443'], /--tls-dir is required/],
  ['vm-agent', ['--listen', '192.0.2.10:7443', '--tls-dir', 'relative/tls'], /--tls-dir/],
  ['vm-agent', ['--listen', '192.0.2.10:7443', '--tls-dir', '/etc/wgctl/tls', '--insecure-loopback-dev'], /not both/],
  ['vm-agent', ['--listen', '192.0.2.10:7443', '--insecure-loopback-dev'], /--insecure-loopback-dev: refusing plaintext/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--insecure-loopback-dev=yes'], /--insecure-loopback-dev/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--wg-config', '/etc/wireguard/wg0.cfg'], /--wg-config/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--wg-config', '/etc/wireguard/a-name-too-long-for-linux.conf'], /--wg-config/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--state-dir', 'state'], /--state-dir/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--log-level', 'chatty'], /--log-level/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--health-interval', '10'], /--health-interval/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--handshake-threshold', '0'], /--handshake-threshold/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--handshake-timeout', '1e3'], /--handshake-timeout/],
  ['vm-agent', ['--listen', '127.0.0.1:7443', '--tls-dir', '/t', '--wg-method', 'ifupdown'], /--wg-method/],
  ['vm-agent', ['install', '--listen', '192.0.2.10:7443', '--tls-dir', '/t', '--prefix', 'usr/local'], /--prefix/],
  ['vm-agent', ['install', '--listen', '192.0.2.10:7443', '--tls-dir', '/t', '--root', '.'], /--root/],
  ['vm-agent', ['install', '--listen', '192.0.2.10:7443', '--tls-dir', '/t', '--no-enable=1'], /--no-enable/],
  ['vm-agent', ['uninstall', '--keep-network=1'], /--keep-network/],
  ['vm-agent', ['uninstall', '--wg-config', 'wg0'], /--wg-config/],
  ['vm-agent', ['uninstall', '--state-dir', 'x'], /--state-dir/],
  ['vm-agent', ['--bogus'], /unknown option '--bogus'/],
  // mac-agent
  ['mac-agent', ['--driver', 'windows'], /--driver/],
  ['mac-agent', ['--listen', 'unix:relative.sock'], /--listen/],
  ['mac-agent', ['--listen', '192.0.2.1:7444'], /--listen 192\.0\.2\.1:7444 is TCP: give --tls-dir/],
  ['mac-agent', ['--tls-dir', 'tls'], /--tls-dir/],
  ['mac-agent', ['--state-dir', 'state'], /--state-dir/],
  ['mac-agent', ['--log-level', 'trace'], /--log-level/],
  ['mac-agent', ['--dns-resolv-conf', 'resolv.conf'], /--dns-resolv-conf/],
  ['mac-agent', ['--roam-check-interval', '50'], /--roam-check-interval/],
  ['mac-agent', ['install', '--node', 'node'], /--node/],
  ['mac-agent', ['--dns-mode', 'dnsmasq'], /--dns-mode/],
  ['mac-agent', ['--socket-group', 'wheel;id'], /--socket-group/],
  ['mac-agent', ['install', '--no-start=1'], /--no-start/],
  ['mac-agent', ['install', '--unit-dir', 'units'], /--unit-dir/],
  ['mac-agent', ['uninstall', '--unit-dir', 'units'], /--unit-dir/],
  ['mac-agent', ['--bogus'], /unknown option '--bogus'/],
];

/** The bundled program, as a user runs it. */
async function spawn(app: App, argv: string[]) {
  return runner.run([process.execPath, bundles[app], ...argv], {
    allowFailure: true,
    timeoutMs: 20_000,
    env: { HOME: join(dir, 'home'), WGCTL_CONFIG: '', NODE_PATH: join(ROOT, 'node_modules') },
  });
}

/** The program's command-line entry in-process: its exit code and stderr. */
async function inProcess(app: App, argv: string[]): Promise<{ exitCode: number; stderr: string }> {
  let stderr = '';
  const exitCodeBefore = process.exitCode;
  try {
    if (app === 'wgctl') {
      const exitCode = await runCli(argv, {
        stdout: { write: () => true },
        stderr: { write: (text: string) => (stderr += text) },
        stdin: Readable.from([]),
        env: { HOME: join(dir, 'home') },
      });
      return { exitCode, stderr };
    }
    const output = { stdout: () => undefined, stderr: (text: string) => void (stderr += text) };
    const exitCode = app === 'vm-agent' ? await vmAgentMain(['node', app, ...argv], output) : await macAgentMain(['node', app, ...argv], output);
    return { exitCode, stderr };
  } finally {
    process.exitCode = exitCodeBefore; // the entries set it, as a program should; jest's own must stay
  }
}

/** Runs `jobs` with at most `width` at a time. */
async function pool<T, R>(items: readonly T[], width: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await job(items[i]);
      }
    }),
  );
  return results;
}

describe('a bad flag value: exit 2, the flag named, nothing run', () => {
  it.each(CASES.map(([app, argv, named]) => [app, argv.join(' '), argv, named] as const))('%s %s', async (app, _shown, argv, named) => {
    const r = await inProcess(app, at(argv));
    // wgctl health has grpc_health_probe's codes: invalid arguments are 1 there.
    const usageExit = app === 'wgctl' && argv.includes('health') ? 1 : 2;
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: usageExit, stderr: expect.stringMatching(named) });
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('the bundled programs exit 2 the same way', async () => {
    const cases: [App, string[], RegExp][] = [
      ['wgctl', ['init', '--dir', join(dir, 'init'), '--vm-address', 'vm'], /--vm-address/],
      ['vm-agent', ['--listen', '192.0.2.10:7443', '--tls-dir', '/t', '--health-interval', 'x'], /--health-interval/],
      ['mac-agent', ['--listen', '192.0.2.1:7444'], /--tls-dir/],
    ];
    const results = await Promise.all(cases.map(async ([app, argv]) => spawn(app, argv)));
    expect(results.map((r) => r.exitCode)).toEqual([2, 2, 2]);
    results.forEach((r, i) => expect(r.stderr).toMatch(cases[i][2]));
  });

  it('the controls: the same programs accept good values', async () => {
    for (const app of APPS) expect((await spawn(app, ['--help'])).exitCode).toBe(0);
    // A good init succeeds where the bad ones above wrote nothing.
    const r = await inProcess('wgctl', ['init', '--dir', join(dir, 'init'), '--vm-address', '192.0.2.10', '--dns', '192.0.2.53', '--ipv6', 'block']);
    expect(r).toEqual({ exitCode: 0, stderr: '' });
  });
});
