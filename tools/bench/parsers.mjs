/** #4 Parsers on large tables: `wg show dump` with 10,000 peers, netstat -rn, pfctl -sr, and more. */
import { bundleTs, round, row, runJson } from './lib/common.mjs';

export const id = 'parsers';
export const title = 'Parsers on large tables (#4)';

const RUNS = 30;
const WARMUP = 10;
const WG_TARGET_MS = 10;

export async function run(log = console.error) {
  const bundle = await bundleTs('parsers/bench.ts', 'parsers-bench');
  const results = await runJson([process.execPath, '--expose-gc', bundle, '--runs', String(RUNS), '--warmup', String(WARMUP)], {
    timeoutMs: 120_000,
  });
  const rows = results.map((r) => {
    const isWg = r.name.startsWith('wg show dump');
    log(`  ${r.name}: median ${round(r.parserMs.median)} ms (split ${round(r.baselineMs.median)} ms)`);
    return row({
      id: `parsers.${r.name.split(',')[0].replace(/\W+/g, '-')}`,
      figure: r.name,
      value: round(r.parserMs.median),
      unit: 'ms',
      baseline: round(r.baselineMs.median),
      baselineLabel: r.name.startsWith('ip -j') ? 'JSON.parse only' : 'split into fields only',
      ratio: round(r.parserMs.median / r.baselineMs.median),
      target: isWg ? `≤ ${WG_TARGET_MS} ms` : '(reported)',
      pass: isWg ? r.parserMs.median <= WG_TARGET_MS : null,
    });
  });
  const method = [
    'Inputs are generated from a seeded PRNG (`tools/bench/parsers/tables.ts`, identical every run) in the exact shape the',
    'tools print: `wg show wg0 dump` with 10,000 peers (random keys, half with a preshared key, IPv4 and bracketed IPv6',
    'endpoints and some `(none)`, 2–5 allowed IPs each, handshakes, uint64 counters); `netstat -rn` with 5,000 routes (80%',
    'IPv4: ARP entries with MAC gateways and Expire, classful-abbreviated networks on `link#N`, host and scoped routes,',
    'tunnel routes; 20% IPv6) in the Big Sur+ layout and in the Mojave layout with Refs/Use; `pfctl -sr` with 2,000 rules',
    'and `pfctl -v -sr` with two counter lines under each; `ip -j route` with 5,000 routes; `iptables -S` with 2,000 rules.',
    'Each parse is checked for completeness (every peer/route/rule parsed) before timing.',
    '',
    `One process (\`node --expose-gc\`, the parsers bundled with esbuild as in the apps): per case ${WARMUP} untimed pairs, then`,
    `${RUNS} timed pairs alternating the parser and its baseline — the least any parser must do: split the text into`,
    'lines and fields (`split("\\n")` then `split("\\t")` or `split(/\\s+/)`; `JSON.parse` for JSON). A full GC runs before',
    'each timed call, so a call pays for its own garbage but not the previous one\'s. Each call\'s time is its wall time',
    'less the time its thread spent waiting for a CPU (`/proc/thread-self/schedstat`), so other work on the machine does',
    'not inflate it (raw wall times are kept in dist/bench/results.json). Figures are medians.',
  ].join('\n');
  const details = [
    '| input | lines | bytes | parser median / p90 / min ms | baseline median / p90 / min ms |',
    '|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.lines} | ${r.bytes} | ${round(r.parserMs.median)} / ${round(r.parserMs.p90)} / ${round(r.parserMs.min)} | ${round(r.baselineMs.median)} / ${round(r.baselineMs.p90)} / ${round(r.baselineMs.min)} |`,
    ),
  ].join('\n');
  return { id, title, method, rows, details, raw: results };
}
