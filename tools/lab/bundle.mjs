// Bundles a TypeScript entry of the lab with esbuild (path aliases from tsconfig) into
// dist/tools/lab/<name>.cjs and imports it: the lab's scripts run TS without a build step.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');

/** `entry` is relative to tools/lab; resolves to the bundle's module. */
export async function bundleAndImport(entry, name) {
  const outfile = join(root, 'dist/tools/lab', `${name}.cjs`);
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [join(here, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    tsconfig: join(root, 'tsconfig.json'),
    logLevel: 'warning',
  });
  return import(pathToFileURL(outfile).href);
}
