#!/usr/bin/env node
// Regenerates libs/proto/src/gen from proto/ with buf (npm) + ts-proto (npm): no protoc,
// no grpc-tools (whose install script downloads a binary). `--out DIR` writes elsewhere
// (the staleness check generates into a temporary directory and compares); `--root DIR`
// generates for another checkout (used by the check's own test).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, cpSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const rootFlag = process.argv.indexOf('--root');
const root = rootFlag > 0 ? resolve(process.argv[rootFlag + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const outFlag = process.argv.indexOf('--out');
const target = outFlag > 0 ? resolve(process.argv[outFlag + 1]) : join(root, 'libs/proto/src/gen');

const buf = join(root, 'node_modules/.bin/buf');
if (!existsSync(buf)) {
  console.error('buf not found: run `npm ci` first');
  process.exit(1);
}
const scratch = mkdtempSync(join(tmpdir(), 'wgctl-gen-'));
try {
  execFileSync(buf, ['generate', '--output', scratch], { cwd: root, stdio: 'inherit' });
  rmSync(target, { recursive: true, force: true });
  cpSync(join(scratch, 'libs/proto/src/gen'), target, { recursive: true });
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`generated ${target}`);
