/**
 * Clients for the agents: mTLS with the server's role name checked against its certificate
 * (so bare-IP targets work without SNI/DEP0123), plaintext only to a unix socket or loopback.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { isLoopbackHost, parseAddress } from '@wgctl/config';
import { shownValue } from '@wgctl/logging';
import { roleForService } from './roles';
import { MIN_TLS_VERSION, type TlsMaterial } from './tls';

export interface ConnectOptions {
  tls?: TlsMaterial;
  /** Plaintext; allowed only for unix:/path targets and 127.0.0.1/::1/localhost. */
  insecure?: boolean;
  /** Name expected in the server certificate; default: the role serving the client's service. */
  serverName?: string;
  /** Overrides of DEFAULT_CLIENT_OPTIONS. */
  channelOptions?: grpc.ChannelOptions;
}

/** Keepalive detects a VM that went away; short reconnect backoff reconnects quickly after a restart. */
const DEFAULT_CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 32 * 1024 * 1024,
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5_000,
  'grpc.enable_http_proxy': 0,
};

/** Anything constructed like a grpc-js generated client (ts-proto's VmAgentClient, …). */
export interface ClientConstructor<T> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): T;
  serviceName?: string;
}

/** Validates the target and builds credentials + channel options for it. */
export function channelSetup(
  target: string,
  options: ConnectOptions,
  defaultServerName?: string,
): { address: string; credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  skipIpv6RegexForColonlessHosts();
  const parsed = parseAddress(target, { allowPortZero: false });
  if (!parsed.ok) throw new Error(`invalid agent address ${shownValue(target)}: ${parsed.reason}`);
  const address = parsed.address;
  const channelOptions: grpc.ChannelOptions = { ...DEFAULT_CLIENT_OPTIONS, ...options.channelOptions };
  if (options.tls && options.insecure) throw new Error('connect: give either tls or insecure, not both');
  if (options.insecure) {
    if (address.kind === 'tcp' && !isLoopbackHost(address.host)) {
      throw new Error(`refusing a plaintext connection to ${target}: only unix sockets and loopback may skip TLS`);
    }
    return { address: target, credentials: grpc.credentials.createInsecure(), channelOptions };
  }
  if (!options.tls) throw new Error(`connect to ${target}: TLS material is required (or insecure for a unix socket)`);
  const serverName = options.serverName ?? defaultServerName;
  if (!serverName) throw new Error(`connect to ${target}: serverName is required (the name in the server certificate)`);
  channelOptions['grpc.ssl_target_name_override'] = serverName;
  channelOptions['grpc.default_authority'] = serverName;
  const credentials = grpc.credentials.createFromSecureContext(secureContextFor(options.tls));
  return { address: target, credentials, channelOptions };
}

/** Contexts already built, by TLS material: one CLI run's two channels share one. */
const secureContexts = new WeakMap<TlsMaterial, SecureContext>();

/**
 * The same as createSsl, with the TLS floor set explicitly (see MIN_TLS_VERSION). Built once per
 * TLS material: each build parses the key and certificates again (~1-2 ms on the CLI's path to
 * its first RPCs), and a context holds no per-connection state.
 */
export function secureContextFor(tls: TlsMaterial): SecureContext {
  let context = secureContexts.get(tls);
  if (!context) {
    context = createSecureContext({ ca: tls.ca, key: tls.key, cert: tls.cert, minVersion: MIN_TLS_VERSION });
    secureContexts.set(tls, context);
  }
  return context;
}

let ipv6CheckShortcut = false;

/**
 * grpc-js asks net.isIPv6 about each IPv4 host it connects to (pick-first's family interleaving,
 * address strings), and tls.connect asks net.isIP about the server name ('vm-agent'). Node's
 * first IPv6 test of a string that is not IPv4 runs its long IPv6 regex through V8's regexp
 * compiler: ~3-6 ms, then ~0.5-1 ms more at tier-up, on the CLI's path to its first RPCs. Every
 * textual IPv6 address holds a ':' (RFC 4291 2.2), so a string without one is answered without
 * that regex: no answer changes. Patched on node:net itself, the object grpc-js and tls read.
 */
