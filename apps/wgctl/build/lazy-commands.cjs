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
 * replaced by commands-loader.js which, on the first command, reads the bundle file, decodes
 * that comment and compiles it with vm, keeping the decoded source and V8's code cache under
 * the user's cache directory for the next runs. The result is still ONE file.
 *
 * Use: plugins: [lazyCommandsPlugin(), ...] in the esbuild build of apps/wgctl/src/main.ts
 *   (from an ESM script: import { lazyCommandsPlugin } from '../../apps/wgctl/build/lazy-commands.cjs').
 * The other plugins, define, externals, platform and target are reused for the inner build.
 */
'use strict';
// CommonJS so both the ESM build script and jest (CJS) can load it.
const { join } = require('node:path');
const { createHash } = require('node:crypto');
const { readFileSync } = require('node:fs');
const { brotliCompressSync, constants } = require('node:zlib');

const COMMANDS_ENTRY = join(__dirname, '../src/commands/index.ts');
const LOADER_MODULE = /[\\/]apps[\\/]wgctl[\\/]src[\\/]load-commands\.ts$/;
const LOADER_TEMPLATE = join(__dirname, 'commands-loader.js');
const MARKER = '/*WGCTL-COMMANDS:';

/** The replacement of load-commands.ts (decode, compile, code cache), build-time tokens filled in. */
function loaderSource(code) {
  const bytes = Buffer.from(code, 'utf8');
  const tokens = {
    __WGCTL_MARKER__: JSON.stringify(MARKER),
    __WGCTL_CODE_SHA256__: JSON.stringify(createHash('sha256').update(bytes).digest('hex')),
    __WGCTL_CODE_BYTES__: String(bytes.length),
  };
  const template = readFileSync(LOADER_TEMPLATE, 'utf8');
  const out = template.replace(/__WGCTL_[A-Z0-9_]+__/g, (token) => {
    if (!(token in tokens)) throw new Error(`lazy-commands: unknown token ${token} in ${LOADER_TEMPLATE}`);
    return tokens[token];
  });
  return out;
}

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

      const loader = loaderSource(code);
      build.onLoad({ filter: LOADER_MODULE }, () => ({ contents: loader, loader: 'js' }));

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
