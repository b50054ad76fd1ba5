/** up / down / plan through the whole CLI (config file, mTLS, fake agents, rendering, exit codes). */
import { type Lab, okSteps, startLab } from '../testing/fake-agents';
import { cli, writeLabConfig } from '../testing/cli-harness';

let lab: Lab;
let config: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab, { dns: ['198.51.100.53'] });
});
afterEach(() => lab.cleanup());

describe('wgctl up', () => {
  it('brings the VM up (the Mac fail-closed meanwhile), then the Mac, with plain progress lines and the total time', async () => {
    const r = await cli(['--config', config, 'up']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up']);
    expect(r.stdout).toMatch(/mac kill-switch done: kill-switch done/);
    const steps = r.stdout
      .split('\n')
      .map((l) => /^\[\s*[\d.]+s\] ([a-z-]+): (?!ok|FAILED)/.exec(l)?.[1])
      .filter(Boolean);
    expect(steps).toEqual(['connect', 'vm-up', 'mac-up']);
    expect(r.stdout).toMatch(/vm  wg-quick-up done: wg-quick-up done\n.*\$ true wg-quick-up/);
    expect(r.stdout).toMatch(/^up: done in [\d.]+ (ms|s): all traffic goes through the tunnel \(server 203\.0\.113\.5:51820, tunnel 10\.64\.0\.2\/32\)$/m);
    // The configured DNS wins over the VM's.
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ dnsServers: ['198.51.100.53'], vmAddress: '127.0.0.1' });
  });

  it('ipv6 "route" with a piece missing fails at connect naming it (exit 1, nothing changed); with every piece, it routes', async () => {
    const routed = writeLabConfig(lab, { ipv6: 'route' });
    const r = await cli(['--config', routed, 'up']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED at step connect: ipv6: route cannot route the Mac's IPv6 through the tunnel: missing vm\.address6 in the config/);
    expect(r.stderr).toMatch(/an IPv6 Address in the VM's WireGuard config/);
    expect(lab.agents.sequence()).toEqual([]);
    const plan = await cli(['--config', routed, 'plan']);
    expect(plan.code).toBe(1);
    expect(lab.agents.sequence()).toEqual([]);

    lab.agents.vm.describe = { ...lab.agents.vm.describe, tunnelAddresses: ['10.64.0.2/32', '2001:db8:6:64::2/128'] };
    lab.agents.mac.describe = { ...lab.agents.mac.describe, vnicAddress6: '2001:db8:6:1::1' };
    const complete = writeLabConfig(lab, { ipv6: 'route', vm: { address: '127.0.0.1', address6: '2001:db8:6:1::2', port: Number(lab.agents.vmTarget.split(':').pop()) } });
    const ok = await cli(['--config', complete, 'up']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('IPv6: routed through the tunnel (Mac 2001:db8:6:1::1 via 2001:db8:6:1::2)');
    expect(lab.agents.calls.find((c) => c.side === 'vm' && c.rpc === 'Up')!.request).toMatchObject({ macSource6: '2001:db8:6:1::1' });
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ ipv6: 1, vmAddress6: '2001:db8:6:1::2' });
  });

  it('on failure: exit 1, names the failing step and the command stderr, rolls back in reverse order', async () => {
    lab.agents.mac.up = {
      steps: [
        ...okSteps('pin-endpoint'),
        {
          step: 'kill-switch',
          state: 'failed',
          message: 'pfctl refused the rules',
          commands: [{ argv: ['pfctl', '-a', 'com.wgctl', '-f', '-'], exitCode: 1, stderr: 'stdin:3: syntax error' }],
        },
      ],
      outcome: { ok: false, failedStep: 'kill-switch', error: 'pfctl refused the rules' },
    };
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    expect(r.stderr).toContain('wgctl up: FAILED at step mac-up (agent step kill-switch): mac-agent failed at step kill-switch: pfctl refused the rules');
    expect(r.stderr).toContain('  command: pfctl -a com.wgctl -f - (exit 1)');
    expect(r.stderr).toContain('  stderr:  stdin:3: syntax error');
    expect(r.stderr).toMatch(/rollback mac-agent Down: ok\n {2}rollback vm-agent Down: ok\n {2}total /);
    expect(r.stdout).toMatch(/rolling back: rollback-mac, rollback-vm/);
  });

  it('--json: a successful up, with the endpoints the VM applied and the IPv6 mode as a word', async () => {
    const r = await cli(['--config', config, '--json', 'up']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      command: 'up',
      ok: true,
      endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }],
      tunnelAddresses: ['10.64.0.2/32'],
      ipv6: { mode: 'block' },
    });
  });

  it('--json: one document with the failure and the rollback', async () => {
    lab.agents.vm.up = { steps: [], outcome: { ok: false, failedStep: 'await-handshake', error: 'no handshake' } };
    const r = await cli(['--config', config, '--json', 'up']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      command: 'up',
      ok: false,
      failure: { step: 'vm-up', agentStep: 'await-handshake' },
      // The Mac was made fail-closed on the VM's plan: undone first.
      rollback: [
        { side: 'mac', ok: true },
        { side: 'vm', ok: true },
      ],
    });
  });

  it('Ctrl-C during VM Up: finishes that step, routes nothing through the Mac, rolls back its kill switch and the VM', async () => {
    lab.agents.vm.up = { steps: okSteps('wg-quick-up', 'await-handshake'), outcome: { ok: true }, delayMs: 150 };
    const r = await cli(['--config', config, 'up'], { onStart: (interrupt) => setTimeout(interrupt, 250) });
    expect(r.code).toBe(1);
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Down', 'vm.Down']);
    expect(lab.agents.calls.find((c) => c.side === 'mac' && c.rpc === 'Up')!.request).toMatchObject({ killSwitchOnly: true });
    expect(r.stderr).toMatch(/interrupted: finishing the current step, then rolling back/);
    expect(r.stderr).toMatch(/interrupted by the user/);
  });

  it('an unreachable agent fails at connect, changes nothing, exit 1', async () => {
    await lab.agents.stop('vm');
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    expect(lab.agents.sequence()).toEqual([]);
    expect(r.stderr).toMatch(/FAILED at step connect: cannot reach vm-agent at 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/nothing to roll back/);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const r = await cli(['--config', config, 'up', '--dry-run']);
    expect(r.code).toBe(0);
    expect(lab.agents.calls.filter((c) => c.rpc === 'Up').map((c) => (c.request as { dryRun: boolean }).dryRun)).toEqual([true, true]);
    expect(lab.agents.sequence(['Down'])).toEqual([]);
    expect(r.stdout).toMatch(/Plan for `wgctl up`/);
  });

  it('--mac-source must be an address (exit 2, flag named)', async () => {
    const r = await cli(['--config', config, 'up', '--mac-source', 'en0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--mac-source: expected an IPv4 or IPv6 address, got "en0"/);
    expect(lab.agents.calls).toEqual([]);
  });
});

