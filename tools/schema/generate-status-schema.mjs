#!/usr/bin/env node
// Writes docs/status.schema.json from the zod schema of `wgctl status --json`
// (apps/wgctl/src/status-schema.ts, z.toJSONSchema). The TypeScript is bundled in memory by
// esbuild (node 20 cannot import .ts) and its statusJsonSchemaText() gives the exact text the
// drift test (apps/wgctl/src/__tests__/status-json-schema.test.ts) compares with the file.
// `--check`: write nothing, exit 1 when the file differs.
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = join(root, 'apps/wgctl/src/status-schema.ts');

const bundled = await build({ entryPoints: [entry], bundle: true, write: false, format: 'cjs', platform: 'node', target: 'node20', logLevel: 'error' });
const module = { exports: {} };
new Function('module', 'exports', 'require', bundled.outputFiles[0].text)(module, module.exports, createRequire(entry));
const { statusJsonSchemaText, STATUS_JSON_SCHEMA_FILE } = module.exports;

const file = join(root, STATUS_JSON_SCHEMA_FILE);
const text = statusJsonSchemaText();
if (process.argv.includes('--check')) {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (current !== text) {
    console.error(`${STATUS_JSON_SCHEMA_FILE} is out of date: run npm run gen:status-schema`);
    process.exit(1);
  }
  console.log(`${STATUS_JSON_SCHEMA_FILE} is up to date`);
} else {
  writeFileSync(file, text);
  console.log(`generated ${STATUS_JSON_SCHEMA_FILE}`);
}