function skipIpv6RegexForColonlessHosts(): void {
  if (ipv6CheckShortcut) return;
  ipv6CheckShortcut = true;
  // The module object itself (an ES import would be a copy in the bundle).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const net = require('node:net') as { isIP(input: unknown): number; isIPv4(input: unknown): boolean; isIPv6(input: unknown): boolean };
  const { isIP, isIPv4, isIPv6 } = net;
  const colonless = (input: unknown): boolean => typeof input === 'string' && !input.includes(':');
  net.isIPv6 = (input) => (colonless(input) ? false : isIPv6(input));
  net.isIP = (input) => (colonless(input) ? (isIPv4(input) ? 4 : 0) : isIP(input));
}

/**
 * A client of an agent. `target`: 'unix:/path', 'ADDR:PORT' or '[V6]:PORT'. The default
 * serverName is the role serving Client.serviceName ('vm-agent' for wgctl.v1.VmAgent).
 */
export function connectAgent<T>(Client: ClientConstructor<T>, target: string, opts: ConnectOptions): T {
  const defaultName = Client.serviceName ? roleForService(Client.serviceName) : undefined;
  const { address, credentials, channelOptions } = channelSetup(target, opts, defaultName);
  return new Client(address, credentials, channelOptions);
}

// ---------------------------------------------------------------------------------------------
// Deadlines and calls

/** A deadline `ms` from now. */
function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** Call options with a deadline `timeoutMs` from now. */
function withDeadline(timeoutMs: number, options: Partial<grpc.CallOptions> = {}): Partial<grpc.CallOptions> {
  return { ...options, deadline: deadlineIn(timeoutMs) };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/**
 * Promise form of a unary call with a deadline:
 * `await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 5000 })`.
 */
export function unaryCall<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: { timeoutMs: number; metadata?: grpc.Metadata; signal?: AbortSignal },
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = method(request, options.metadata ?? new grpc.Metadata(), withDeadline(options.timeoutMs), (error, response) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(response);
    });
    const onAbort = () => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Consumes a server stream as an async iterator. Errors (with their gRPC status) are thrown from
 * the loop; leaving the loop early cancels the call.
 */
export async function* readStream<T>(stream: grpc.ClientReadableStream<T>): AsyncGenerator<T, void, undefined> {
  let completed = false;
  try {
    for await (const message of stream as AsyncIterable<T>) yield message;
    completed = true;
  } finally {
    if (!completed) stream.cancel();
  }
}

// ---------------------------------------------------------------------------------------------
// grpc.health.v1 client (hand-written codec: no .proto loading on the client side)

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
const HEALTH_STATUSES: HealthStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function encodeHealthRequest(request: { service: string }): Buffer {
  const writer = new BinaryWriter();
  if (request.service !== '') writer.uint32(10).string(request.service);
  return Buffer.from(writer.finish());
}

function decodeHealthRequest(bytes: Buffer): { service: string } {
  const reader = new BinaryReader(bytes);
  let service = '';
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) service = reader.string();
    else reader.skip(tag & 7);
  }
  return { service };
}

function encodeHealthResponse(response: { status: number }): Buffer {
  const writer = new BinaryWriter();
  if (response.status !== 0) writer.uint32(8).int32(response.status);
  return Buffer.from(writer.finish());
}

function decodeHealthResponse(bytes: Buffer): { status: number } {
  const reader = new BinaryReader(bytes);
  let status = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 0) status = reader.int32();
    else reader.skip(tag & 7);
  }
  return { status };
}

export const HealthServiceDefinition = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeHealthRequest,
    requestDeserialize: decodeHealthRequest,
    responseSerialize: encodeHealthResponse,
    responseDeserialize: decodeHealthResponse,
  },
} satisfies grpc.ServiceDefinition;

interface HealthClient extends grpc.Client {
  check: UnaryMethod<{ service: string }, { status: number }>;
}

const HealthClientConstructor = grpc.makeGenericClientConstructor(
  HealthServiceDefinition,
  'grpc.health.v1.Health',
) as unknown as ClientConstructor<HealthClient>;