describe('wgctl plan', () => {
  it('lists every step of both agents with its argv, VM first, numbered in order', async () => {
    lab.agents.vm.up = {
      steps: [{ step: 'wg-quick-up', state: 'done', message: 'bring wg0 up', commands: [{ argv: ['ip', 'link', 'show', 'wg0'], exitCode: 1, dryRun: false }, { argv: ['wg-quick', 'up', 'wg0'] }] }],
      outcome: { ok: true },
    };
    lab.agents.mac.up = {
      steps: [{ step: 'kill-switch', state: 'done', message: 'load anchor', commands: [{ argv: ['pfctl', '-a', 'com.wgctl', '-f', '/tmp/rules with space'] }] }],
      outcome: { ok: true },
    };
    const r = await cli(['--config', config, 'plan']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      [
        'VM (vm-agent), in order:',
        '  1. wg-quick-up: bring wg0 up',
        '       $ ip link show wg0   (read-only, ran to inspect)',
        '       $ wg-quick up wg0 (would run)',
        '',
        'Mac (mac-agent), in order:',
        '  2. kill-switch: load anchor',
        "       $ pfctl -a com.wgctl -f '/tmp/rules with space' (would run)",
      ].join('\n'),
    );
  });

  it('--json gives the steps as data', async () => {
    const r = await cli(['--config', config, '--json', 'plan']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.map((s: { side: string; step: string }) => `${s.side}:${s.step}`)).toEqual([
      'vm:wg-quick-up',
      'vm:await-handshake',
      'vm:forward',
      'vm:snat',
      'mac:pin-endpoint',
      'mac:split-routes',
      'mac:kill-switch',
      'mac:dns',
    ]);
    expect(doc.steps[0].commands).toEqual([{ argv: ['true', 'wg-quick-up'], wouldRun: true }]);
    // What the VM's dry run would apply, and the IPv6 mode as the config spells it.
    expect(doc).toMatchObject({ endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }], tunnelAddresses: ['10.64.0.2/32'], ipv6: { mode: 'block' } });
  });
});

