#!/usr/bin/env node
/**
 * Builds each app into ONE runnable file: dist/apps/<app>/<app>.js (plus node), so deploying
 * the vm-agent is copying one file.
 *
 * grpc-health-check and @grpc/reflection read .proto files from their package directories at
 * load time, which a single-file bundle cannot do. The plugin below replaces those
 * `loadSync(<path>)` calls, at build time, with `fromJSON(<descriptor>)` holding the same
 * protos as JSON, so the bundle needs no file beside it. Our own protos (for server
 * reflection) are embedded the same way through the `WGCTL_EMBEDDED_PROTOS` define.
 *
 * Usage: node tools/build/build.mjs [app...]   (default: all three)
 */
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// wgctl only: keeps `wgctl --help` near `node -e 0` (see the plugin's header).
import lazyCommands from '../../apps/wgctl/build/lazy-commands.cjs';
// The agents: prom-client (only --metrics-listen uses it) kept out of the code parsed at start.
import lazyPackage from './lazy-package.cjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(join(root, 'package.json'));
const protobuf = require('protobufjs');

const APPS = ['wgctl', 'vm-agent', 'mac-agent'];

function descriptorJson(files, includeDirs = []) {
  const rootNs = new protobuf.Root();
  rootNs.resolvePath = (origin, target) => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      try {
        readFileSync(candidate);
        return candidate;
      } catch {
        /* try next include dir */
      }
    }
    return protobuf.util.path.resolve(origin, target);
  };
  rootNs.loadSync(files, { keepCase: true });
  return JSON.stringify(rootNs.toJSON());
}

function listProtos(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listProtos(join(dir, e.name)) : e.name.endsWith('.proto') ? [join(dir, e.name)] : [],
  );
}

const healthDir = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto');
const reflectionDir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto');
const healthJson = descriptorJson([join(healthDir, 'health/v1/health.proto')]);

/** Rewrites run-time .proto reads in dependencies into embedded descriptors. */
const embedProtos = {
  name: 'embed-protos',
  setup(b) {
    b.onLoad({ filter: /grpc-health-check[\\/]build[\\/]src[\\/]health\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const out = src.replace("(0, proto_loader_1.loadSync)('health/v1/health.proto',", `(0, proto_loader_1.fromJSON)(${healthJson},`);
      if (out === src) throw new Error('embed-protos: grpc-health-check layout changed; update tools/build/build.mjs');
      return { contents: out, loader: 'js' };
    });
    b.onLoad({ filter: /@grpc[\\/]reflection[\\/]build[\\/]src[\\/]implementations[\\/]reflection-v1(alpha)?\.js$/ }, (args) => {
      const version = args.path.includes('v1alpha') ? 'v1alpha' : 'v1';
      const json = descriptorJson([join(reflectionDir, `grpc/reflection/${version}/reflection.proto`)]);
      const src = readFileSync(args.path, 'utf8');
      const out = src.replace('protoLoader.loadSync(protoPath,', `protoLoader.fromJSON(${json},`);
      if (out === src) throw new Error('embed-protos: @grpc/reflection layout changed; update tools/build/build.mjs');
      return { contents: out, loader: 'js' };
    });
  },
};

const ownProtos = listProtos(join(root, 'proto')).map((f) => relative(join(root, 'proto'), f));
const embedded = JSON.stringify({
  files: ownProtos,
  sources: Object.fromEntries(ownProtos.map((f) => [f, readFileSync(join(root, 'proto', f), 'utf8')])),
  health: readFileSync(join(healthDir, 'health/v1/health.proto'), 'utf8'),
});

const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const apps = wanted.length ? wanted : APPS;

for (const app of apps) {
  if (!APPS.includes(app)) {
    console.error(`unknown app ${app}: expected one of ${APPS.join(', ')}`);
    process.exit(2);
  }
  const outfile = join(root, 'dist/apps', app, `${app}.js`);
  mkdirSync(dirname(outfile), { recursive: true });
  const started = Date.now();
  await build({
    entryPoints: [join(root, 'apps', app, 'src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    // Minified agents idle ~17 MiB lighter (docs/BENCHMARKS.md #7); names kept for readable errors.
    minify: true,
    keepNames: true,
    legalComments: 'none',
    banner: { js: '#!/usr/bin/env node' },
    define: {
      WGCTL_VERSION: JSON.stringify(version),
      WGCTL_EMBEDDED_PROTOS: JSON.stringify(embedded),
    },
    plugins: [embedProtos, ...(app === 'wgctl' ? [lazyCommands.lazyCommandsPlugin()] : [lazyPackage.lazyPackagePlugin(['prom-client'])])],
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
  console.log(`built ${relative(root, outfile)} in ${Date.now() - started} ms`);
}
