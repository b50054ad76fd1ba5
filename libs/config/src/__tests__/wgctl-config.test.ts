import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseWgctlConfig } from '../index';

const valid = {
  version: 1,
  vm: { address: '192.0.2.10', port: 7443 },
  mac: { agent: 'unix:/var/run/wgctl/mac-agent.sock' },
  tlsDir: 'pki',
  dns: ['192.0.2.53', '2001:db8::53'],
  handshakeTimeoutMs: 15000,
  ipv6: 'block',
};

describe('wgctl config', () => {
  let dir: string;
  const write = (name: string, content: unknown, mode = 0o644): string => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    chmodSync(path, mode);
    return path;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a valid file and resolves tlsDir against the file', () => {
    const config = loadConfig(write('ok.json', valid));
    expect(config.vm).toEqual({ address: '192.0.2.10', port: 7443 });
    expect(config.tlsDir).toBe(join(dir, 'pki'));
    expect(config.ipv6).toBe('block');
  });

  it('takes an optional vm.address6 (the VM\'s IPv6 on the vnic) and refuses anything but an IPv6 there', () => {
    const config = parseWgctlConfig({ ...valid, vm: { ...valid.vm, address6: '2001:db8:6:1::2' } });
    expect(config.vm.address6).toBe('2001:db8:6:1::2');
    for (const bad of ['192.0.2.2', 'vm.local', '2001:db8::/64', '']) {
      let problems: { path: string }[] = [];
      try {
        parseWgctlConfig({ ...valid, vm: { ...valid.vm, address6: bad } });
      } catch (error) {
        problems = (error as ConfigError).problems;
      }
      expect({ bad, paths: problems.map((p) => p.path) }).toEqual({ bad, paths: ['vm.address6'] });
    }
  });

  it('takes portal.probeUrl, a plain http:// URL only, and no other key under portal', () => {
    const probeUrl = 'http://198.51.100.80:8080/hotspot-detect.html';
    expect(parseWgctlConfig({ ...valid, portal: { probeUrl } }).portal).toEqual({ probeUrl });
    expect(parseWgctlConfig({ ...valid, portal: {} }).portal).toEqual({});
    const problemsOf = (portal: unknown): string[] => {
      try {
        parseWgctlConfig({ ...valid, portal });
        return [];
      } catch (error) {
        return (error as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
      }
    };
    expect(problemsOf({ probeUrl: 'https://captive.example/' })).toEqual([expect.stringMatching(/^portal\.probeUrl: expected a plain http:\/\/ URL/)]);
    expect(problemsOf({ probeUrl: 'captive.example/hotspot' })).toEqual([expect.stringMatching(/^portal\.probeUrl: expected an http:\/\/ URL/)]);
    expect(problemsOf({ probeUrl: 'http://user:secret@captive.example/' })).toEqual([expect.stringMatching(/^portal\.probeUrl: expected no user or password/)]);
    expect(problemsOf({ probeUrl: 42 })).toEqual([expect.stringMatching(/^portal\.probeUrl: /)]);
    expect(problemsOf({ probeURL: 'http://captive.example/' })).toEqual([expect.stringMatching(/^portal: .*probeURL/)]);
  });

  it('names every bad field with its JSON path', () => {
    const path = write('bad.json', {
      ...valid,
      vm: { address: '192.0.2.10', port: 70000 },
      mac: { agent: '2001:db8::1:7443' },
      dns: ['192.0.2.53', 'resolver'],
      ipv6: 'maybe',
      extra: true,
    });
    let error: ConfigError | undefined;
    try {
      loadConfig(path);
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const paths = error!.problems.map((p) => p.path).sort();
    expect(paths).toEqual(['(root)', 'dns[1]', 'ipv6', 'mac.agent', 'vm.port']);
    expect(error!.message).toContain(`${path}: invalid configuration`);
    expect(error!.message).toContain('vm.port: port must be 1–65535');
    expect(error!.message).toContain('mac.agent: an IPv6 address needs brackets');
    expect(error!.message).toContain('dns[1]: expected an IPv4 or IPv6 address');
    expect(error!.message).toMatch(/\(root\): .*extra/);
  });

  it('requires the mandatory fields and version 1', () => {
    expect(() => parseWgctlConfig({ version: 2 })).toThrow(/version: expected version 1/);
    const error = (() => {
      try {
        parseWgctlConfig({});
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('an empty document was accepted');
    })();
    expect(error.problems.map((p) => p.path).sort()).toEqual(['mac', 'tlsDir', 'version', 'vm']);
  });

  it('refuses a group- or world-writable file', () => {
    const path = write('writable.json', valid, 0o666);
    expect(() => loadConfig(path)).toThrow(`${path}: is writable by group and others (mode 0666); run: chmod go-w ${path}`);
    chmodSync(path, 0o664);
    expect(() => loadConfig(path)).toThrow(/mode 0664/);
    chmodSync(path, 0o640);
    expect(() => loadConfig(path)).not.toThrow();
  });

  it('refuses a config under a group-writable directory, or owned by another user (StrictModes)', () => {
    const path = write('config.json', valid, 0o600);
    chmodSync(dir, 0o770);
    expect(() => loadConfig(path)).toThrow(`${path}: ${dir} is writable by group (mode 0770); run: chmod go-w ${dir}`);
    chmodSync(dir, 0o700);
    chownSync(path, 4242, 0);
    expect(() => loadConfig(path)).toThrow(`${path}: is owned by uid 4242, not root; run: chown root ${path}`);
  });

  it('reports unreadable JSON and a missing file clearly', () => {
    expect(() => loadConfig(write('broken.json', '{"version": 1,'))).toThrow(/broken\.json: is not valid JSON/);
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/missing\.json: no such file/);
  });
});
