#!/usr/bin/env node
// Bundles tools/lab/cli.ts with esbuild (path aliases from tsconfig) and runs it:
//   node tools/lab/run.mjs up|down|status|roam|exec …   (as root)
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const outfile = join(root, 'dist/tools/lab/cli.cjs');
mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [join(here, 'cli.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: join(root, 'tsconfig.json'),
  logLevel: 'warning',
});
await import(pathToFileURL(outfile).href);
