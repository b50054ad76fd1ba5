/**
 * Times parseWgDump on a synthetic 10,000-peer dump in a fresh node process (what the agent
 * is), away from jest's sandbox and the heap of other test files. Prints one JSON line.
 * Run by wg-dump.test.ts (bundled with esbuild); also runnable by hand.
 */
import { randomBytes } from 'node:crypto';
import { parseWgDump } from '../wg-dump';

export function syntheticDump(peers: number): string {
  const k = (): string => randomBytes(32).toString('base64');
  const rows = [`${k()}\t${k()}\t51820\toff`];
  for (let i = 0; i < peers; i++) {
    const ep = i % 3 === 0 ? `[2001:db8::${(i % 65535).toString(16)}]:${1024 + (i % 60000)}` : i % 3 === 1 ? `203.0.113.${i % 256}:51820` : '(none)';
    const allowed = i % 2 ? `192.0.2.${i % 256}/32,2001:db8:1::${i.toString(16)}/128` : `198.51.100.${i % 256}/32`;
    rows.push(`${k()}\t${i % 4 ? '(none)' : k()}\t${ep}\t${allowed}\t${i % 5 ? 1700000000 + i : 0}\t${i * 1000}\t${i * 7}\t${i % 2 ? 25 : 'off'}`);
  }
  return `${rows.join('\n')}\n`;
}

if (require.main === module) {
  const text = syntheticDump(10_000);
  for (let i = 0; i < 10; i++) parseWgDump(text); // JIT warm-up
  const times: number[] = [];
  let peers = 0;
  for (let i = 0; i < 31; i++) {
    const t0 = process.hrtime.bigint();
    peers = parseWgDump(text).peers.length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ peers, medianMs: times[15], minMs: times[0], maxMs: times[30] })}\n`);
}