export interface HealthCheckOptions extends ConnectOptions {
  /** Default 3000 ms. */
  timeoutMs?: number;
}

/**
 * grpc.health.v1 Check against `target` for `service` ('' = the whole server). Returns the
 * status; a server that does not know the service gives 'SERVICE_UNKNOWN'; connection errors
 * are thrown (with their gRPC code). serverName defaults to the role of `service` when known.
 */
export async function healthCheck(target: string, opts: HealthCheckOptions, service = ''): Promise<HealthStatus> {
  const { address, credentials, channelOptions } = channelSetup(target, opts, roleForService(service));
  const client = new HealthClientConstructor(address, credentials, channelOptions);
  try {
    const response = await unaryCall(client.check.bind(client), { service }, { timeoutMs: opts.timeoutMs ?? 3000 });
    return HEALTH_STATUSES[response.status] ?? 'UNKNOWN';
  } catch (error) {
    if ((error as grpc.ServiceError).code === grpc.status.NOT_FOUND) return 'SERVICE_UNKNOWN';
    throw error;
  } finally {
    client.close();
  }
}

export interface HealthProbeOptions extends ConnectOptions {
  /** How long to wait for a ready connection (TCP, TLS both ways, the server's HTTP/2 SETTINGS). */
  connectTimeoutMs: number;
  /** Deadline of the Check itself, counted once connected. */
  rpcTimeoutMs: number;
}

/**
 * How far a health probe got, the distinction grpc_health_probe makes: no ready connection
 * within the connect timeout; connected but the Check failed (grpc status name); or an answer.
 */
export type HealthProbeResult =
  | { outcome: 'answered'; status: HealthStatus }
  | { outcome: 'connect-failed'; error: string }
  | { outcome: 'rpc-failed'; code: string; error: string };

/** Longest wait for the reason a connection failed (a fail-fast call on the failed channel). */
const CONNECT_REASON_WAIT_MS = 500;

/**
 * grpc.health.v1 Check in two phases, as grpc_health_probe does (a blocking dial with the connect
 * timeout, then the RPC with its own): first a ready channel, then the Check. A TLS peer that
 * refuses our certificate never sends its SETTINGS, so it fails the connect phase, not the RPC.
 * Throws only for options that cannot make a channel (bad target, unusable TLS material).
 */
export async function probeHealth(target: string, opts: HealthProbeOptions, service = ''): Promise<HealthProbeResult> {
  const { address, credentials, channelOptions } = channelSetup(target, opts, roleForService(service));
  const client = new HealthClientConstructor(address, credentials, channelOptions);
  try {
    const ready = await new Promise<Error | undefined>((resolve) => client.waitForReady(deadlineIn(opts.connectTimeoutMs), resolve));
    if (ready) {
      const reason = await connectFailureReason(client);
      return { outcome: 'connect-failed', error: `no connection within ${opts.connectTimeoutMs} ms${reason ? `: ${reason}` : ''}` };
    }
    try {
      const response = await unaryCall(client.check.bind(client), { service }, { timeoutMs: opts.rpcTimeoutMs });
      return { outcome: 'answered', status: HEALTH_STATUSES[response.status] ?? 'UNKNOWN' };
    } catch (error) {
      const e = error as grpc.ServiceError;
      return { outcome: 'rpc-failed', code: grpc.status[e.code] ?? String(e.code), error: e.details || e.message };
    }
  } finally {
    client.close();
  }
}

/** grpc-js keeps the last connection error only in the UNAVAILABLE of a fail-fast call: ask once. */
async function connectFailureReason(client: HealthClient): Promise<string | undefined> {
  try {
    await unaryCall(client.check.bind(client), { service: '' }, { timeoutMs: CONNECT_REASON_WAIT_MS });
    return undefined;
  } catch (error) {
    const e = error as grpc.ServiceError;
    if (e.code !== grpc.status.UNAVAILABLE) return undefined;
    // "No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note: …"
    const last = /Last error: (?:Error: )?(.*?)(?:\. Resolution note:.*)?$/s.exec(e.details)?.[1];
    return last || e.details;
  }
}