describe('wgctl down', () => {
  it('Mac first, then VM; exit 0', async () => {
    const r = await cli(['--config', config, 'down']);
    expect(r.code).toBe(0);
    expect(lab.agents.sequence()).toEqual(['mac.Down', 'vm.Down']);
    expect(r.stdout).toMatch(/down: done in .*\n {2}mac-agent: down\n {2}vm-agent: down/);
  });

  it('one agent unreachable: does the other, says what is left, exit 1', async () => {
    await lab.agents.stop('mac');
    const r = await cli(['--config', config, 'down']);
    expect(r.code).toBe(1);
    expect(lab.agents.sequence()).toEqual(['vm.Down']);
    expect(r.stderr).toMatch(/mac-agent: UNREACHABLE: cannot reach mac-agent at unix:/);
    expect(r.stderr).toMatch(/vm-agent: down/);
    expect(r.stderr).toMatch(/left: Mac: split routes, endpoint pin, kill switch and DNS may still be in place/);
  });

  it('--force and --dry-run reach the agents', async () => {
    const r = await cli(['--config', config, 'down', '--force', '--dry-run']);
    expect(r.code).toBe(0);
    // The VM's address: the mac-agent recognises its split routes by it when its journal is unusable.
    expect(lab.agents.calls.filter((c) => c.rpc === 'Down').map((c) => c.request)).toEqual([
      { dryRun: true, vmAddress: '127.0.0.1', vmAddress6: '', endpoints: [{ host: '', ip: '203.0.113.5', port: 51820 }], exclude: [] },
      { dryRun: true, forceInterfaceDown: true },
    ]);
  });

  it('a Down that could not restore everything (journal unusable) exits 3 and lists what, per side', async () => {
    lab.agents.mac.down = { steps: [], outcome: { ok: true, notRestored: ['DNS: the settings from before `wgctl up` were only in the journal'] } };
    lab.agents.vm.down = { steps: [], outcome: { ok: true, notRestored: ['net.ipv4.ip_forward=1 left as it is'] } };
    const r = await cli(['--config', config, 'down']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^down: done in /m);
    expect(r.stdout).toMatch(/mac-agent: down, 1 setting\(s\) NOT restored/);
    expect(r.stderr).toContain('could not be restored (the journal was unusable)');
    expect(r.stderr).toMatch(/not restored: mac-agent: DNS: the settings from before/);
    expect(r.stderr).toMatch(/not restored: vm-agent: net\.ipv4\.ip_forward=1 left as it is/);
  });

  it('a clean Down exits 0 with nothing on stderr', async () => {
    const r = await cli(['--config', config, 'down']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});
