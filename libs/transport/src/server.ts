/**
 * The gRPC server every agent runs: mTLS with the caller's role taken from its certificate CN,
 * grpc.health.v1, server reflection, per-call logging and safe error mapping. Rejected TLS
 * handshakes and refused calls are logged with the peer, rate-limited (./rejections.ts).
 *
 * Plaintext exists only for a unix socket (filesystem permissions guard it) and for an explicit
 * loopback dev mode; listen() refuses anything else.
 */
import { chmodSync, lstatSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type * as GrpcReflection from '@grpc/reflection';
import type * as GrpcHealthCheck from 'grpc-health-check';
import { formatListenAddress, isLoopbackHost, parseListenAddress, type ListenAddress } from '@wgctl/config';
import { RateLimitedLog, scrubKnownSecrets, shownValue, type Logger } from '@wgctl/logging';
import { permissionDenied, toStatusError, type StatusError } from './errors';
import { reportRejectedHandshakes } from './rejections';
import { loadReflectionPackageDefinition } from './proto-files';
import { roleOfCertificate, type Role } from './roles';
import { MIN_TLS_VERSION, type TlsMaterial } from './tls';

type ServingStatus = GrpcHealthCheck.ServingStatus;

const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';
const DEFAULT_SOCKET_MODE = 0o660;

/** Server limits: requests are small; responses (captures, status) may be larger. */
const DEFAULT_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  'grpc.max_send_message_length': 32 * 1024 * 1024,
  'grpc.max_concurrent_streams': 64,
  'grpc.max_connection_idle_ms': 10 * 60 * 1000,
};

export type InsecureMode = 'loopback-dev' | 'unix-socket';

export interface AgentServerOptions {
  /** Fully qualified app service, e.g. 'wgctl.v1.VmAgent'. */
  serviceName: string;
  /** mTLS: client certificates required, signed by tls.ca. */
  tls?: TlsMaterial;
  /** Plaintext, only on 127.0.0.1/::1/localhost ('loopback-dev') or a unix socket ('unix-socket'). */
  insecure?: InsecureMode;
  /** Certificate roles (CN) allowed to call the app service. */
  allowedRoles: Role[];
  logger: Logger;
  /** Mode of unix sockets after bind; default 0660. */
  socketMode?: number;
  /** Serve grpc.reflection (v1 and v1alpha); default true. */
  reflection?: boolean;
  /** Health status before the first setHealth(); default true (SERVING). */
  initialHealth?: boolean;
  /** Overrides of DEFAULT_SERVER_OPTIONS. */
  serverOptions?: grpc.ServerOptions;
}

