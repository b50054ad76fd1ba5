/**
 * tools/build/lazy-package.cjs: prom-client bundled into an agent stays out of the code V8
 * parses at start-up (in a compressed comment at the end of the one file) and still works
 * when the metrics code first requires it — and only then.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { ExecRunner } from '@wgctl/runner';

const root = resolve(__dirname, '../../..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { lazyPackagePlugin, markerFor } = require(join(root, 'tools/build/lazy-package.cjs')) as {
  lazyPackagePlugin: (packages: string[]) => import('esbuild').Plugin;
  markerFor: (pkg: string) => string;
};
const runner = new ExecRunner();

describe('the lazy-package build plugin', () => {
  let dir: string;
  let bundle: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-lazy-package-'));
    const entry = join(dir, 'entry.js');
    // As the agents do: prom-client required only on the --metrics-listen path.
    writeFileSync(
      entry,
      "const loadedBefore = Object.keys(require.cache).length;\n" +
        "if (process.argv[2] === 'metrics') {\n" +
        "  const { Registry, Gauge } = require('prom-client');\n" +
        "  const registry = new Registry();\n" +
        "  new Gauge({ name: 'wgctl_test', help: 'a test', registers: [registry] }).set(1);\n" +
        '  registry.metrics().then((text) => process.stdout.write(text));\n' +
        "} else process.stdout.write('idle ' + loadedBefore + '\\n');\n",
    );
    bundle = join(dir, 'bundle.js');
    await build({ entryPoints: [entry], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, plugins: [lazyPackagePlugin(['prom-client'])], absWorkingDir: root, logLevel: 'error' });
  }, 60_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps prom-client out of the parsed code: only a compressed comment at the end holds it', () => {
    const text = readFileSync(bundle, 'utf8');
    const marker = text.lastIndexOf(markerFor('prom-client'));
    expect(marker).toBeGreaterThan(0);
    const parsed = text.slice(0, marker);
    // prom-client's own code (its default metrics, its registry's exposition) is not in it.
    expect(parsed).not.toMatch(/collectDefaultMetrics|process_cpu_user_seconds_total|openmetrics/i);
    expect(text.slice(marker)).toMatch(/^\/\*WGCTL-LAZY-PACKAGE:prom-client:[A-Za-z0-9+/=]+\*\/\s*$/);
  });

  it('decodes and runs it on first require: a real exposition', async () => {
    const r = await runner.run([process.execPath, bundle, 'metrics'], { cwd: dir, readOnly: true });
    expect(r.stdout).toBe('# HELP wgctl_test a test\n# TYPE wgctl_test gauge\nwgctl_test 1\n');
  });

  it('runs without it when nothing asks', async () => {
    const r = await runner.run([process.execPath, bundle], { cwd: dir, readOnly: true });
    expect(r.stdout).toMatch(/^idle \d+\n$/);
  });
});
