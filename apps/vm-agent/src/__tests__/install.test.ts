import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_HEALTH_INTERVAL_MS } from '@wgctl/agent-kit';
import { ExecRunner, ScriptedRunner } from '@wgctl/runner';
import { agentOptionsFrom, buildProgram } from '../cli';
import { install, planInstall, uninstall } from '../install/install';
import { untrustedProgramAtStart } from '../run';
import { agentArgs } from '../options';
import { UNIT_NAME, UNIT_PATH, renderUnit, systemdQuote } from '../install/unit';

const host = new ExecRunner();

describe('systemd unit', () => {
  const unit = renderUnit(['/usr/bin/node', '/usr/local/lib/wgctl/vm-agent.js', '--listen', '192.0.2.10:7443']);

  it('is hardened with the holes the agent needs', () => {
    const lines = unit.split('\n');
    const has = (line: string): boolean => lines.includes(line);
    for (const line of [
      'Wants=network-online.target',
      'After=network-online.target nss-lookup.target',
      'Restart=on-failure',
      'Environment=MALLOC_ARENA_MAX=2',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE',
      'StateDirectory=wgctl/vm-agent',
      'LogsDirectory=wgctl/vm-agent',
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET',
      'WantedBy=multi-user.target',
    ]) {
      expect(has(line)).toBe(true);
    }
    expect(lines.find((l) => l.startsWith('ReadWritePaths='))).toMatch(/^ReadWritePaths=\/etc\/wireguard -\/run\/wireguard /);
    // These would break ip_forward (/proc/sys), wireguard-go (/dev/net/tun) and the JIT.
    expect(unit).not.toMatch(/^(ProtectKernelTunables|PrivateDevices|MemoryDenyWriteExecute)=/m);
  });

  it('quotes ExecStart words systemd would split or expand', () => {
    expect(systemdQuote('/etc/wireguard/wg0.conf')).toBe('/etc/wireguard/wg0.conf');
    expect(systemdQuote('/srv/my dir/wg0.conf')).toBe('"/srv/my dir/wg0.conf"');
    expect(systemdQuote('a"b$c%d')).toBe('"a\\"b$$c%%d"');
  });

  const analyze = existsSync('/usr/bin/systemd-analyze') ? it : it.skip;

  analyze('passes systemd-analyze verify without a warning, and reports its exposure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wtv-unit-'));
    try {
      const path = join(dir, UNIT_NAME);
      writeFileSync(path, renderUnit([process.execPath, '/usr/local/lib/wgctl/vm-agent.js', '--listen', '192.0.2.10:7443', '--tls-dir', '/etc/wgctl/tls']));
      const verify = await host.run(['systemd-analyze', 'verify', path], { allowFailure: true });
      expect(verify.exitCode).toBe(0);
      expect(verify.stderr.split('\n').filter((l) => l.includes(UNIT_NAME))).toEqual([]);
      const security = await host.run(['systemd-analyze', 'security', '--offline=true', path], { allowFailure: true });
      const exposure = /Overall exposure level for \S+: ([0-9.]+)/.exec(security.stdout);
      expect(exposure).not.toBeNull();
      process.stdout.write(`systemd-analyze security exposure: ${exposure![1]}\n`);
      expect(Number(exposure![1])).toBeLessThan(6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('install / uninstall', () => {
  it('puts program and unit in place, enables it, and removes both again', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wtv-root-'));
    try {
      const bundle = join(root, 'bundle.js');
      writeFileSync(bundle, '#!/usr/bin/env node\n// the agent\n');
      const options = agentOptionsFrom({
        listen: '192.0.2.10:7443',
        tlsDir: '/etc/wgctl/tls',
        wgConfig: '/etc/wireguard/wg0.conf',
        stateDir: '/var/lib/wgctl/vm-agent',
        logLevel: 'info',
        insecureLoopbackDev: false,
        healthInterval: 5000,
        handshakeThreshold: 180,
        handshakeTimeout: 20000,
        wgMethod: 'auto',
      });
      const runner = new ScriptedRunner([{ argv: ['systemctl', 'daemon-reload'] }, { argv: ['systemctl', 'enable', '--now', UNIT_NAME] }]);
      const plan = await install({ agentArgs: agentArgs(options), bundlePath: bundle, nodePath: '/usr/bin/node', root, systemctl: true, runner });
      runner.assertDone();
      expect(plan).toEqual(planInstall({ agentArgs: agentArgs(options), nodePath: '/usr/bin/node' }));
      const program = join(root, 'usr/local/lib/wgctl/vm-agent.js');
      expect(readFileSync(program, 'utf8')).toBe(readFileSync(bundle, 'utf8'));
      expect(statSync(program).mode & 0o777).toBe(0o755);
      const unitFile = join(root, UNIT_PATH);
      expect(statSync(unitFile).mode & 0o777).toBe(0o644);
      expect(readFileSync(unitFile, 'utf8')).toContain(
        'ExecStart=/usr/bin/node /usr/local/lib/wgctl/vm-agent.js --listen 192.0.2.10:7443 --tls-dir /etc/wgctl/tls --wg-config /etc/wireguard/wg0.conf',
      );

      const down = jest.fn(async () => undefined);
      const off = new ScriptedRunner([{ argv: ['systemctl', 'disable', '--now', UNIT_NAME] }, { argv: ['systemctl', 'daemon-reload'] }]);
      await uninstall({ root, systemctl: true, runner: off, down });
      off.assertDone();
      expect(down).toHaveBeenCalledTimes(1);
      expect(existsSync(program)).toBe(false);
      expect(existsSync(unitFile)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** ExecStart runs as root: node and the program's directory must be root's all the way up (chown simulates a user's). */
describe('install refuses what a non-root user could replace', () => {
  let root: string;
  let bundle: string;
  const userOwned = (path: string): string => {
    mkdirSync(path, { recursive: true, mode: 0o755 });
    chownSync(path, 1000, 1000);
    return path;
  };
  beforeEach(() => {
    root = mkdtempSync('/tmp/wtv-trust-');
    bundle = join(root, 'bundle.js');
    writeFileSync(bundle, '// the agent\n');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  const installInto = (nodePath: string, extra: { allowUntrustedProgram?: boolean; log?: (line: string) => void } = {}) =>
    install({ agentArgs: ['--listen', '192.0.2.10:7443'], bundlePath: bundle, nodePath, root, systemctl: false, runner: new ScriptedRunner([]), ...extra });

  it('refuses a prefix under a user-owned directory, before writing anything', async () => {
    const lib = userOwned(join(root, 'usr/local/lib'));
    await expect(installInto('/usr/bin/node')).rejects.toThrow(
      `program directory ${join(lib, 'wgctl')}: directory ${lib} is owned by uid 1000, not root: give --prefix a root-owned directory (default /usr/local)`,
    );
    expect(existsSync(join(lib, 'wgctl'))).toBe(false);
    expect(existsSync(join(root, UNIT_PATH))).toBe(false);
  });

  it('refuses a node a user could replace', async () => {
    const node = join(userOwned(join(root, 'home/ann/.nvm')), 'node');
    writeFileSync(node, '', { mode: 0o755 });
    await expect(installInto(node)).rejects.toThrow(`node ${node}: ${join(root, 'home/ann/.nvm')} is owned by uid 1000, not root: run install with a node only root can change`);
    expect(existsSync(join(root, UNIT_PATH))).toBe(false);
  });

  it('--allow-untrusted-program installs anyway, logging a warning; the agent repeats it at every start', async () => {
    const lib = userOwned(join(root, 'usr/local/lib'));
    const lines: string[] = [];
    await installInto('/usr/bin/node', { allowUntrustedProgram: true, log: (line) => void lines.push(line) });
    expect(existsSync(join(lib, 'wgctl/vm-agent.js'))).toBe(true);
    expect(lines[0]).toMatch(new RegExp(`^WARNING: installed with --allow-untrusted-program; .*${lib} is owned by uid 1000, not root`));
    expect(untrustedProgramAtStart('/usr/bin/node', join(lib, 'wgctl/vm-agent.js'))).toEqual([`program ${join(lib, 'wgctl/vm-agent.js')}: ${lib} is owned by uid 1000, not root`]);
    expect(untrustedProgramAtStart('/usr/bin/node', bundle)).toEqual([]);
  });
});

describe('command line', () => {
  const parse = async (argv: string[]): Promise<Record<string, unknown>> => {
    const program = buildProgram().exitOverride();
    let captured: Record<string, unknown> = {};
    program.action((raw: Record<string, unknown>) => {
      captured = raw;
    });
    await program.parseAsync(['node', 'vm-agent', ...argv]);
    return captured;
  };

  it('needs --listen and mTLS unless the loopback dev flag is given', async () => {
    expect(() => agentOptionsFrom(({ wgConfig: 'x' }) as Record<string, unknown>)).toThrow(/--listen ADDR:PORT is required/);
    const raw = await parse(['--listen', '192.0.2.10:7443']);
    expect(() => agentOptionsFrom(raw)).toThrow(/--tls-dir is required/);
    const dev = agentOptionsFrom(await parse(['--listen', '127.0.0.1:7443', '--insecure-loopback-dev']));
    expect(dev).toMatchObject({ insecureLoopbackDev: true, wgConfig: '/etc/wireguard/wg0.conf', healthIntervalMs: 15_000, handshakeThresholdS: 180 });
    // The flag's default is the sampler's (cli.ts stays free of the sampler's imports).
    expect(dev.healthIntervalMs).toBe(DEFAULT_HEALTH_INTERVAL_MS);
    expect(() => agentOptionsFrom({ ...raw, tlsDir: '/t', insecureLoopbackDev: true })).toThrow(/not both/);
  });

  it('round-trips options through the flags install writes', async () => {
    const options = agentOptionsFrom(
      await parse(['--listen', '192.0.2.10:7443', '--tls-dir', '/etc/wgctl/tls', '--wg-config', '/etc/wireguard/wg1.conf', '--state-dir', '/srv/state', '--health-interval', '1000', '--wg-method', 'wg-quick']),
    );
    expect(agentOptionsFrom(await parse(agentArgs(options)))).toEqual(options);
  });
});
