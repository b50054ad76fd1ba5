#!/usr/bin/env node
// Fails (exit 1) when libs/proto/src/gen differs from what proto/ generates now.
// Usage: node tools/proto/check-stale.mjs [--root DIR]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const rootFlag = process.argv.indexOf('--root');
const root = rootFlag > 0 ? resolve(process.argv[rootFlag + 1]) : resolve(here, '../..');

const list = (dir) =>
  existsSync(dir)
    ? readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? list(join(dir, n)) : [join(dir, n)]))
    : [];

const out = mkdtempSync(join(tmpdir(), 'wgctl-codegen-'));
try {
  execFileSync('node', [join(here, 'generate.mjs'), '--root', root, '--out', out], { stdio: 'pipe' });
  const committedDir = join(root, 'libs/proto/src/gen');
  const fresh = list(out).map((f) => relative(out, f)).sort();
  const committed = list(committedDir).map((f) => relative(committedDir, f)).sort();
  const stale = [...new Set([...fresh, ...committed])].filter((f) => {
    const a = existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8') : null;
    const b = existsSync(join(committedDir, f)) ? readFileSync(join(committedDir, f), 'utf8') : null;
    return a !== b;
  });
  if (stale.length) {
    console.error(`generated code is stale (${stale.join(', ')}): run \`npm run gen:proto\` and commit libs/proto/src/gen`);
    process.exit(1);
  }
  console.log(`generated code is up to date (${fresh.length} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
