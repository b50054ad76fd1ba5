/**
 * Tests that run wgctl as the single-file bundle users get: built here with the flags of
 * tools/build/build.mjs (the lazy-commands plugin; the packages that read .proto files at load
 * kept external and found in the workspace through NODE_PATH).
 */
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

export const REPO_ROOT = resolve(__dirname, '../../../..');

/** Environment for running the bundle: its externals from the workspace, never the user's commands cache. */
export const BUNDLE_ENV: Readonly<Record<string, string>> = { NODE_PATH: join(REPO_ROOT, 'node_modules'), WGCTL_CACHE_DIR: '' };

interface LazyCommandsModule {
  lazyCommandsPlugin: () => import('esbuild').Plugin;
  MARKER: string;
}

export function lazyCommandsModule(): LazyCommandsModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(join(REPO_ROOT, 'apps/wgctl/build/lazy-commands.cjs')) as LazyCommandsModule;
}

/** Bundles apps/wgctl/src/main.ts into `outfile`. */
export async function buildWgctlBundle(outfile: string): Promise<void> {
  await build({
    entryPoints: [join(REPO_ROOT, 'apps/wgctl/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['grpc-health-check', '@grpc/reflection', '@grpc/proto-loader'],
    plugins: [lazyCommandsModule().lazyCommandsPlugin()],
    logLevel: 'error',
    absWorkingDir: REPO_ROOT,
  });
}
