/** #2 `wgctl status` (both agents) wall time, with the same facts looked up by hand as the baseline. */
import { join } from 'node:path';
import { BENCH_DIR, round, row } from './lib/common.mjs';
import { LAB_PREFIX, labUnavailable, openLab } from './lib/lab-session.mjs';
import { timedRuns } from './lib/timed.mjs';

export const id = 'status';
export const title = '`wgctl status`, both agents (#2)';

const RUNS = Number(process.env.BENCH_STATUS_RUNS ?? 20);
const TARGET_MS = 250;

export async function run(log = console.error) {
  const reason = labUnavailable();
  if (reason) return { id, title, rows: [], skipped: reason };
  const session = await openLab(log);
  const { env, lab } = session;
  try {
    await session.wgctl(['up']);
    const wgctl = (args) => ['ip', 'netns', 'exec', lab.ns.mac, process.execPath, env.WGCTL_BUNDLE, '--config', session.config, ...args];
    // timed-runs.py passes its own environment on; the manual script reads the names from it.
    Object.assign(process.env, { MAC_NS: env.MAC_NS, VM_NS: env.VM_NS, WG_IF: env.WG_IF });
    const [status, manual, health] = timedRuns([wgctl(['status']), ['bash', join(BENCH_DIR, 'manual-status.sh')], wgctl(['health'])], {
      runs: RUNS,
      warmup: 2,
    });
    if (!/Overall: HEALTHY/.test(status.firstStdout)) throw new Error(`wgctl status is not HEALTHY:\n${status.firstStdout}`);
    const s = status.wallMs.median;
    const m = manual.wallMs.median;
    log(`  wgctl status ${round(s)} ms, manual ${round(m)} ms, wgctl health ${round(health.wallMs.median)} ms`);
    const rows = [
      row({
        id: 'status.wall',
        figure: '`wgctl status` (both agents)',
        value: round(s),
        unit: 'ms',
        baseline: round(m),
        baselineLabel: 'manual-status.sh',
        ratio: round(s / m),
        target: `≤ ${TARGET_MS} ms`,
        pass: s <= TARGET_MS,
      }),
    ];
    const method = [
      `In the namespace lab (prefix \`${LAB_PREFIX}\`, set up as for #1) after \`wgctl up\`: \`ip netns exec <mac> node`,
      'dist/apps/wgctl/wgctl.js status` (text output; both agents over mTLS: the VM\'s tunnel, handshake, transfer,',
      'forwarding; the Mac\'s routes, kill switch, DNS, gateway) against `tools/bench/manual-status.sh`, which prints the',
      'same facts by hand (`wg show dump`, `sysctl`, `iptables -S` on the VM; `ip route`, `nft list table`, resolv.conf on',
      `the Mac), and \`wgctl health\` (connect + one health RPC per agent) for reference. ${RUNS} rounds alternating the`,
      'three (order flipped every round) after 2 warm-up rounds; the first run must exit 0 and status must say HEALTHY.',
      'Each run is timed fork to exit (`tools/bench/lib/timed-runs.py`). Figures are medians of the wall time: the work is',
      'spread over several processes (CLI, agents, the commands they run), so no run-queue correction applies.',
    ].join('\n');
    const line = (name, r) => `| ${name} | ${round(r.wallMs.median)} | ${round(r.wallMs.p10)} / ${round(r.wallMs.p90)} | ${round(r.cpuMs.median)} |`;
    const details = [
      '| command | median wall ms | p10 / p90 ms | median CPU ms of the CLI process |',
      '|---|---|---|---|',
      line('wgctl status', status),
      line('manual-status.sh', manual),
      line('wgctl health', health),
    ].join('\n');
    return { id, title, method, rows, details, raw: { status: status.runs, manual: manual.runs, health: health.runs } };
  } finally {
    await session.close();
  }
}
