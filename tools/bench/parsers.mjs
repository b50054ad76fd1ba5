/**
 * #4 Parsers on large tables: `wg show dump` with 10,000 peers, netstat -rn, pfctl -sr, and more;
 * and the whole `wgctl debug parse wg-dump` process on a 10,000-peer `wg show all dump`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_DIR, ROOT, bundleTs, round, row, runJson } from './lib/common.mjs';
import { timedRuns } from './lib/timed.mjs';

export const id = 'parsers';
export const title = 'Parsers on large tables (#4)';

const RUNS = 30;
const WARMUP = 10;
const WG_TARGET_MS = 10;
const CLI_RUNS = Number(process.env.BENCH_DEBUG_PARSE_RUNS ?? 10);
const CLI_WARMUP = 2;
const CLI_PEERS = 10_000;
const CLI_TARGET_MS = 300;
const WGCTL_BUNDLE = join(ROOT, 'dist/apps/wgctl/wgctl.js');

/**
 * `node dist/apps/wgctl/wgctl.js debug parse wg-dump FILE`, FILE a `wg show all dump` of
 * CLI_PEERS peers, timed whole (start-up, read, parse, JSON, the secret scrub, write) against
 * `node -e 0`. The first run's output is checked: every peer, and no private or preshared key.
 */
async function wholeProcess(log) {
  if (!existsSync(WGCTL_BUNDLE)) throw new Error(`${WGCTL_BUNDLE} is missing: run \`npm run build\``);
  const writer = await bundleTs('parsers/write-wg-all-dump.ts', 'write-wg-all-dump');
  const file = join(BUNDLE_DIR, `wg-show-all-dump-${CLI_PEERS}.txt`);
  const dump = await runJson([process.execPath, writer, file, String(CLI_PEERS)]);
  const argv = [process.execPath, WGCTL_BUNDLE, 'debug', 'parse', 'wg-dump', file];
  const output = execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const peers = JSON.parse(output)[0]?.peers?.length;
  if (peers !== CLI_PEERS) throw new Error(`wgctl debug parse wg-dump: ${peers} peers in the output, expected ${CLI_PEERS}`);
  if (dump.secrets.some((secret) => output.includes(secret))) throw new Error('wgctl debug parse wg-dump: a private or preshared key reached the output');
  const [cli, bare] = timedRuns([argv, [process.execPath, '-e', '0']], { runs: CLI_RUNS, warmup: CLI_WARMUP });
  log(`  wgctl debug parse wg-dump, ${CLI_PEERS} peers: ${round(cli.ownMs.median)} ms (wall ${round(cli.wallMs.median)}), node -e 0 ${round(bare.ownMs.median)} ms`);
  return { dump, cli, bare };
}

export async function run(log = console.error) {
  const bundle = await bundleTs('parsers/bench.ts', 'parsers-bench');
  const results = await runJson([process.execPath, '--expose-gc', bundle, '--runs', String(RUNS), '--warmup', String(WARMUP)], {
    timeoutMs: 120_000,
  });
  const whole = await wholeProcess(log);
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
  const cliMs = whole.cli.ownMs.median;
  rows.push(
    row({
      id: 'parsers.debug-parse-wg-dump-process',
      figure: `\`wgctl debug parse wg-dump\`, ${CLI_PEERS} peers (\`wg show all dump\`), whole process`,
      value: round(cliMs),
      unit: 'ms',
      baseline: round(whole.bare.ownMs.median),
      baselineLabel: '`node -e 0`',
      ratio: round(cliMs / whole.bare.ownMs.median),
      target: `≤ ${CLI_TARGET_MS} ms`,
      pass: cliMs <= CLI_TARGET_MS,
    }),
  );
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
    '',
    `Whole process: \`node dist/apps/wgctl/wgctl.js debug parse wg-dump FILE\`, FILE the same ${CLI_PEERS}-peer table as`,
    '`wg show all dump` (each line led by `wg0`), against `node -e 0`, run by `tools/bench/lib/timed-runs.py` as for #5:',
    `${CLI_WARMUP} untimed rounds, then ${CLI_RUNS} alternating rounds; each run from fork to exit less its run-queue delay.`,
    'Start-up, reading the file, parsing, JSON, the scrub of every private and preshared key and writing the output',
    'all count. Before timing, one run\'s output is checked: every peer there, no private or preshared key.',
  ].join('\n');
  const details = [
    '| input | lines | bytes | parser median / p90 / min ms | baseline median / p90 / min ms |',
    '|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.lines} | ${r.bytes} | ${round(r.parserMs.median)} / ${round(r.parserMs.p90)} / ${round(r.parserMs.min)} | ${round(r.baselineMs.median)} / ${round(r.baselineMs.p90)} / ${round(r.baselineMs.min)} |`,
    ),
    '',
    '| command | input bytes | median ms (wall − run-queue delay) | p10 / p90 ms | median wall ms | median CPU ms |',
    '|---|---|---|---|---|---|',
    ...[
      [`wgctl debug parse wg-dump (${CLI_PEERS} peers)`, whole.cli, whole.dump.bytes],
      ['node -e 0', whole.bare, '—'],
    ].map(
      ([name, r, bytes]) =>
        `| ${name} | ${bytes} | ${round(r.ownMs.median)} | ${round(r.ownMs.p10)} / ${round(r.ownMs.p90)} | ${round(r.wallMs.median)} | ${round(r.cpuMs.median)} |`,
    ),
  ].join('\n');
  return { id, title, method, rows, details, raw: { parsers: results, debugParse: { cli: whole.cli.runs, bare: whole.bare.runs } } };
}
