/**
 * wgctl against the real agents in the namespace lab (root): the bundled CLI, run inside the
 * "Mac" namespace exactly as a user would, drives the real vm-agent and mac-agent (linux
 * driver) over mTLS. Checks what the web host sees before, during and after the tunnel.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { ExecRunner } from '@wgctl/runner';
import { createLab, destroyLab, labExec, labHttpGet, startMacAgent, startVmAgent, stopAgent } from '../../../../tools/lab/src';
import type { Lab } from '../../../../tools/lab/src';
import { publishedSchemaErrors, statusReportSchema } from '../testing/status-schema';

const enabled = process.getuid?.() === 0 || process.env.CI === 'true';
const describeNetns = enabled ? describe : describe.skip;

const root = resolve(__dirname, '../../../..');
const PREFIX = `wgc${process.pid.toString(36)}`;
// Inside the repository so the bundles' external packages resolve from node_modules.
const out = join(root, 'dist', `wgctl-netns-${process.pid}`);
const runner = new ExecRunner();

async function bundle(app: string, plugins: import('esbuild').Plugin[] = []): Promise<string> {
  const outfile = join(out, `${app}.js`);
  await build({
    entryPoints: [join(root, 'apps', app, 'src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['grpc-health-check', '@grpc/reflection', '@grpc/proto-loader'],
    plugins,
    logLevel: 'error',
    absWorkingDir: root,
  });
  return outfile;
}

describeNetns('wgctl with the real agents in the namespace lab', () => {
  let lab: Lab;
  let wgctlJs: string;
  let config: string;

  const wgctl = async (args: string[], timeoutMs = 60_000) => {
    const r = await labExec(lab, 'mac', [process.execPath, wgctlJs, '--config', config, ...args], { runner, allowFailure: true, timeoutMs });
    if (process.env.SHOW_WGCTL) process.stderr.write(`$ wgctl ${args.join(' ')}  [exit ${r.exitCode}]\n${r.stdout}${r.stderr}\n`);
    return r;
  };
  const remoteSeenByWeb = async () => {
    const r = await labHttpGet(lab, 'mac', `http://${lab.web.wan.ipv4}/`, { timeoutMs: 2000 });
    return r.ok ? (JSON.parse(r.body) as { remote: string }).remote : `unreachable: ${r.error}`;
  };

  beforeAll(async () => {
    mkdirSync(out, { recursive: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { lazyCommandsPlugin } = require(join(root, 'apps/wgctl/build/lazy-commands.cjs'));
    const [wg, vmAgent, macAgent] = await Promise.all([bundle('wgctl', [lazyCommandsPlugin()]), bundle('vm-agent'), bundle('mac-agent')]);
    wgctlJs = wg;
    lab = await createLab({ prefix: PREFIX, dir: join(out, 'lab') });

    const dir = join(out, 'wgctl');
    config = join(dir, 'config.json');
    const init = await runner.run(
      [process.execPath, wgctlJs, 'init', '--dir', dir, '--vm-address', lab.vm.eth.ipv4, '--mac-agent', '127.0.0.1:7444'],
      { allowFailure: true },
    );
    expect(init.stderr).toBe('');
    expect(init.exitCode).toBe(0);
    const tlsDir = join(dir, 'tls');
    await startVmAgent(lab, { bundle: vmAgent, tlsDir, listen: `${lab.vm.eth.ipv4}:7443` });
    await startMacAgent(lab, { bundle: macAgent, tlsDir, listen: '127.0.0.1:7444' });
  }, 120_000);

  afterAll(async () => {
    if (lab) {
      await wgctl(['down'], 30_000).catch(() => undefined);
      await stopAgent(lab, 'mac-agent').catch(() => undefined);
      await stopAgent(lab, 'vm-agent').catch(() => undefined);
    }
    await destroyLab(PREFIX).catch(() => undefined);
    rmSync(out, { recursive: true, force: true });
  }, 60_000);

  it('before up: the Mac leaks straight out of the cafe', async () => {
    expect(await remoteSeenByWeb()).toBe(lab.cafes.cafe1.wan.ipv4);
    // The vm-agent reports NOT_SERVING while its tunnel is down: a probe says so (exit 4, grpc_health_probe's).
    const health = await wgctl(['--json', 'health']);
    expect(health.exitCode).toBe(4);
    expect(JSON.parse(health.stdout).agents.map((a: { agent: string; status: string }) => `${a.agent}:${a.status}`)).toEqual([
      'vm:NOT_SERVING',
      'mac:SERVING',
    ]);
  });

  it('plan shows both agents\' commands and changes nothing', async () => {
    const r = await wgctl(['--json', 'plan']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout) as { steps: { side: string; commands: { argv: string[] }[] }[] };
    expect(plan.steps.some((s) => s.side === 'vm')).toBe(true);
    expect(plan.steps.some((s) => s.side === 'mac')).toBe(true);
    expect(plan.steps.flatMap((s) => s.commands).length).toBeGreaterThan(0);
    expect(await remoteSeenByWeb()).toBe(lab.cafes.cafe1.wan.ipv4);
  });

  it('up: exit 0, and the web host now sees the WireGuard server', async () => {
    const r = await wgctl(['up']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^up: done in /m);
    expect(await remoteSeenByWeb()).toBe(lab.srv.wan.ipv4);
    const health = await wgctl(['health']);
    expect(health.stderr).toBe('');
    expect(health.exitCode).toBe(0);
    // grpc_health_probe's codes: a service the real agents do not serve is an RPC failure (NOT_FOUND).
    expect((await wgctl(['health', '--agent', 'vm', '--service', 'wgctl.v1.Nope'])).exitCode).toBe(3);
  });

  it('status: healthy, JSON valid against the schema', async () => {
    expect((await wgctl(['status'])).exitCode).toBe(0);
    const r = await wgctl(['--json', 'status']);
    const report = statusReportSchema.parse(JSON.parse(r.stdout));
    expect(report.problems).toEqual([]);
    // The real output against the published docs/status.schema.json, by ajv.
    expect(publishedSchemaErrors(JSON.parse(r.stdout))).toEqual([]);
    expect(r.exitCode).toBe(0);
  });

  it('verify: PASS', async () => {
    const r = await wgctl(['verify', '--duration', '2', '--target', lab.web.wan.ipv4], 90_000);
    expect(r.stdout).toMatch(/verify: PASS/);
    expect(r.exitCode).toBe(0);
  });

  it('down: exit 0, the Mac goes straight out again', async () => {
    const r = await wgctl(['down']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(await remoteSeenByWeb()).toBe(lab.cafes.cafe1.wan.ipv4);
    const status = await wgctl(['--json', 'status']);
    expect(status.exitCode).toBe(2);
    expect(publishedSchemaErrors(JSON.parse(status.stdout))).toEqual([]);
  });
});