export interface AgentServer {
  readonly server: grpc.Server;
  /** Wraps each handler with the role check, logging and error mapping. */
  addService(definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void;
  /** Sets both '' and serviceName in grpc.health.v1. */
  setHealth(serving: boolean): void;
  /** 'ADDR:PORT' ('[V6]:PORT', port 0 = ephemeral) or 'unix:/path'; resolves the bound address. */
  listen(address: string, options?: { mode?: number }): Promise<string>;
  /** Graceful stop (health goes NOT_SERVING first); forced after graceMs (default 5000). */
  shutdown(graceMs?: number): Promise<void>;
}

/** The caller's role: the CN of its verified client certificate. */
function peerRoleOf(call: { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null }): string | undefined {
  return roleOfCertificate(call.getAuthContext?.()?.sslPeerCertificate);
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** A unix socket file left behind by a dead process is removed; a live one is refused. */
async function clearStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) throw new Error(`cannot listen on unix:${path}: the path exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`cannot listen on unix:${path}: another process is listening there`);
  rmSync(path, { force: true });
}

/**
 * mTLS server credentials: client certificate required and verified against the CA, TLS 1.2
 * or newer — set explicitly, so a node started with --tls-min-v1.0 (or a changed
 * tls.DEFAULT_MIN_VERSION) cannot lower it.
 */
export function mtlsServerCredentials(tls: TlsMaterial): grpc.ServerCredentials {
  const credentials = grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
  const serverOptions = credentials._getConstructorOptions();
  const contextOptions = credentials._getSecureContextOptions();
  if (!serverOptions || !contextOptions) throw new Error('mtlsServerCredentials: grpc-js returned credentials without TLS options');
  Object.assign(serverOptions, { minVersion: MIN_TLS_VERSION, rejectUnauthorized: true });
  Object.assign(contextOptions, { minVersion: MIN_TLS_VERSION });
  return credentials;
}

/** Exactly one of tls / a known insecure mode must be given. */
function validateSecurityOptions(tls: TlsMaterial | undefined, insecure: InsecureMode | undefined): void {
  if (tls && insecure) throw new Error('createAgentServer: give either tls or insecure, not both');
  if (!tls && !insecure) throw new Error('createAgentServer: tls material is required (or an explicit insecure mode)');
  if (insecure && insecure !== 'loopback-dev' && insecure !== 'unix-socket') {
    throw new Error(`createAgentServer: unknown insecure mode "${String(insecure)}"`);
  }
}

type HealthImplementation = InstanceType<typeof GrpcHealthCheck.HealthImplementation>;

/** Registers grpc.health.v1 (and, unless disabled, server reflection); returns the health service. */
function registerHealthAndReflection(server: grpc.Server, options: AgentServerOptions): HealthImplementation {
  const { serviceName } = options;
  // Loaded here, not at import: clients (the wgctl CLI) never pay for the server-only modules.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { HealthImplementation } = require('grpc-health-check') as typeof GrpcHealthCheck;
  const initial: ServingStatus = options.initialHealth === false ? 'NOT_SERVING' : 'SERVING';
  const health = new HealthImplementation({ '': initial, [serviceName]: initial });
  health.addToServer(server);
  if (options.reflection !== false) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ReflectionService } = require('@grpc/reflection') as typeof GrpcReflection;
    const reflection = new ReflectionService(loadReflectionPackageDefinition(), {
      services: [serviceName, HEALTH_SERVICE_NAME],
    });
    reflection.addToServer(server);
  }
  return health;
}

/** Role check and per-call logging shared by the handler wrappers. */
interface CallGuard {
  /** Returns the caller's role, or a PERMISSION_DENIED error. */
  authorize(call: AnyCall, method: string): { role: string; error?: StatusError };
  /** `peer`: call.getPeer() ('ADDR:PORT'). */
  logCall(method: string, role: string, peer: string, startedAt: number, code: grpc.status, details?: string): void;
  logger: Logger;
}

/** The address part of a grpc-js peer ('192.0.2.1:5000', '[2001:db8::1]:5000'): what summaries count by, and the vm-agent's read-ahead reads the route to. */
export function peerAddressOf(peer: string): string {
  return peer.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

function createCallGuard(checkRoles: boolean, allowedRoles: Set<string>, logger: Logger, rejections: RateLimitedLog): CallGuard {
  function authorize(call: AnyCall, method: string): { role: string; error?: StatusError } {
    if (!checkRoles) return { role: 'insecure' };
    const role = peerRoleOf(call) ?? '(no certificate)';
    if (allowedRoles.has(role)) return { role };
    return {
      role,
      error: permissionDenied(`role ${shownValue(role)} may not call ${method} (allowed: ${[...allowedRoles].join(', ') || 'none'})`),
    };
  }

  function logCall(method: string, role: string, peer: string, startedAt: number, code: grpc.status, details?: string): void {
    const entry = {
      method,
      peerRole: role,
      durationMs: Math.round((performance.now() - startedAt) * 10) / 10,
      status: grpc.status[code] ?? String(code),
      ...(details && code !== grpc.status.OK ? { details } : {}),
    };
    if (code === grpc.status.OK) logger.debug('rpc', entry);
    // A stranger with a certificate of this CA can repeat these at will: rate-limited.
    else if (code === grpc.status.PERMISSION_DENIED) rejections.log('rpc refused', { ...entry, peer }, peerAddressOf(peer));
    else logger.info('rpc failed', entry);
  }

  return { authorize, logCall, logger };
}

function wrapUnary(
  guard: CallGuard,
  method: string,
  handler: grpc.handleUnaryCall<unknown, unknown>,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const startedAt = performance.now();
    const peer = call.getPeer();
    const { role, error } = guard.authorize(call, method);
    let finished = false;
    const finish: grpc.sendUnaryData<unknown> = (err, value, trailer, flags) => {
      if (finished) return;
      finished = true;
      if (err) {
        const mapped = toStatusError(err);
        guard.logCall(method, role, peer, startedAt, mapped.code, mapped.details);
        callback(mapped, null, trailer, flags);
      } else {
        guard.logCall(method, role, peer, startedAt, grpc.status.OK);
        // No answer carries a secret the process knows (see @wgctl/logging addKnownSecret).
        callback(null, scrubKnownSecrets(value), trailer, flags);
      }
    };
    if (error) return finish(error);
    try {
      const result = (handler as (...args: unknown[]) => unknown)(call, finish);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, (thrown) => finish(thrown as Error));
      }
    } catch (thrown) {
      finish(thrown as Error);
    }
  };
}

function wrapServerStream(
  guard: CallGuard,
  method: string,
  handler: grpc.handleServerStreamingCall<unknown, unknown>,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const startedAt = performance.now();
    const peer = call.getPeer();
    const { role, error } = guard.authorize(call, method);
    let status: StatusError | undefined;
    let logged = false;
    const logOnce = (code: grpc.status, details?: string) => {
      if (logged) return;
      logged = true;
      guard.logCall(method, role, peer, startedAt, code, details);
    };
    // Every error a handler emits (or a stream raises) is mapped before grpc-js turns it into a status.
    const emit = call.emit.bind(call);
    call.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event === 'error') {
        status = toStatusError(args[0]);
        return emit('error', status);
      }
      return emit(event, ...args);
    }) as typeof call.emit;
    const write = call.write.bind(call) as (chunk: unknown, ...rest: unknown[]) => boolean;
    call.write = ((chunk: unknown, ...rest: unknown[]) => write(scrubKnownSecrets(chunk), ...rest)) as typeof call.write;
    call.on('finish', () => logOnce(status?.code ?? grpc.status.OK, status?.details));
    call.on('cancelled', () => logOnce(grpc.status.CANCELLED, 'cancelled by the client'));
    const fail = (thrown: unknown) => {
      if (call.writableEnded || call.destroyed) {
        guard.logger.warn('rpc handler failed after the stream ended', { method, error: toStatusError(thrown).details });
        return;
      }
      call.emit('error', thrown);
    };
    if (error) return fail(error);
    try {
      const result = (handler as (...args: unknown[]) => unknown)(call);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, fail);
      }
    } catch (thrown) {
      fail(thrown);
    }
  };
}

/** Wraps every implemented method of a service; client-streaming methods are refused. */
function wrapServiceImplementation(
  guard: CallGuard,
  definition: grpc.ServiceDefinition,
  impl: grpc.UntypedServiceImplementation,
): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [name, attrs] of Object.entries(definition)) {
    const handler = impl[name] ?? (attrs.originalName ? impl[attrs.originalName] : undefined);
    if (!handler) continue; // grpc-js answers UNIMPLEMENTED
    if (!attrs.requestStream && !attrs.responseStream) {
      wrapped[name] = wrapUnary(guard, attrs.path, handler as grpc.handleUnaryCall<unknown, unknown>);
    } else if (!attrs.requestStream && attrs.responseStream) {
      wrapped[name] = wrapServerStream(guard, attrs.path, handler as grpc.handleServerStreamingCall<unknown, unknown>);
    } else {
      throw new Error(`${attrs.path}: client-streaming methods are not supported by createAgentServer`);
    }
  }
  return wrapped;
}

/** Plaintext modes only accept their own kind of address. */
function checkAddressAllowed(insecure: InsecureMode | undefined, address: ListenAddress, text: string): void {
  if (insecure === 'loopback-dev') {
    if (address.kind !== 'tcp' || !isLoopbackHost(address.host)) {
      throw new Error(`refusing plaintext (loopback-dev) on ${text}: only 127.0.0.1, ::1 or localhost are allowed without TLS`);
    }
  } else if (insecure === 'unix-socket') {
    if (address.kind !== 'unix') {
      throw new Error(`refusing plaintext (unix-socket) on ${text}: only unix:/path addresses are allowed without TLS`);
    }
  }
}

function bindServer(server: grpc.Server, bindTarget: string, credentials: grpc.ServerCredentials, text: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(bindTarget, credentials, (err, boundPort) => {
      if (err) reject(new Error(`cannot listen on ${text}: ${err.message}`));
      else resolve(boundPort);
    });
  });
}

/** tryShutdown, forced after graceMs; then the unix socket files are removed. */
async function stopServer(server: grpc.Server, logger: Logger, socketPaths: Set<string>, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      logger.warn('forcing server shutdown', { graceMs });
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const path of socketPaths) rmSync(path, { force: true });
  socketPaths.clear();
}

export function createAgentServer(options: AgentServerOptions): AgentServer {
  const { serviceName, tls, insecure, logger } = options;
  validateSecurityOptions(tls, insecure);
  const allowedRoles = new Set<string>(options.allowedRoles);
  const checkRoles = Boolean(tls);
  const server = new grpc.Server({ ...DEFAULT_SERVER_OPTIONS, ...options.serverOptions });
  const credentials = tls ? mtlsServerCredentials(tls) : grpc.ServerCredentials.createInsecure();
  const socketPaths = new Set<string>();
  const health = registerHealthAndReflection(server, options);
  // Strangers cause these lines: 20 a minute, then a summary (docs/SECURITY.md).
  const rejections = new RateLimitedLog({ logger, what: 'rejected connections or calls', maxPerWindow: 20, windowMs: 60_000 });
  if (tls) {
    reportRejectedHandshakes(server, ({ peer, peerAddress, code, reason }) => {
      rejections.log('tls handshake rejected', { peer, reason, code }, peerAddress);
    });
  }
  const guard = createCallGuard(checkRoles, allowedRoles, logger, rejections);

  function addService(definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
    server.addService(definition, wrapServiceImplementation(guard, definition, impl));
  }

  function setHealth(serving: boolean): void {
    const status: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', status);
    health.setStatus(serviceName, status);
  }

  async function listen(text: string, listenOptions: { mode?: number } = {}): Promise<string> {
    const address = parseListenAddress(text, { allowPortZero: true });
    checkAddressAllowed(insecure, address, text);
    if (address.kind === 'unix') await clearStaleSocket(address.path);
    const bindTarget = address.kind === 'unix' ? `unix:${address.path}` : formatListenAddress(address);
    const port = await bindServer(server, bindTarget, credentials, text);
    let bound: string;
    if (address.kind === 'unix') {
      socketPaths.add(address.path);
      chmodSync(address.path, listenOptions.mode ?? options.socketMode ?? DEFAULT_SOCKET_MODE);
      bound = `unix:${address.path}`;
    } else {
      bound = formatListenAddress({ ...address, port });
    }
    logger.info('listening', {
      address: bound,
      service: serviceName,
      security: tls ? 'mtls' : `plaintext (${insecure})`,
      allowedRoles: checkRoles ? [...allowedRoles] : undefined,
    });
    return bound;
  }

  async function shutdown(graceMs = 5000): Promise<void> {
    setHealth(false);
    await stopServer(server, logger, socketPaths, graceMs);
    rejections.close();
  }

  return { server, addService, setHealth, listen, shutdown };
}
