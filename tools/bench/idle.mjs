/** #7 The agents' idle RSS and CPU, with a bare idle node process beside them as the baseline. */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { median, round, row, sleep } from './lib/common.mjs';
import { LAB_PREFIX, labUnavailable, openLab } from './lib/lab-session.mjs';

export const id = 'idle';
export const title = 'Agents idle: RSS and CPU (#7)';

const SETTLE_MS = 3000;
const WINDOW_MS = Number(process.env.BENCH_IDLE_MS ?? 20_000);
const SAMPLE_MS = 500;
const RSS_TARGET_MIB = 70;
const CPU_TARGET_PERCENT = 1;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function readProc(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime is field 14 (index 11 here).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return {
    ownTicks: Number(fields[11]) + Number(fields[12]),
    childTicks: Number(fields[13]) + Number(fields[14]),
    rssKiB: kib('VmRSS'),
    anonKiB: Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
  };
}

/** Live descendants of `pid` (children of every thread, recursively) with their CPU ticks. */
function liveDescendants(pid) {
  const found = new Map();
  const visit = (p) => {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let text = '';
      try {
        text = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
      } catch {
        continue;
      }
      for (const child of text ? text.split(/\s+/).map(Number) : []) {
        try {
          found.set(child, readProc(child).ownTicks);
          visit(child);
        } catch {
          /* exited meanwhile */
        }
      }
    }
  };
  visit(pid);
  return found;
}

function checkIsNode(pid, what) {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  if (!/node$/.test(argv[0])) throw new Error(`${what} pid ${pid} is not a node process: ${argv.join(' ')}`);
}

export async function run(log = console.error) {
  const reason = labUnavailable();
  if (reason) return { id, title, rows: [], skipped: reason };
  const session = await openLab(log);
  const { lab } = session;
  // `ip netns exec` execs node in place, so this pid is node's.
  const bare = spawn('ip', ['netns', 'exec', lab.ns.mac, process.execPath, '-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  try {
    await session.wgctl(['up']);
    const subjects = [
      { name: 'vm-agent', pid: session.vmAgent.pid },
      { name: 'mac-agent', pid: session.macAgent.pid },
      { name: 'bare node (baseline)', pid: bare.pid },
    ];
    for (const s of subjects) checkIsNode(s.pid, s.name);
    log(`  tunnel up; settling ${SETTLE_MS} ms, then watching ${WINDOW_MS} ms`);
    await sleep(SETTLE_MS);
    const first = subjects.map((s) => readProc(s.pid));
    const descendantsBefore = subjects.map((s) => liveDescendants(s.pid));
    const samples = first.map((p) => [p]);
    const t0 = Date.now();
    while (Date.now() - t0 < WINDOW_MS) {
      await sleep(SAMPLE_MS);
      subjects.forEach((s, i) => samples[i].push(readProc(s.pid)));
    }
    const seconds = (Date.now() - t0) / 1000;
    const last = subjects.map((s) => readProc(s.pid));
    // Long-running children (the mac-agent's `ip monitor`) are not in cutime until reaped: add
    // their CPU over the window (all of it for one started during the window).
    const liveChildTicks = subjects.map((s, i) => {
      let ticks = 0;
      for (const [pid, now] of liveDescendants(s.pid)) ticks += now - (descendantsBefore[i].get(pid) ?? 0);
      return ticks;
    });
    const results = subjects.map((s, i) => ({
      name: s.name,
      rssMiB: median(samples[i].map((p) => p.rssKiB)) / 1024,
      peakRssMiB: Math.max(...samples[i].map((p) => p.rssKiB)) / 1024,
      anonMiB: median(samples[i].map((p) => p.anonKiB)) / 1024,
      threads: last[i].threads,
      cpuPercent: ((last[i].ownTicks - first[i].ownTicks) / TICKS_PER_SECOND / seconds) * 100,
      childCpuPercent: ((last[i].childTicks - first[i].childTicks + liveChildTicks[i]) / TICKS_PER_SECOND / seconds) * 100,
    }));
    const base = results[2];
    for (const r of results) log(`  ${r.name}: RSS ${round(r.rssMiB)} MiB (peak ${round(r.peakRssMiB)}), CPU ${round(r.cpuPercent)}% + children ${round(r.childCpuPercent)}%`);
    const rows = results.slice(0, 2).flatMap((r) => [
      row({
        id: `idle.${r.name}.rss`,
        figure: `${r.name} idle RSS`,
        value: round(r.rssMiB),
        unit: 'MiB',
        baseline: round(base.rssMiB),
        baselineLabel: 'bare node',
        ratio: round(r.rssMiB / base.rssMiB),
        target: `≤ ${RSS_TARGET_MIB} MiB`,
        pass: r.rssMiB <= RSS_TARGET_MIB,
      }),
      row({
        id: `idle.${r.name}.cpu`,
        figure: `${r.name} idle CPU (own + the commands it ran)`,
        value: round(r.cpuPercent + r.childCpuPercent, 2),
        unit: '% of one CPU',
        baseline: round(base.cpuPercent + base.childCpuPercent, 2),
        baselineLabel: 'bare node',
        ratio: null,
        target: `~0 (≤ ${CPU_TARGET_PERCENT}%)`,
        pass: r.cpuPercent + r.childCpuPercent <= CPU_TARGET_PERCENT,
      }),
    ]);
    const method = [
      `In the namespace lab (prefix \`${LAB_PREFIX}\`, agents as for #1, default flags: health sampling every 15 s; environment as the systemd units set it) after`,
      `\`wgctl up\`, with the tunnel up and no traffic: ${SETTLE_MS / 1000} s to settle, then a ${WINDOW_MS / 1000} s window. RSS is`,
      `\`VmRSS\` from \`/proc/<pid>/status\`, sampled every ${SAMPLE_MS} ms; the figure is the median of the samples (the peak`,
      'and the private anonymous part, `Anonymous` in `/proc/<pid>/smaps_rollup`, are in the details). CPU is the change of',
      '`utime+stime` (the agent\'s own threads) and of `cutime+cstime` (the commands it ran and reaped, e.g. its periodic',
      '`wg show`/`ip`/`nft` reads) in `/proc/<pid>/stat`, plus the CPU of its live descendants (a long-running `ip monitor`)',
      'over the window, as a percentage of one CPU (clock ticks, 10 ms',
      'resolution). Baseline: a bare `node -e "setInterval(() => {}, 1 << 30)"` started in the Mac namespace in the same',
      `run, measured over the same window. "~0%" is taken as ≤ ${CPU_TARGET_PERCENT}% of one CPU, children included.`,
    ].join('\n');
    const details = [
      '| process | RSS MiB (median / peak) | of which private anonymous MiB | threads | CPU % own | CPU % children |',
      '|---|---|---|---|---|---|',
      ...results.map(
        (r) =>
          `| ${r.name} | ${round(r.rssMiB)} / ${round(r.peakRssMiB)} | ${round(r.anonMiB)} | ${r.threads} | ${round(r.cpuPercent, 2)} | ${round(r.childCpuPercent, 2)} |`,
      ),
      '',
      'RSS counts the pages of the node binary a process has touched (file-backed, shared by every node process on the',
      'machine): that part is most of the bare node\'s figure.',
    ].join('\n');
    return { id, title, method, rows, details, raw: results };
  } finally {
    bare.kill('SIGKILL');
    await session.close();
  }
}
