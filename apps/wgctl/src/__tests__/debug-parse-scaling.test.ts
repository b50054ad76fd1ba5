/**
 * `wgctl debug parse wg-dump` stays linear in the number of peers (issue #13: the secret scrub
 * made one pass over the whole output per private/preshared key, so 10,000 peers took ~1 s).
 *
 * Not a stopwatch bound: the same command on N and on 8N peers, each size's fastest of several
 * interleaved runs. Linear work takes ~8× as long on 8N; the old scrub (keys × output) took
 * ~64×. The bound, 20×, sits between the two with room for a noisy machine on either side.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../testing/cli-harness';

const key = () => randomBytes(32).toString('base64');

/** `wg show wg0 dump` with `peers` peers, every one with a preshared key (a key to scrub each). */
function dump(peers: number): { text: string; secrets: string[] } {
  const priv = key();
  const secrets = [priv];
  const lines = [`${priv}\t${key()}\t51820\toff`];
  for (let i = 0; i < peers; i++) {
    const psk = key();
    secrets.push(psk);
    lines.push(`${key()}\t${psk}\t203.0.113.${i & 255}:51820\t10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32\t1700000000\t1024\t2048\t25`);
  }
  return { text: `${lines.join('\n')}\n`, secrets };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-debug-scaling-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('wgctl debug parse wg-dump scaling', () => {
  it('takes linear time in the peers: 8× the peers, well under 20× the time', async () => {
    const N = 1000;
    const files = [N, 8 * N].map((peers) => {
      const { text, secrets } = dump(peers);
      const path = join(dir, `dump-${peers}.txt`);
      writeFileSync(path, text);
      return { peers, path, secrets };
    });
    const runOnce = async (file: (typeof files)[number]): Promise<number> => {
      const started = performance.now();
      const r = await cli(['debug', 'parse', 'wg-dump', file.path]);
      const ms = performance.now() - started;
      expect(r.code).toBe(0);
      return ms;
    };
    // Correct first (every peer, no key), and warm: the first runs compile the code.
    for (const file of files) {
      const r = await cli(['debug', 'parse', 'wg-dump', file.path]);
      expect(JSON.parse(r.stdout).peers).toHaveLength(file.peers);
      expect(file.secrets.filter((s) => r.stdout.includes(s))).toEqual([]);
    }
    const best = [Infinity, Infinity];
    for (let round = 0; round < 5; round++) {
      for (const i of round % 2 ? [1, 0] : [0, 1]) best[i] = Math.min(best[i]!, await runOnce(files[i]!));
    }
    const [small, large] = best as [number, number];
    expect(large / small).toBeLessThan(20);
  });
});
