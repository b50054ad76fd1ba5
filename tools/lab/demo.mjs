#!/usr/bin/env node
// The demo (README command #1; `npm run demo` builds first): bundles tools/lab/src/demo.ts with
// esbuild (path aliases from tsconfig) and runs it. As root:
//   node tools/lab/demo.mjs [--prefix P] [--keep]
import { bundleAndImport } from './bundle.mjs';

const { runDemo } = (await bundleAndImport('src/demo.ts', 'demo')).default;
process.exitCode = await runDemo(process.argv.slice(2));
