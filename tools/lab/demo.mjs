#!/usr/bin/env node
// The demo (README command #1; `npm run demo` builds first): bundles tools/lab/src/demo.ts with
// esbuild (path aliases from tsconfig) and runs it. As root:
//   node tools/lab/demo.mjs [--prefix P] [--keep]
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const outfile = join(root, 'dist/tools/lab/demo.cjs');
mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [join(here, 'src/demo.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: join(root, 'tsconfig.json'),
  logLevel: 'warning',
});
const { runDemo } = (await import(pathToFileURL(outfile).href)).default;
process.exitCode = await runDemo(process.argv.slice(2));
