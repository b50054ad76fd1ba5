#!/usr/bin/env node
/**
 * The benchmark suite: `npm run bench` (build, then every benchmark), or
 * `node tools/bench/run.mjs [name...]` for some of them (names below; the bundles in dist/
 * must be built for startup and the lab benchmarks).
 *
 * Every figure is measured with its baseline in the same run. Results of each benchmark are
 * kept in dist/bench/results.json, and docs/BENCHMARKS.md is rewritten from all results there,
 * so running one benchmark refreshes its own section and keeps the others (each section says
 * when it was measured).
 *
 * Flags: --no-write (print only), --render (rewrite docs/BENCHMARKS.md from the kept results,
 * e.g. after editing NOTES.md, without measuring), --list.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_DIR, ROOT, machineInfo } from './lib/common.mjs';
import { renderReport } from './lib/report.mjs';

/** In the order they run and appear. */
export const BENCHMARKS = ['up', 'status', 'health', 'parsers', 'startup', 'roam', 'idle'];

const RESULTS_FILE = join(BUNDLE_DIR, 'results.json');
const REPORT_FILE = join(ROOT, 'docs/BENCHMARKS.md');

function loadResults() {
  if (!existsSync(RESULTS_FILE)) return {};
  try {
    return JSON.parse(readFileSync(RESULTS_FILE, 'utf8'));
  } catch {
    return {};
  }
}

async function main() {
  const args = process.argv.slice(2);
  if (args.includes('--list')) {
    console.log(BENCHMARKS.join('\n'));
    return;
  }
  const write = !args.includes('--no-write');
  if (args.includes('--render')) {
    const kept = loadResults();
    const missing = BENCHMARKS.filter((name) => !kept[name]);
    if (missing.length) {
      console.error(`${REPORT_FILE} NOT rewritten: ${RESULTS_FILE} has no results of ${missing.join(', ')} (a clean build removes them; run \`npm run bench\`)`);
      process.exitCode = 1;
      return;
    }
    writeFileSync(REPORT_FILE, renderReport(kept, BENCHMARKS));
    console.error(`wrote ${REPORT_FILE} from ${RESULTS_FILE}`);
    return;
  }
  const names = args.filter((a) => !a.startsWith('-'));
  const unknown = names.filter((n) => !BENCHMARKS.includes(n));
  if (unknown.length) {
    console.error(`unknown benchmark(s) ${unknown.join(', ')}: expected ${BENCHMARKS.join(', ')}`);
    process.exit(2);
  }
  const selected = names.length ? BENCHMARKS.filter((b) => names.includes(b)) : BENCHMARKS;
  const machine = machineInfo();
  const results = loadResults();
  let failed = false;
  const started = Date.now();
  for (const name of selected) {
    const t0 = Date.now();
    console.error(`bench ${name} …`);
    const module = await import(`./${name}.mjs`);
    let section;
    try {
      section = await module.run((line) => console.error(line));
    } catch (error) {
      failed = true;
      console.error(`bench ${name} FAILED: ${error instanceof Error ? error.stack : error}`);
      section = {
        id: module.id,
        title: module.title,
        method: module.method ?? '',
        rows: [],
        error: error instanceof Error ? error.message : String(error),
      };
    }
    section.machine = machine;
    section.seconds = (Date.now() - t0) / 1000;
    results[name] = section;
    for (const r of section.rows) {
      const verdict = r.pass === true ? 'PASS' : r.pass === false ? 'MISS' : '';
      const base = r.baseline === null || r.baseline === undefined ? '' : ` vs ${r.baseline} ${r.unit} (${r.baselineLabel})`;
      const ratio = r.ratio === null || r.ratio === undefined ? '' : ` = ${r.ratio}×`;
      console.error(`  ${r.figure}: ${r.value} ${r.unit}${base}${ratio}  target ${r.target}  ${verdict}`);
    }
    if (section.skipped) console.error(`  skipped: ${section.skipped}`);
    console.error(`bench ${name}: ${section.seconds.toFixed(1)} s`);
  }
  console.error(`all: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (write) {
    mkdirSync(BUNDLE_DIR, { recursive: true });
    writeFileSync(RESULTS_FILE, JSON.stringify(results, null, 2) + '\n');
    // The kept results live in dist/ (a clean build or a fresh clone has none): rewriting the
    // report from some of them would drop the other sections, so it waits for all of them.
    const missing = BENCHMARKS.filter((name) => !results[name]);
    if (missing.length) {
      console.error(`kept ${RESULTS_FILE}; ${REPORT_FILE} NOT rewritten: no results of ${missing.join(', ')} since the last clean build (run them too, e.g. \`npm run bench\`)`);
    } else {
      writeFileSync(REPORT_FILE, renderReport(results, BENCHMARKS));
      console.error(`wrote ${REPORT_FILE}`);
    }
  }
  if (failed) process.exitCode = 1;
}

await main();
