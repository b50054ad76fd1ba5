/**
 * A real Prometheus server (Debian's `prometheus`) inside a lab namespace, for the end-to-end
 * monitoring test: its own storage directory, its web UI/API on the namespace's loopback only,
 * scrape jobs for the lab's agents only (no remote_write, no other target), and its HTTP API read
 * from inside the namespace. The configuration is written as JSON, which YAML parsers accept.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnStreaming, type StreamingProcess } from '@wgctl/runner';
import { labHttpGet, resolveNamespace, type Lab } from '../lab/src';
import { inNamespace } from '../lab/src/plan';

export interface TlsClient {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The name the agent's certificate must carry (its SAN: the role, e.g. vm-agent). */
  serverName: string;
}

export interface ScrapeJob {
  job: string;
  /** host:port */
  target: string;
  scheme: 'http' | 'https';
  tls?: TlsClient;
}

export interface PrometheusSettings {
  jobs: ScrapeJob[];
  ruleFiles?: string[];
  /** scrape_interval and evaluation_interval, seconds (default 1). */
  intervalSeconds?: number;
}

/** prometheus.yml as an object (pure). */
export function prometheusConfig(settings: PrometheusSettings): object {
  const interval = `${settings.intervalSeconds ?? 1}s`;
  return {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: settings.ruleFiles ?? [],
    scrape_configs: settings.jobs.map((j) => ({
      job_name: j.job,
      scheme: j.scheme,
      ...(j.tls ? { tls_config: { ca_file: j.tls.caFile, cert_file: j.tls.certFile, key_file: j.tls.keyFile, server_name: j.tls.serverName } } : {}),
      static_configs: [{ targets: [j.target] }],
    })),
  };
}

export interface ActiveTarget {
  scrapePool: string;
  scrapeUrl: string;
  labels: Record<string, string>;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface RuleGroup {
  name: string;
  rules: Array<{ name: string; type: string; health: string; lastError?: string; state?: string; alerts?: Array<{ state: string; labels: Record<string, string> }> }>;
}

export interface RunningPrometheus {
  /** http://127.0.0.1:PORT, inside the namespace. */
  readonly url: string;
  /** When it was spawned (epoch ms). */
  readonly startedAt: number;
  /** From spawning it to "Server is ready to receive web requests". */
  readonly startupMs: number;
  targets(): Promise<ActiveTarget[]>;
  query(expr: string): Promise<Sample[]>;
  ruleGroups(): Promise<RuleGroup[]>;
  /** Its log so far (the last lines), for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

export interface StartPrometheusOptions extends PrometheusSettings {
  /** Namespace (or lab role) it runs in: it reaches what that namespace reaches. */
  ns: string;
  /** Its directory: prometheus.yml and data/ (the caller removes it). */
  dir: string;
  /** Port on the namespace's 127.0.0.1 (each lab namespace has its own loopback). */
  port?: number;
  readyTimeoutMs?: number;
}

const READY_LINE = 'Server is ready to receive web requests.';

export async function startPrometheus(lab: Lab, options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const ns = resolveNamespace(lab, options.ns);
  const listen = `127.0.0.1:${options.port ?? 9090}`;
  const configFile = join(options.dir, 'prometheus.yml');
  mkdirSync(join(options.dir, 'data'), { recursive: true });
  writeFileSync(configFile, JSON.stringify(prometheusConfig(options), null, 2) + '\n');

  const log: string[] = [];
  let ready: () => void = () => undefined;
  const readyLogged = new Promise<void>((resolve) => (ready = resolve));
  const started = Date.now();
  const proc: StreamingProcess = spawnStreaming(
    inNamespace(ns, ['prometheus', `--config.file=${configFile}`, `--storage.tsdb.path=${join(options.dir, 'data')}`, `--web.listen-address=${listen}`]),
    {
      onLine: (line) => log.push(line),
      onStderrLine: (line) => {
        log.push(line);
        if (line.includes(READY_LINE)) ready();
      },
    },
  );
  const logTail = () => log.slice(-15).join('\n');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyLogged.then(() => 'ready' as const),
    proc.exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.readyTimeoutMs ?? 15_000))),
  ]);
  clearTimeout(timer);
  const startupMs = Date.now() - started;
  if (outcome !== 'ready') {
    await proc.stop(2000);
    throw new Error(`prometheus did not start (${outcome}):\n${logTail()}`);
  }

  const url = `http://${listen}`;
  async function api<T>(path: string): Promise<T> {
    const r = await labHttpGet(lab, ns, `${url}${path}`, { timeoutMs: 5000 });
    if (!r.ok) throw new Error(`prometheus ${path}: ${r.error}`);
    const parsed = JSON.parse(r.body) as { status: string; data: T; error?: string };
    if (parsed.status !== 'success') throw new Error(`prometheus ${path}: ${parsed.error ?? r.body}`);
    return parsed.data;
  }
  return {
    url,
    startedAt: started,
    startupMs,
    targets: async () => (await api<{ activeTargets: ActiveTarget[] }>('/api/v1/targets?state=active')).activeTargets,
    query: async (expr) =>
      (await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result.map((r) => ({
        metric: r.metric,
        value: Number(r.value[1]),
      })),
    ruleGroups: async () => (await api<{ groups: RuleGroup[] }>('/api/v1/rules')).groups,
    logTail,
    stop: async () => {
      await proc.stop(5000);
    },
  };
}
