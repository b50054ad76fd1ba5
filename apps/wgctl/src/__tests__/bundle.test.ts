/**
 * The single-file bundle (esbuild + the lazy-commands plugin): it runs, and `--help` does not
 * carry the heavy modules in the part V8 parses at start-up.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { ExecRunner } from '@wgctl/runner';

const root = resolve(__dirname, '../../../..');
let dir: string;
let bundle: string;
const runner = new ExecRunner();
// The brief's build flags keep these external; the bundle finds them in the workspace.
const env = { NODE_PATH: join(root, 'node_modules') };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-bundle-'));
  bundle = join(dir, 'wgctl.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { lazyCommandsPlugin, MARKER } = require(join(root, 'apps/wgctl/build/lazy-commands.cjs')) as {
    lazyCommandsPlugin: () => import('esbuild').Plugin;
    MARKER: string;
  };
  expect(MARKER).toBe('/*WGCTL-COMMANDS:');
  await build({
    entryPoints: [join(root, 'apps/wgctl/src/main.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['grpc-health-check', '@grpc/reflection', '@grpc/proto-loader'],
    plugins: [lazyCommandsPlugin()],
    logLevel: 'error',
    absWorkingDir: root,
  });
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const node = (args: string[], input?: string) =>
  runner.run([process.execPath, bundle, ...args], { allowFailure: true, timeoutMs: 30_000, env, input, cwd: dir, readOnly: true });

describe('bundled wgctl', () => {
  it('--help works and the start-up part holds commander but none of the heavy modules', async () => {
    const r = await node(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: wgctl/);
    const text = readFileSync(bundle, 'utf8');
    const cut = text.lastIndexOf('/*WGCTL-COMMANDS:');
    expect(cut).toBeGreaterThan(0);
    const startup = text.slice(0, cut);
    expect(startup).toContain('node_modules/commander/');
    for (const heavy of ['@grpc/grpc-js', 'listr2', 'zod', '@peculiar', 'winston', 'libs/parsers', 'libs/transport']) {
      expect(startup).not.toContain(`node_modules/${heavy}/`);
      expect(startup).not.toContain(`// ${heavy}/`);
    }
    // The start-up part is small; the rest is one compressed comment.
    expect(startup.length).toBeLessThan(250_000);
  });

  it('commands load from the compressed section: debug parse, its error path, init', async () => {
    const ok = await node(['debug', 'parse', 'resolv-conf', '-'], 'nameserver 192.0.2.53\nsearch example.net\n');
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ nameservers: ['192.0.2.53'], search: ['example.net'] });

    const bad = await node(['debug', 'parse', 'wg-dump', '-'], 'nonsense\n');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^wgctl: debug parse wg-dump: stdin: /);
    expect(bad.stderr).not.toMatch(/^\s+at /m);

    const init = await node(['--json', 'init', '--dir', join(dir, 'cfg'), '--vm-address', '192.0.2.10']);
    expect(init.stderr).toBe('');
    expect(init.exitCode).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({ command: 'init', newCa: true });

    const parseHelp = await node(['debug', 'parse', '--help']);
    expect(parseHelp.stdout).toMatch(/^ {2}wg-dump +wg show IF dump/m);
  });
});
