/**
 * Load generator of the health benchmark (its own process, pinned apart from the server):
 * one mTLS channel per server as the controller (controller.crt), `concurrency` callers each
 * issuing the next call as soon as its previous one returns, `warmup` calls untimed per server,
 * then `count` timed calls per server. Prints one JSON line:
 * { <method>: { calls, seconds, rps, p50Ms, p90Ms, p99Ms, maxMs, errors } }.
 *
 *   --targets health@PORT,echo@PORT --count N --warmup N --block N --concurrency N --tls-dir D
 *
 *   --method health  /grpc.health.v1.Health/Check {service: 'wgctl.v1.VmAgent'}
 *   --method echo    /wgctl.bench.Echo/Echo with the same request bytes (identity codecs)
 */
import * as grpc from '@grpc/grpc-js';
import { HealthServiceDefinition, channelSetup, loadTlsMaterial } from '@wgctl/transport';

const ECHO_PATH = '/wgctl.bench.Echo/Echo';

function arg(name: string): string {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing --${name}`);
  return process.argv[at + 1];
}

type Call = (done: (error: grpc.ServiceError | null) => void) => void;

function makeCall(client: grpc.Client, method: string): Call {
  const health = HealthServiceDefinition.check;
  const request = { service: 'wgctl.v1.VmAgent' };
  if (method === 'health') {
    return (done) => {
      client.makeUnaryRequest(
        health.path,
        health.requestSerialize,
        health.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (error, response) => {
          if (!error && response?.status !== 1) {
            done({ name: 'NotServing', message: `status ${response?.status}` } as grpc.ServiceError);
          } else done(error);
        },
      );
    };
  }
  if (method === 'echo') {
    const bytes = health.requestSerialize(request);
    const identity = (b: Buffer) => b;
    return (done) => {
      client.makeUnaryRequest(ECHO_PATH, identity, identity, bytes, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => {
        if (!error && response?.length !== bytes.length) {
          done({ name: 'BadEcho', message: 'echo returned other bytes' } as grpc.ServiceError);
        } else done(error);
      });
    };
  }
  throw new Error(`unknown --method ${method}`);
}

/** Runs `total` calls with `concurrency` callers; returns per-call latencies (ms) and wall time. */
function drive(call: Call, total: number, concurrency: number): Promise<{ latencies: Float64Array; seconds: number; errors: string[] }> {
  const latencies = new Float64Array(total);
  const errors: string[] = [];
  let issued = 0;
  let finished = 0;
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const next = () => {
      if (issued >= total) return;
      const index = issued++;
      const t0 = process.hrtime.bigint();
      call((error) => {
        latencies[index] = Number(process.hrtime.bigint() - t0) / 1e6;
        if (error) errors.push(error.message);
        finished++;
        if (finished === total) {
          resolve({ latencies, seconds: Number(process.hrtime.bigint() - started) / 1e9, errors });
        } else next();
      });
    };
    for (let i = 0; i < Math.min(concurrency, total); i++) next();
  });
}

function pct(sortedValues: Float64Array, p: number): number {
  const rank = Math.ceil((p / 100) * sortedValues.length);
  return sortedValues[Math.min(sortedValues.length - 1, Math.max(0, rank - 1))];
}

function summarize(latencies: Float64Array[], seconds: number, errors: string[]) {
  const all = new Float64Array(latencies.reduce((n, l) => n + l.length, 0));
  let at = 0;
  for (const l of latencies) {
    all.set(l, at);
    at += l.length;
  }
  all.sort();
  return {
    calls: all.length,
    seconds,
    rps: all.length / seconds,
    p50Ms: pct(all, 50),
    p90Ms: pct(all, 90),
    p99Ms: pct(all, 99),
    maxMs: all[all.length - 1],
    errors: errors.length,
    firstError: errors[0],
  };
}

/**
 * Both servers are loaded from this one process, alternating in blocks of `block` calls, so
 * whatever else the machine does at any moment weighs on both alike. Per server: rps = its
 * calls / the summed wall time of its blocks; percentiles over all its calls.
 */
async function main(): Promise<void> {
  const count = Number(arg('count'));
  const warmup = Number(arg('warmup'));
  const block = Number(arg('block'));
  const concurrency = Number(arg('concurrency'));
  const tls = loadTlsMaterial(arg('tls-dir'), 'controller');
  const targets = arg('targets')
    .split(',')
    .map((spec) => {
      const [method, port] = spec.split('@');
      const { address, credentials, channelOptions } = channelSetup(`127.0.0.1:${port}`, { tls, serverName: 'vm-agent' });
      const client = new grpc.Client(address, credentials, channelOptions);
      return { method, client, call: makeCall(client, method), latencies: [] as Float64Array[], seconds: 0, blockSeconds: [] as number[], errors: [] as string[] };
    });

  for (const t of targets) {
    const warm = await drive(t.call, warmup, concurrency);
    if (warm.errors.length) throw new Error(`${t.method} warm-up errors: ${warm.errors.slice(0, 3).join('; ')}`);
  }
  for (let done = 0, i = 0; done < count; i++) {
    const size = Math.min(block, count - done);
    // Alternate the order within each pair of blocks, too.
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const r = await drive(t.call, size, concurrency);
      t.latencies.push(r.latencies);
      t.seconds += r.seconds;
      t.blockSeconds.push(r.seconds);
      t.errors.push(...r.errors);
    }
    done += size;
  }
  const result: Record<string, ReturnType<typeof summarize> & { blockSeconds: number[] }> = {};
  for (const t of targets) {
    t.client.close();
    result[t.method] = { ...summarize(t.latencies, t.seconds, t.errors), blockSeconds: t.blockSeconds };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`loadgen: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
