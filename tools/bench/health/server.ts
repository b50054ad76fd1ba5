/**
 * The two servers of the health benchmark, run in their own process:
 *   --mode agent  createAgentServer from @wgctl/transport (mTLS, grpc.health.v1 from
 *                 grpc-health-check, reflection, the VmAgent service registered with no
 *                 handlers, an info-level JSON logger as the agents use).
 *   --mode echo   a bare grpc.Server with ServerCredentials.createSsl over the same
 *                 certificates (client certificate required) and one unary echo method whose
 *                 (de)serializers are the identity.
 * Prints one JSON line {"benchReady":{"port":N}} on stdout, then answers IPC messages
 * {type:'stats'} with spawn counts, child processes, threads, RSS and CPU time.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '@wgctl/logging';
import { VmAgentService } from '@wgctl/proto';
import { createAgentServer, loadTlsMaterial } from '@wgctl/transport';

export const ECHO_PATH = '/wgctl.bench.Echo/Echo';

interface SpawnCounts {
  async: number;
  sync: number;
  byApi: Record<string, number>;
}

function arg(name: string): string {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing --${name}`);
  return process.argv[at + 1];
}

function spawnCounts(): SpawnCounts {
  const counts = (globalThis as { __benchSpawnCounts?: SpawnCounts }).__benchSpawnCounts;
  if (!counts) throw new Error('spawn counter not preloaded (node --require tools/bench/health/spawn-counter.cjs)');
  return { async: counts.async, sync: counts.sync, byApi: { ...counts.byApi } };
}

/** Children of every thread of this process, from /proc (the kernel's view, not Node's). */
function childPids(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    const text = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
    if (text) pids.push(...text.split(/\s+/).map(Number));
  }
  return pids;
}

function threadCount(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const mode = arg('mode');
  const tls = loadTlsMaterial(arg('tls-dir'), 'vm-agent');

  // Calibration: one known spawn must show as exactly one in the counter, so "0 during the
  // load" means the counter works and nothing was started.
  execFileSync(process.execPath, ['-e', '0']);
  const calibration = spawnCounts();
  if (calibration.async + calibration.sync !== 1) {
    throw new Error(`spawn counter calibration failed: ${JSON.stringify(calibration)}`);
  }

  let port: number;
  if (mode === 'agent') {
    const logger = createLogger({ service: 'vm-agent', level: 'info', destination: 'stderr' });
    const agent = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', tls, allowedRoles: ['controller'], logger });
    agent.addService(VmAgentService as unknown as grpc.ServiceDefinition, {});
    const bound = await agent.listen('127.0.0.1:0');
    port = Number(bound.slice(bound.lastIndexOf(':') + 1));
  } else if (mode === 'echo') {
    const server = new grpc.Server();
    const identity = (b: Buffer) => b;
    const definition: grpc.ServiceDefinition = {
      echo: {
        path: ECHO_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    };
    server.addService(definition, {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
    });
    const credentials = grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
  } else {
    throw new Error(`unknown --mode ${mode}`);
  }

  const cpuAtReady = process.cpuUsage();
  process.on('message', (message: { type?: string }) => {
    if (message?.type !== 'stats') return;
    const counts = spawnCounts();
    const cpu = process.cpuUsage(cpuAtReady);
    process.send?.({
      spawnsAfterCalibration: counts.async + counts.sync - (calibration.async + calibration.sync),
      spawnsByApi: counts.byApi,
      childPids: childPids(),
      threads: threadCount(),
      rssBytes: process.memoryUsage().rss,
      cpuMsSinceReady: (cpu.user + cpu.system) / 1000,
    });
  });
  process.on('disconnect', () => process.exit(0));
  process.stdout.write(JSON.stringify({ benchReady: { port, pid: process.pid } }) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bench server: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
