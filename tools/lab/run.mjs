#!/usr/bin/env node
// Bundles tools/lab/cli.ts with esbuild (path aliases from tsconfig) and runs it:
//   node tools/lab/run.mjs up|down|status|roam|exec …   (as root)
import { bundleAndImport } from './bundle.mjs';

await bundleAndImport('cli.ts', 'cli');
