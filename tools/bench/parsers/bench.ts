/**
 * Times the parsers on large tables (run with `node --expose-gc`). For each case, the parser
 * and its baseline — the least any parser must do: split the text into lines and fields
 * (JSON.parse for JSON input) — run alternately, `warmup` untimed pairs first, then `runs`
 * timed pairs; a full GC before each timed call keeps one call's garbage out of the next.
 * Each call's time is its wall time less the time its thread waited for a CPU
 * (/proc/thread-self/schedstat), so other work on the machine does not inflate it; raw wall
 * times are reported too. Prints one JSON line:
 * [{ name, lines, bytes, parserMs: {median, p90, min}, baselineMs, parserWallMs, baselineWallMs }].
 */
import { readFileSync } from 'node:fs';
import { parseIpRouteJson, parseIptablesRules, parseNetstatRoutes, parsePfRules, parseWgDump } from '@wgctl/parsers';
import { ipRouteJson, iptablesS, netstatRn, pfctlRules, wgDump } from './tables';

interface Case {
  name: string;
  text: string;
  parse: (text: string) => unknown;
  /** Throws unless the parse result is complete (so we time real work). */
  check: (result: unknown) => void;
  baseline: (text: string) => unknown;
}

const splitFields = (separator: string | RegExp) => (text: string) => text.split('\n').map((line) => line.split(separator));

function expectCount(what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`${what}: parsed ${actual}, expected ${expected}`);
}

const WG_PEERS = 10_000;
const NETSTAT_ROWS = 5_000;
const PF_RULES = 2_000;
const IP_ROUTES = 5_000;
const IPTABLES_RULES = 2_000;

const cases: Case[] = [
  {
    name: `wg show dump, ${WG_PEERS} peers (parseWgDump)`,
    text: wgDump(WG_PEERS),
    parse: parseWgDump,
    check: (r) => expectCount('peers', (r as ReturnType<typeof parseWgDump>).peers.length, WG_PEERS),
    baseline: splitFields('\t'),
  },
  {
    name: `netstat -rn, ${NETSTAT_ROWS} routes, Big Sur+ layout (parseNetstatRoutes)`,
    text: netstatRn(NETSTAT_ROWS, true),
    parse: parseNetstatRoutes,
    check: (r) => expectCount('routes', (r as unknown[]).length, NETSTAT_ROWS),
    baseline: splitFields(/\s+/),
  },
  {
    name: `netstat -rn, ${NETSTAT_ROWS} routes, Mojave layout with Refs/Use (parseNetstatRoutes)`,
    text: netstatRn(NETSTAT_ROWS, false),
    parse: parseNetstatRoutes,
    check: (r) => expectCount('routes', (r as unknown[]).length, NETSTAT_ROWS),
    baseline: splitFields(/\s+/),
  },
  {
    name: `pfctl -sr, ${PF_RULES} rules (parsePfRules)`,
    text: pfctlRules(PF_RULES, false),
    parse: parsePfRules,
    check: (r) => expectCount('rules', (r as unknown[]).length, PF_RULES),
    baseline: splitFields(/\s+/),
  },
  {
    name: `pfctl -v -sr, ${PF_RULES} rules with counters (parsePfRules)`,
    text: pfctlRules(PF_RULES, true),
    parse: parsePfRules,
    check: (r) => {
      const rules = r as ReturnType<typeof parsePfRules>;
      expectCount('rules', rules.length, PF_RULES);
      expectCount('rules with counters', rules.filter((x) => x.counters?.Evaluations !== undefined).length, PF_RULES);
    },
    baseline: splitFields(/\s+/),
  },
  {
    name: `ip -j route, ${IP_ROUTES} routes (parseIpRouteJson)`,
    text: ipRouteJson(IP_ROUTES),
    parse: (t) => parseIpRouteJson(t),
    check: (r) => expectCount('routes', (r as unknown[]).length, IP_ROUTES),
    baseline: (t) => JSON.parse(t),
  },
  {
    name: `iptables -S, ${IPTABLES_RULES} rules (parseIptablesRules)`,
    text: iptablesS(IPTABLES_RULES),
    parse: parseIptablesRules,
    check: (r) => expectCount('rules', (r as ReturnType<typeof parseIptablesRules>).rules.length, IPTABLES_RULES),
    baseline: splitFields(/\s+/),
  },
];

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** Nanoseconds this thread has spent runnable but waiting for a CPU (schedstat field 2), or null. */
function runQueueWaitNs(): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]);
  } catch {
    return null;
  }
}

interface Sample {
  /** Wall time. */
  wall: number;
  /** Wall time less the time spent waiting for a CPU: what the call takes on an idle core. */
  own: number;
}

function time(fn: () => unknown): Sample {
  gc();
  const w0 = runQueueWaitNs();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const w1 = runQueueWaitNs();
  const waited = w0 === null || w1 === null ? 0 : (w1 - w0) / 1e6;
  return { wall, own: Math.max(0, wall - waited) };
}

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return {
    median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    p90: s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)],
    min: s[0],
  };
}

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

const runs = arg('runs', 30);
const warmup = arg('warmup', 10);
if (!(globalThis as { gc?: unknown }).gc) process.stderr.write('parsers bench: run with --expose-gc for independent runs\n');

const results = cases.map((c) => {
  c.check(c.parse(c.text));
  for (let i = 0; i < warmup; i++) {
    c.parse(c.text);
    c.baseline(c.text);
  }
  const parser: Sample[] = [];
  const baseline: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    parser.push(time(() => c.parse(c.text)));
    baseline.push(time(() => c.baseline(c.text)));
  }
  return {
    name: c.name,
    lines: c.text.split('\n').length - (c.text.endsWith('\n') ? 1 : 0),
    bytes: Buffer.byteLength(c.text),
    parserMs: stats(parser.map((x) => x.own)),
    baselineMs: stats(baseline.map((x) => x.own)),
    parserWallMs: stats(parser.map((x) => x.wall)),
    baselineWallMs: stats(baseline.map((x) => x.wall)),
    schedstat: runQueueWaitNs() !== null,
  };
});
process.stdout.write(JSON.stringify(results) + '\n');
