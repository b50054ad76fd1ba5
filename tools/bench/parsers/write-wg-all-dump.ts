/**
 * Writes the benchmark's `wg show all dump` (10,000 peers unless told, random keys from the
 * seeded PRNG of tables.ts) to a file, for timing the whole `wgctl debug parse wg-dump` process:
 * `node <bundle> FILE [PEERS]`. Prints one JSON line: { file, peers, bytes, secrets } where
 * secrets are the private and preshared keys of the dump (the output must contain none).
 */
import { writeFileSync } from 'node:fs';
import { wgDumpAll } from './tables';

const [file, peersArg] = process.argv.slice(2);
if (!file) throw new Error('usage: write-wg-all-dump FILE [PEERS]');
const peers = Number(peersArg ?? 10_000);
const text = wgDumpAll(peers);
writeFileSync(file, text);
const secrets: string[] = [];
for (const line of text.split('\n')) {
  const f = line.split('\t');
  if (f.length === 5) secrets.push(f[1]!);
  else if (f.length === 9 && f[2] !== '(none)') secrets.push(f[2]!);
}
process.stdout.write(`${JSON.stringify({ file, peers, bytes: Buffer.byteLength(text), secrets })}\n`);
