import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@wgctl/config';
import { certificateInfo, loadTlsMaterial } from '@wgctl/transport';
import { cli } from '../testing/cli-harness';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-init-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (path: string) => statSync(path).mode & 0o777;

describe('wgctl init', () => {
  it('writes a config that loads and a PKI with 0600 keys and the right SANs', async () => {
    const out = join(dir, 'wgctl');
    const r = await cli(['init', '--dir', out, '--vm-address', '192.0.2.10', '--vm-port', '7555', '--mac-agent', '127.0.0.1:7444', '--dns', '10.64.0.1,10.64.0.2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    const configFile = join(out, 'config.json');
    expect(mode(configFile)).toBe(0o600);
    const config = loadConfig(configFile);
    expect(config).toEqual({
      version: 1,
      vm: { address: '192.0.2.10', port: 7555 },
      mac: { agent: '127.0.0.1:7444' },
      tlsDir: join(out, 'tls'),
      dns: ['10.64.0.1', '10.64.0.2'],
    });
    // Stored relative, so the directory can move as a whole.
    expect(JSON.parse(readFileSync(configFile, 'utf8')).tlsDir).toBe('tls');

    const tls = join(out, 'tls');
    expect(mode(tls)).toBe(0o700);
    for (const role of ['ca', 'controller', 'vm-agent', 'mac-agent', 'monitor']) {
      expect(mode(join(tls, `${role}.key`))).toBe(0o600);
      expect(existsSync(join(tls, `${role}.crt`))).toBe(true);
    }
    for (const role of ['controller', 'vm-agent', 'mac-agent', 'monitor'] as const) loadTlsMaterial(tls, role);
    expect(certificateInfo(readFileSync(join(tls, 'vm-agent.crt'))).sans).toEqual(['DNS:vm-agent', 'IP:192.0.2.10']);
    expect(certificateInfo(readFileSync(join(tls, 'mac-agent.crt'))).sans).toEqual(['DNS:mac-agent', 'IP:127.0.0.1']);

    // The exact next steps: what to copy where, and both install commands.
    expect(r.stdout).toContain(`scp ${join(tls, 'ca.crt')} ${join(tls, 'vm-agent.crt')} ${join(tls, 'vm-agent.key')} root@192.0.2.10:/etc/wgctl/tls/`);
    expect(r.stdout).toContain('sudo node /root/vm-agent.js install --listen 192.0.2.10:7555 --tls-dir /etc/wgctl/tls --wg-config /etc/wireguard/wg0.conf');
    // launchd runs node and the agent as root: both in a root-owned tree on every Mac, never
    // /usr/local/lib (Homebrew's user owns it on Intel) nor Homebrew's node (user-owned dylibs).
    expect(r.stdout).toContain(`sudo install -d -m 0755 '/Library/Application Support/wgctl' && sudo install -m 0644 dist/apps/mac-agent/mac-agent.js '/Library/Application Support/wgctl'/`);
    expect(r.stdout).toContain(`sudo install -m 0755 NODE_DIR/bin/node '/Library/Application Support/wgctl'/node`);
    expect(r.stdout).toMatch(/NODE_DIR: the nodejs\.org macOS build.*\n.*Homebrew's node loads .* from Homebrew's user-owned prefix, so install refuses it/);
    expect(r.stdout).not.toContain('/usr/local/lib/wgctl');
    // The mac-agent (root) gets its own root-owned copy: it refuses the user's folder (StrictModes).
    expect(r.stdout).toContain(`sudo install -d -m 0700 '/Library/Application Support/wgctl/tls' && sudo install -m 0644 ${join(tls, 'ca.crt')} ${join(tls, 'mac-agent.crt')} '/Library/Application Support/wgctl/tls'/`);
    expect(r.stdout).toContain(`sudo install -m 0600 ${join(tls, 'mac-agent.key')} '/Library/Application Support/wgctl/tls'/`);
    expect(r.stdout).toContain(
      `sudo '/Library/Application Support/wgctl/node' '/Library/Application Support/wgctl/mac-agent.js' install --listen 127.0.0.1:7444 --tls-dir '/Library/Application Support/wgctl/tls'`,
    );
    expect(r.stdout).toContain(`export WGCTL_CONFIG=${configFile}`);
  });

  it('defaults: port 7443, mac-agent on a unix socket, config under $HOME/.config/wgctl', async () => {
    const r = await cli(['init', '--vm-address', '2001:db8::10'], { env: { HOME: dir } });
    expect(r.code).toBe(0);
    const config = loadConfig(join(dir, '.config/wgctl/config.json'));
    expect(config.vm).toEqual({ address: '2001:db8::10', port: 7443 });
    expect(config.mac.agent).toBe('unix:/var/run/wgctl/mac-agent.sock');
    expect(r.stdout).toContain('--listen [2001:db8::10]:7443');
    expect(r.stdout).not.toContain('WGCTL_CONFIG');
  });

  it('names every bad flag and writes nothing', async () => {
    const out = join(dir, 'bad');
    const r = await cli(['init', '--dir', out, '--vm-address', 'not-an-ip', '--mac-agent', 'unix:relative.sock', '--dns', '10.0.0.300']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--vm-address: expected an IPv4 or IPv6 address, got "not-an-ip"/);
    expect(r.stderr).toMatch(/--mac-agent: unix socket path must be absolute/);
    expect(r.stderr).toMatch(/--dns: expected an IPv4 or IPv6 address, got "10.0.0.300"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  it('accepts --ipv6 route (checked at up, once the agents are described)', async () => {
    const out = join(dir, 'v6');
    const r = await cli(['init', '--dir', out, '--vm-address', '192.0.2.10', '--vm-address6', '2001:db8:6:1::2', '--ipv6', 'route']);
    expect(r.code).toBe(0);
    expect(loadConfig(join(out, 'config.json'))).toMatchObject({ ipv6: 'route', vm: { address6: '2001:db8:6:1::2' } });
  });

  it('--vm-address6 writes vm.address6 (for ipv6 auto/route); anything but an IPv6 is refused, naming the flag', async () => {
    const out = join(dir, 'v6addr');
    const r = await cli(['init', '--dir', out, '--vm-address', '198.51.100.2', '--vm-address6', '2001:db8:6:1::2', '--ipv6', 'auto']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const config = loadConfig(join(out, 'config.json'));
    expect(config.vm).toEqual({ address: '198.51.100.2', address6: '2001:db8:6:1::2', port: 7443 });
    expect(config.ipv6).toBe('auto');

    const bad = await cli(['init', '--dir', join(dir, 'bad6'), '--vm-address', '198.51.100.2', '--vm-address6', '198.51.100.3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--vm-address6: expected an IPv6 address such as 2001:db8::2, got "198\.51\.100\.3"/);
    expect(existsSync(join(dir, 'bad6'))).toBe(false);
  });

  it('requires --vm-address', async () => {
    const r = await cli(['init', '--dir', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--vm-address is required/);
  });

  it('rejects a bad --vm-port at parse time, naming the flag', async () => {
    const r = await cli(['init', '--dir', dir, '--vm-address', '192.0.2.10', '--vm-port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/option '--vm-port <port>' argument '70000' is invalid/);
  });

  it('refuses to overwrite without --force; --force keeps the CA and reissues the certificates', async () => {
    const out = join(dir, 'w');
    expect((await cli(['init', '--dir', out, '--vm-address', '192.0.2.10'])).code).toBe(0);
    const caBefore = readFileSync(join(out, 'tls/ca.crt'), 'utf8');
    const vmBefore = readFileSync(join(out, 'tls/vm-agent.crt'), 'utf8');

    const again = await cli(['init', '--dir', out, '--vm-address', '192.0.2.11']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists: pass --force/);

    const forced = await cli(['init', '--dir', out, '--vm-address', '192.0.2.11', '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(out, 'tls/ca.crt'), 'utf8')).toBe(caBefore);
    expect(readFileSync(join(out, 'tls/vm-agent.crt'), 'utf8')).not.toBe(vmBefore);
    expect(certificateInfo(readFileSync(join(out, 'tls/vm-agent.crt'))).sans).toContain('IP:192.0.2.11');
    expect(loadConfig(join(out, 'config.json')).vm.address).toBe('192.0.2.11');
  });

  it('--rotate renews every leaf under the same CA; --rotate-ca replaces the CA', async () => {
    const out = join(dir, 'r');
    await cli(['init', '--dir', out, '--vm-address', '192.0.2.10']);
    const fingerprint = (role: string) => certificateInfo(readFileSync(join(out, `tls/${role}.crt`))).fingerprint256;
    const before = { ca: fingerprint('ca'), controller: fingerprint('controller'), vm: fingerprint('vm-agent') };

    const r = await cli(['init', '--dir', out, '--rotate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Renewed 4 certificates .* \(same CA\)/);
    expect(fingerprint('ca')).toBe(before.ca);
    expect(fingerprint('controller')).not.toBe(before.controller);
    expect(fingerprint('vm-agent')).not.toBe(before.vm);
    expect(mode(join(out, 'tls/controller.key'))).toBe(0o600);
    loadTlsMaterial(join(out, 'tls'), 'controller');

    const withCa = await cli(['init', '--dir', out, '--rotate', '--rotate-ca']);
    expect(withCa.code).toBe(0);
    expect(withCa.stdout).toMatch(/under a NEW CA/);
    expect(fingerprint('ca')).not.toBe(before.ca);
    loadTlsMaterial(join(out, 'tls'), 'vm-agent');
  });

  it('--rotate needs a config and refuses address flags', async () => {
    const none = await cli(['init', '--dir', join(dir, 'none'), '--rotate']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--rotate needs an existing config: .*no such file/);
    await cli(['init', '--dir', join(dir, 'y'), '--vm-address', '192.0.2.10']);
    const flags = await cli(['init', '--dir', join(dir, 'y'), '--rotate', '--vm-address', '192.0.2.12']);
    expect(flags.code).toBe(2);
    expect(flags.stderr).toMatch(/--rotate renews certificates only; drop --vm-address/);
  });

  it('--json reports what was written', async () => {
    const r = await cli(['--json', 'init', '--dir', join(dir, 'j'), '--vm-address', '192.0.2.10']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ command: 'init', config: join(dir, 'j/config.json'), newCa: true });
    expect(doc.files).toEqual(expect.arrayContaining(['ca.crt', 'vm-agent.key', 'monitor.crt']));
  });

  it('a config that later commands cannot read is exit 2 with the field named', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ version: 1, vm: { address: '192.0.2.10', port: 0 }, mac: { agent: 'unix:/x' }, tlsDir: 'tls' }), { mode: 0o600 });
    const r = await cli(['--config', bad, 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/vm\.port: port must be 1–65535/);
  });
});
