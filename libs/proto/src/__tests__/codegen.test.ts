import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const root = resolve(__dirname, '../../../..');

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

describe('generated proto code', () => {
  it('is up to date with proto/ (run `npm run gen:proto` when this fails)', () => {
    const out = mkdtempSync(join(tmpdir(), 'wgctl-codegen-'));
    try {
      execFileSync('node', [join(root, 'tools/proto/generate.mjs'), '--out', out], { cwd: root, stdio: 'pipe' });
      const committedDir = join(root, 'libs/proto/src/gen');
      const fresh = listFiles(out).map((f) => relative(out, f)).sort();
      const committed = listFiles(committedDir).map((f) => relative(committedDir, f)).sort();
      expect(committed).toEqual(fresh);
      for (const f of fresh) {
        const a = readFileSync(join(out, f), 'utf8');
        const b = readFileSync(join(committedDir, f), 'utf8');
        if (a !== b) throw new Error(`libs/proto/src/gen/${f} is stale: run \`npm run gen:proto\``);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
