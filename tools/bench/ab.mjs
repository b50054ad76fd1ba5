/**
 * Two builds side by side: `wgctl up` + the first ping through the tunnel (wgctl-up.sh, as #1
 * times it) in two labs at once, one per build; runs alternate between them, and which lab goes
 * first alternates from pair to pair. Needs root.
 *
 *   node tools/bench/ab.mjs OLD_APPS_DIR NEW_APPS_DIR [PAIRS]
 *   e.g. git worktree add --detach /tmp/wt-old REV && ln -s "$PWD/node_modules" /tmp/wt-old/ &&
 *        (cd /tmp/wt-old && npm run build) && node tools/bench/ab.mjs /tmp/wt-old/dist/apps dist/apps 20
 *
 * Why not two `BENCH_DIST` runs one after the other: this machine's speed moves by ±30 % within
 * the hour, and runs seconds apart cancel that. Why each build has its own CLI code cache
 * (WGCTL_CACHE_DIR): the CLI keeps one build's cache and removes the others', so two builds
 * alternating in one cache directory would each decode and compile from scratch every run
 * (+60–80 ms). Prints the medians, the median of the pairwise differences, and each lab's
 * vm-agent step medians (its JSON log).
 */
import { join, resolve } from 'node:path';
import { BENCH_DIR, median, round, runProcess } from './lib/common.mjs';
import { bundlesIn, openLab } from './lib/lab-session.mjs';
import { vmStepDurations } from './up.mjs';

const [oldDir, newDir, pairsArg] = process.argv.slice(2);
if (!oldDir || !newDir) {
  console.error('usage: node tools/bench/ab.mjs OLD_APPS_DIR NEW_APPS_DIR [PAIRS]');
  process.exit(2);
}
const PAIRS = Number(pairsArg ?? 16);
const builds = [
  { name: 'old', prefix: 'wga', dir: resolve(oldDir) },
  { name: 'new', prefix: 'wgn', dir: resolve(newDir) },
];

const sessions = [];
try {
  for (const b of builds) {
    const session = await openLab(console.error, { prefix: b.prefix, bundles: bundlesIn(b.dir) });
    sessions.push(session);
    b.session = session;
    b.env = { ...session.env, WGCTL_CACHE_DIR: join(session.lab.paths.dir, 'wgctl-cache') };
    b.times = [];
  }
  const once = async (b) => {
    const r = await runProcess(['bash', join(BENCH_DIR, 'wgctl-up.sh')], { env: b.env, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`${b.name}: wgctl up exited ${r.code}: ${r.stderr.slice(-2000)}`);
    b.times.push(r.ms);
    const down = await b.session.wgctl(['down'], { env: b.env, allowFailure: true });
    if (down.code !== 0) throw new Error(`${b.name}: wgctl down failed:\n${down.stdout}${down.stderr}`);
  };
  // One unmeasured run each: the code caches are written.
  for (const b of builds) {
    await once(b);
    b.times = [];
  }
  for (let i = 0; i < PAIRS; i++) {
    for (const b of i % 2 === 0 ? builds : [...builds].reverse()) await once(b);
  }
  const [a, b] = builds;
  const diffs = a.times.map((t, i) => t - b.times[i]);
  for (const x of builds) console.log(`${x.name} (${x.dir}): median ${round(median(x.times))} ms: ${x.times.map((t) => round(t)).join(' ')}`);
  console.log(`old − new, median of the ${PAIRS} pairwise differences: ${round(median(diffs))} ms`);
  for (const x of builds) {
    const steps = vmStepDurations(join(x.session.lab.paths.logs, 'vm-agent.log'));
    console.log(`${x.name} vm-agent steps, Up and Down (medians, ms): ${steps.map((s) => `${s.step} ${round(s.ms)}`).join(', ')}`);
  }
} finally {
  for (const s of sessions) await s.close();
}
