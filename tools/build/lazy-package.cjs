/**
 * esbuild plugin for the agents' bundles: an npm package only some runs use (prom-client, for
 * --metrics-listen) is kept out of the code V8 parses at start-up, and still in the one file.
 *
 * Why: V8 pre-parses every function of a script and keeps what it learnt for each; bundled
 * in, prom-client and its dependencies (tdigest, bintrees, @opentelemetry/api) cost an agent
 * ~10 MiB of idle RSS though never initialised (measured with `npm run bench` idle: mac-agent
 * 64.8 → 75.5 MiB), past #7's 70 MiB.
 *
 * How: the package is bundled separately (minified), brotli-compressed and base64-encoded into
 * a block comment appended to the bundle. Imports of the package resolve to a stub that, when
 * first required — only by the code that starts the metrics server — reads the bundle file,
 * decodes that comment and runs it with vm. Same scheme as apps/wgctl/build/lazy-commands.cjs,
 * without its code cache (an agent loads it once per process).
 */
'use strict';
const { brotliCompressSync, constants } = require('node:zlib');

const NAMESPACE = 'wgctl-lazy-package';

function markerFor(pkg) {
  return `/*WGCTL-LAZY-PACKAGE:${pkg}:`;
}

/** The stub the package's imports resolve to: decodes and runs the appended section on first require. */
function stubSource(pkg) {
  return `'use strict';
const MARKER = ${JSON.stringify(markerFor(pkg))};
module.exports = (() => {
  const { readFileSync } = require('node:fs');
  const { brotliDecompressSync } = require('node:zlib');
  const { Script } = require('node:vm');
  const text = readFileSync(__filename, 'latin1');
  const start = text.lastIndexOf(MARKER);
  const end = start < 0 ? -1 : text.indexOf('*/', start);
  if (start < 0 || end < 0) throw new Error('bundle is damaged: the ${pkg} section is missing (' + __filename + ')');
  const code = brotliDecompressSync(Buffer.from(text.slice(start + MARKER.length, end), 'base64')).toString('utf8');
  const wrapped = new Script('(function (exports, require, module, __filename, __dirname) {' + code + '\\n})', { filename: __filename + ' [${pkg}]' });
  const loaded = { exports: {} };
  wrapped.runInThisContext()(loaded.exports, require, loaded, __filename, __dirname);
  return loaded.exports;
})();
`;
}

/** `packages`: npm package names (bare specifiers) to keep lazy. */
function lazyPackagePlugin(packages) {
  return {
    name: 'wgctl-lazy-package',
    async setup(build) {
      const options = build.initialOptions;
      let footer = options.footer?.js ? `${options.footer.js}\n` : '';
      for (const pkg of packages) {
        const inner = await build.esbuild.build({
          entryPoints: [require.resolve(pkg, { paths: [options.absWorkingDir ?? process.cwd()] })],
          bundle: true,
          write: false,
          format: 'cjs',
          platform: options.platform ?? 'node',
          target: options.target,
          minify: true,
          keepNames: true,
          legalComments: 'none',
          logLevel: options.logLevel ?? 'warning',
        });
        const code = inner.outputFiles[0].text;
        const packed = brotliCompressSync(Buffer.from(code, 'utf8'), {
          params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: code.length },
        }).toString('base64');
        footer += `${markerFor(pkg)}${packed}*/\n`;
      }
      options.footer = { ...options.footer, js: footer.trimEnd() };
      const filter = new RegExp(`^(${packages.map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
      build.onResolve({ filter }, (args) => ({ path: args.path, namespace: NAMESPACE }));
      build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({ contents: stubSource(args.path), loader: 'js' }));
    },
  };
}

module.exports = { lazyPackagePlugin, markerFor };
