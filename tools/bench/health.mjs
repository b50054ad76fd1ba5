/**
 * #3 Health RPC under load: mTLS unary grpc.health.v1 Check against the agents' server
 * (createAgentServer) vs a bare grpc-js echo over the same TLS, in the same run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, bundleTs, median, percentile, pinTo, round, row, runJson } from './lib/common.mjs';

export const id = 'health';
export const title = 'Health RPC under load (#3)';

const COUNT = Number(process.env.BENCH_HEALTH_COUNT ?? 20_000);
const WARMUP = Number(process.env.BENCH_HEALTH_WARMUP ?? 2_000);
const CONCURRENCY = 50;
const BLOCK = Number(process.env.BENCH_HEALTH_BLOCK ?? 1_000);
const PINNED = pinTo(0).length > 0;
const SERVER_CPU = 0;
const CLIENT_CPU = 1;

/** Starts a server child (pinned with BENCH_PIN=1), resolves once it printed its port; `stats()` asks it over IPC. */
function startServer(bundle, mode, tlsDir) {
  const preload = join(BENCH_DIR, 'health/spawn-counter.cjs');
  const argv = [...pinTo(SERVER_CPU), process.execPath, '--require', preload, bundle, '--mode', mode, '--tls-dir', tlsDir];
  // taskset execs node, so the IPC channel passes through to it.
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk) => {
      buffer += chunk;
      for (const line of buffer.split('\n').slice(0, -1)) {
        if (!line.includes('benchReady')) continue;
        child.stdout.off('data', onData);
        const { port, pid } = JSON.parse(line).benchReady;
        resolve({
          mode,
          port,
          pid,
          stats: () =>
            new Promise((res) => {
              child.once('message', res);
              child.send({ type: 'stats' });
            }),
          stop: () => child.kill('SIGTERM'),
        });
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${mode} server exited ${code} before listening:\n${stderr.slice(-2000)}`)));
  });
}

function loadgen(bundle, agent, echo, tlsDir) {
  return runJson(
    [
      ...pinTo(CLIENT_CPU),
      process.execPath,
      bundle,
      '--targets',
      `health@${agent.port},echo@${echo.port}`,
      '--tls-dir',
      tlsDir,
      '--count',
      String(COUNT),
      '--warmup',
      String(WARMUP),
      '--block',
      String(BLOCK),
      '--concurrency',
      String(CONCURRENCY),
    ],
    { timeoutMs: 180_000 },
  );
}

export async function run(log = console.error) {
  const [libsBundle, serverBundle, loadgenBundle] = await Promise.all([
    bundleTs('lib/libs.ts', 'libs'),
    bundleTs('health/server.ts', 'health-server'),
    bundleTs('health/loadgen.ts', 'health-loadgen'),
  ]);
  const { createPki } = createRequire(import.meta.url)(libsBundle);
  const tlsDir = mkdtempSync(join(tmpdir(), 'wgctl-bench-pki-'));
  const servers = [];
  try {
    await createPki(tlsDir, { vmAddresses: ['127.0.0.1'] });
    const agent = await startServer(serverBundle, 'agent', tlsDir);
    const echo = await startServer(serverBundle, 'echo', tlsDir);
    servers.push(agent, echo);

    const result = await loadgen(loadgenBundle, agent, echo, tlsDir);
    const a = result.health;
    const e = result.echo;
    for (const [which, r] of [['agent', a], ['echo', e]]) {
      if (r.errors) throw new Error(`${which}: ${r.errors} failed calls (first: ${r.firstError})`);
      log(`  ${which}: ${round(r.rps)} rps, p50 ${round(r.p50Ms)} ms, p99 ${round(r.p99Ms)} ms, max ${round(r.maxMs)} ms`);
    }
    const agentStats = await agent.stats();
    const echoStats = await echo.stats();
    const totalCalls = COUNT + WARMUP;
    // Per pair of neighbouring blocks (same moment, same conditions): agent rps / echo rps =
    // echo time / agent time. Their median is the judged ratio: robust to drift and bursts.
    const pairRatios = a.blockSeconds.map((seconds, i) => e.blockSeconds[i] / seconds);
    const rpsRatio = median(pairRatios);
    const spawned = agentStats.spawnsAfterCalibration + agentStats.childPids.length;

    const rows = [
      row({
        id: 'health.rps',
        figure: `Health Check rps (c=${CONCURRENCY})`,
        value: round(a.rps),
        unit: 'rps',
        baseline: round(e.rps),
        baselineLabel: 'bare echo',
        ratio: round(rpsRatio),
        target: '≥ 0.90× echo',
        pass: rpsRatio >= 0.9,
      }),
      row({
        id: 'health.p50',
        figure: 'Health Check p50',
        value: round(a.p50Ms),
        unit: 'ms',
        baseline: round(e.p50Ms),
        baselineLabel: 'bare echo',
        ratio: round(a.p50Ms / e.p50Ms),
        target: '(reported)',
        pass: null,
      }),
      row({
        id: 'health.p99',
        figure: 'Health Check p99',
        value: round(a.p99Ms),
        unit: 'ms',
        baseline: round(e.p99Ms),
        baselineLabel: 'bare echo',
        ratio: round(a.p99Ms / e.p99Ms),
        target: '≤ 1.25× echo',
        pass: a.p99Ms / e.p99Ms <= 1.25,
      }),
      row({
        id: 'health.spawns',
        figure: `Processes spawned by the server during ${totalCalls} calls`,
        value: spawned,
        unit: 'processes',
        baseline: echoStats.spawnsAfterCalibration + echoStats.childPids.length,
        baselineLabel: 'bare echo',
        ratio: null,
        target: '0',
        pass: spawned === 0,
      }),
    ];

    const method = [
      `Two servers, each in its own process${PINNED ? ` pinned to CPU ${SERVER_CPU} with \`taskset\`` : ''}, on 127.0.0.1 with the same PKI`,
      '(`createPki` in a temp dir; the server presents `vm-agent.crt`, the client `controller.crt`; client certificates required):',
      '- **agent**: `createAgentServer` from `@wgctl/transport` — grpc.health.v1 from grpc-health-check, reflection, the VmAgent',
      '  service registered (no handlers needed for Check), an info-level winston JSON logger as the agents run.',
      '- **bare echo**: a plain `grpc.Server` with `ServerCredentials.createSsl(ca, [vm-agent key/cert], true)` and one unary',
      '  method `/wgctl.bench.Echo/Echo` with identity (de)serializers, answering with the request bytes.',
      '',
      `The load generator is a separate process${PINNED ? ` pinned to CPU ${CLIENT_CPU}` : ' (placement left to the scheduler; `BENCH_PIN=1` pins servers and client apart)'}: one mTLS channel (set up with the transport's`,
      `\`channelSetup\`, as the controller does), ${CONCURRENCY} callers each issuing its next call when the previous returns,`,
      `${WARMUP} untimed warm-up calls, then ${COUNT} timed calls; latency per call from issue to callback`,
      '(`process.hrtime`), rps = calls / wall time of the timed phase. The Check asks for `wgctl.v1.VmAgent` and requires',
      'SERVING; the echo sends the same request bytes and checks they come back. A failed call fails the benchmark.',
      `Both servers are loaded by that one process in alternating blocks of ${BLOCK} calls (${COUNT / BLOCK} blocks each, the`,
      'order flipped every other pair), so other load on the machine at any moment weighs on both alike; per server,',
      'rps = its calls / the summed wall time of its blocks, percentiles over all its calls. The rps ratio is the median,',
      'over the pairs of neighbouring blocks, of agent rps / echo rps within the pair (robust to drift and bursts).',
      '',
      '**Processes spawned per call**: the server runs with `node --require tools/bench/health/spawn-counter.cjs`, which wraps',
      '`ChildProcess.prototype.spawn` (where spawn, exec, execFile and fork all end) and `spawnSync`/`execSync`/`execFileSync`',
      'before any server code loads. The server first spawns one `node -e 0` and refuses to start unless the counter reads',
      'exactly 1 (so the counter is shown to work); after the run it reports the count since then, plus its children',
      'as the kernel lists them (`/proc/self/task/*/children`). The figure is the sum of both.',
    ].join('\n');

    const table = [
      '| server | calls | rps | p50 ms | p90 ms | p99 ms | max ms |',
      '|---|---|---|---|---|---|---|',
      ...[['agent (Health Check)', a], ['bare echo', e]].map(
        ([name, r]) => `| ${name} | ${r.calls} | ${round(r.rps)} | ${round(r.p50Ms)} | ${round(r.p90Ms)} | ${round(r.p99Ms)} | ${round(r.maxMs)} |`,
      ),
    ].join('\n');
    const details = [
      table,
      '',
      `Server processes after the run: agent RSS ${round(agentStats.rssBytes / 2 ** 20)} MiB, ${agentStats.threads} threads,`,
      `${round(agentStats.cpuMsSinceReady / 1000)} s CPU; echo RSS ${round(echoStats.rssBytes / 2 ** 20)} MiB, ${echoStats.threads} threads,`,
      `${round(echoStats.cpuMsSinceReady / 1000)} s CPU. Spawns after calibration: agent ${agentStats.spawnsAfterCalibration},`,
      `echo ${echoStats.spawnsAfterCalibration}; children: agent [${agentStats.childPids.join(', ')}], echo [${echoStats.childPids.join(', ')}].`,
      `rps ratio per block pair: p10 ${round(percentile(pairRatios, 10))}, median ${round(rpsRatio)}, p90 ${round(percentile(pairRatios, 90))}; ratio of the totals ${round(a.rps / e.rps)}.`,
      `CPU time per call (server): agent ${round((agentStats.cpuMsSinceReady * 1000) / totalCalls)} µs, echo ${round((echoStats.cpuMsSinceReady * 1000) / totalCalls)} µs.`,
    ].join('\n');
    return { id, title, method, rows, details, raw: { result, agentStats, echoStats } };
  } finally {
    for (const s of servers) s.stop();
    rmSync(tlsDir, { recursive: true, force: true });
  }
}
