import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '../../../..');
const check = join(root, 'tools/proto/check-stale.mjs');

describe('generated proto code', () => {
  it('is up to date with proto/ (run `npm run gen:proto` when this fails)', () => {
    expect(() => execFileSync('node', [check], { cwd: root, stdio: 'pipe' })).not.toThrow();
  });

  it('the check fails when a .proto changes without regeneration', () => {
    const copy = mkdtempSync(join(tmpdir(), 'wgctl-stale-'));
    try {
      for (const f of ['proto', 'buf.yaml', 'buf.gen.yaml', 'libs/proto/src/gen']) cpSync(join(root, f), join(copy, f), { recursive: true });
      symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
      expect(spawnSync('node', [check, '--root', copy]).status).toBe(0);
      appendFileSync(join(copy, 'proto/wgctl/v1/common.proto'), '\nmessage StaleProbe { string added = 1; }\n');
      const r = spawnSync('node', [check, '--root', copy], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/stale \(wgctl\/v1\/common\.ts\)/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
