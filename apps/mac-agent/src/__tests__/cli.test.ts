import { DEFAULT_LISTEN, agentOptionsFrom, buildProgram, defaultDriver, defaultStateDir } from '../cli';
import { agentArgs } from '../options';

describe('mac-agent CLI', () => {
  /** The options the agent would run with, from a command line. */
  const parse = async (args: string[]) => {
    let raw: Record<string, unknown> = {};
    const program = buildProgram().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    program.action((r: Record<string, unknown>) => {
      raw = r;
    });
    await program.parseAsync(['node', 'mac-agent', ...args]);
    return agentOptionsFrom(raw);
  };

  it('defaults: the unix socket, the platform driver, a state dir per OS', () => {
    expect(DEFAULT_LISTEN).toBe('unix:/var/run/wgctl/mac-agent.sock');
    expect(defaultDriver('darwin')).toBe('darwin');
    expect(defaultDriver('linux')).toBe('linux');
    expect(defaultStateDir('darwin')).toBe('/Library/Application Support/wgctl/mac-agent');
    expect(defaultStateDir('linux')).toBe('/var/lib/wgctl/mac-agent');
  });

  it('needs --tls-dir off the unix socket; socket group admin on darwin', () => {
    const base = { driver: 'linux', listen: '0.0.0.0:7443', logLevel: 'info', dnsResolvConf: '/etc/resolv.conf', dnsMode: 'resolv-conf' };
    expect(() => agentOptionsFrom(base)).toThrow(/give --tls-dir/);
    expect(agentOptionsFrom({ ...base, tlsDir: '/etc/wgctl/pki' })).toMatchObject({ listen: '0.0.0.0:7443', stateDir: '/var/lib/wgctl/mac-agent', socketGroup: undefined });
    expect(agentOptionsFrom({ ...base, driver: 'darwin', listen: DEFAULT_LISTEN }).socketGroup).toBe('admin');
  });

  it('reproduces its options for the service definition', () => {
    const options = agentOptionsFrom({ driver: 'linux', listen: DEFAULT_LISTEN, stateDir: '/s', logLevel: 'debug', dnsResolvConf: '/etc/resolv.conf', dnsMode: 'resolv-conf' });
    expect(agentArgs(options)).toEqual(['--driver', 'linux', '--listen', DEFAULT_LISTEN, '--state-dir', '/s', '--log-level', 'debug', '--dns-mode', 'resolv-conf', '--dns-resolv-conf', '/etc/resolv.conf']);
  });

  it('--health-interval: passed through to the service definition, checked, default left to the sampler', async () => {
    const options = await parse(['--driver', 'linux', '--health-interval', '1000']);
    expect(options.healthIntervalMs).toBe(1000);
    expect(agentArgs(options).slice(-2)).toEqual(['--health-interval', '1000']);
    expect((await parse(['--driver', 'linux'])).healthIntervalMs).toBeUndefined();
    await expect(parse(['--driver', 'linux', '--health-interval', '50'])).rejects.toThrow(/milliseconds from 200 to 600000/);
  });

  it('--roam-check-interval: passed through to the service definition, 0 turns it off, checked, default left to the engine', async () => {
    const options = await parse(['--driver', 'linux', '--roam-check-interval', '2000']);
    expect(options.roamCheckIntervalMs).toBe(2000);
    expect(agentArgs(options).slice(-2)).toEqual(['--roam-check-interval', '2000']);
    expect((await parse(['--driver', 'linux', '--roam-check-interval', '0'])).roamCheckIntervalMs).toBe(0);
    expect((await parse(['--driver', 'linux'])).roamCheckIntervalMs).toBeUndefined();
    await expect(parse(['--driver', 'linux', '--roam-check-interval', '50'])).rejects.toThrow(/0 \(off\) or milliseconds from 200 to 600000/);
  });

  it('--heal-check-interval: passed through to the service definition, 0 turns the periodic look off, checked', async () => {
    const options = await parse(['--driver', 'darwin', '--heal-check-interval', '500']);
    expect(options.healCheckIntervalMs).toBe(500);
    expect(agentArgs(options).slice(-2)).toEqual(['--heal-check-interval', '500']);
    expect((await parse(['--driver', 'linux', '--heal-check-interval', '0'])).healCheckIntervalMs).toBe(0);
    expect((await parse(['--driver', 'linux'])).healCheckIntervalMs).toBeUndefined();
    await expect(parse(['--driver', 'linux', '--heal-check-interval', '50'])).rejects.toThrow(/0 \(off\) or milliseconds from 200 to 600000/);
  });

  it('documents every flag of the issue in --help, with install and uninstall', () => {
    const help = buildProgram().helpInformation();
    for (const flag of ['--driver', '--listen', '--tls-dir', '--state-dir', '--log-level', '--dns-resolv-conf', '--roam-check-interval', 'install', 'uninstall']) expect(help).toContain(flag);
  });

  it('rejects an unknown driver', async () => {
    const program = buildProgram().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    await expect(program.parseAsync(['node', 'mac-agent', '--driver', 'windows'])).rejects.toThrow(/Allowed choices are darwin, linux/);
  });
});
