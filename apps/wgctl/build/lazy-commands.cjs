/**
 * esbuild plugin for the wgctl bundle: keeps `wgctl --help` as fast as `node -e 0`.
 *
 * Why: V8 must at least pre-parse every function of a script before running it. The full
 * wgctl bundle is ~3 MB (gRPC, zod, x509, winston, listr2, parsers) and that alone costs
 * 40-70 ms at start-up, even though `--help` runs none of it. Lazy `__esm`/`__commonJS`
 * wrappers delay evaluation, not parsing.
 *
 * How: apps/wgctl/src/commands/index.ts (every command) is bundled separately, minified,
 * brotli-compressed and base64-encoded into a block comment appended to the bundle
 * (scanning a comment is nearly free). The module apps/wgctl/src/load-commands.ts is
 * replaced by a loader that, on the first command, reads the bundle file, decodes that
 * comment and compiles it with vm. The result is still ONE file.
 *
 * Use: plugins: [lazyCommandsPlugin(), ...] in the esbuild build of apps/wgctl/src/main.ts
 *   (from an ESM script: import { lazyCommandsPlugin } from '../../apps/wgctl/build/lazy-commands.cjs').
 * The other plugins, define, externals, platform and target are reused for the inner build.
 */
'use strict';
// CommonJS so both the ESM build script and jest (CJS) can load it.
const { join } = require('node:path');
const { brotliCompressSync, constants } = require('node:zlib');

const COMMANDS_ENTRY = join(__dirname, '../src/commands/index.ts');
const LOADER_MODULE = /[\\/]apps[\\/]wgctl[\\/]src[\\/]load-commands\.ts$/;
const MARKER = '/*WGCTL-COMMANDS:';

/** The replacement of load-commands.ts: decode the tail comment, compile, cache. */
const LOADER_SOURCE = `
const { readFileSync } = require('node:fs');
const { runInThisContext } = require('node:vm');
const { brotliDecompressSync } = require('node:zlib');
let loaded;
export function commands() {
  if (loaded) return loaded;
  const text = readFileSync(__filename, 'latin1');
  const start = text.lastIndexOf(${JSON.stringify(MARKER)});
  const end = text.indexOf('*/', start);
  if (start < 0 || end < 0) throw new Error('wgctl bundle is damaged: the commands section is missing (' + __filename + ')');
  const code = brotliDecompressSync(Buffer.from(text.slice(start + ${MARKER.length}, end), 'base64')).toString('utf8');
  const wrapper = runInThisContext('(function (exports, require, module, __filename, __dirname) {' + code + '\\n})', {
    filename: __filename + ' [commands]',
  });
  const module = { exports: {} };
  wrapper(module.exports, require, module, __filename, __dirname);
  loaded = module.exports;
  return loaded;
}
`;

function lazyCommandsPlugin() {
  return {
    name: 'wgctl-lazy-commands',
    async setup(build) {
      const options = build.initialOptions;
      const inner = await build.esbuild.build({
        entryPoints: [COMMANDS_ENTRY],
        bundle: true,
        write: false,
        format: 'cjs',
        platform: options.platform ?? 'node',
        target: options.target,
        define: options.define,
        external: options.external,
        alias: options.alias,
        tsconfig: options.tsconfig,
        absWorkingDir: options.absWorkingDir,
        plugins: (options.plugins ?? []).filter((p) => p.name !== 'wgctl-lazy-commands'),
        // Names kept for readable stack traces; whitespace and syntax minified (compressed anyway).
        minifyWhitespace: true,
        minifySyntax: true,
        legalComments: 'none',
        logLevel: options.logLevel ?? 'warning',
      });
      const code = inner.outputFiles[0].text;
      const packed = brotliCompressSync(Buffer.from(code, 'utf8'), {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: 9,
          [constants.BROTLI_PARAM_LGWIN]: 24,
          [constants.BROTLI_PARAM_SIZE_HINT]: code.length,
        },
      }).toString('base64');
      const footer = options.footer?.js ? `${options.footer.js}\n` : '';
      options.footer = { ...options.footer, js: `${footer}${MARKER}${packed}*/` };

      build.onLoad({ filter: LOADER_MODULE }, () => ({ contents: LOADER_SOURCE, loader: 'js' }));

      // commander requires child_process at load time only for executable subcommands, which
      // wgctl has none of; loading it costs a few ms of --help. Defer it until first use.
      build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
        /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'lazy-child-process', namespace: 'wgctl-lazy' } : undefined,
      );
      build.onLoad({ filter: /^lazy-child-process$/, namespace: 'wgctl-lazy' }, () => ({
        contents:
          "let cp; const load = () => (cp ??= require('node:child_process'));\n" +
          'module.exports = new Proxy({}, { get: (_, key) => load()[key], has: (_, key) => key in load() });\n',
        loader: 'js',
      }));
    },
  };
}

module.exports = { lazyCommandsPlugin, MARKER };
