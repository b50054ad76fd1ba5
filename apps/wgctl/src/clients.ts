/**
 * gRPC clients for the two agents, always mTLS with the controller's certificate (or the
 * monitor's, for health probes), adapted to the promise interfaces of agents.ts.
 * Loaded lazily by the commands that talk to agents: it pulls in @grpc/grpc-js.
 */
import * as grpc from '@grpc/grpc-js';
import {
  type CaptureRequest,
  type CaptureResult,
  type EndPortalWindowResult,
  MacAgentClient,
  type MacDescription,
  type Outcome,
  type Progress,
  type StepEvent,
  VmAgentClient,
  type VmDescription,
} from '@wgctl/proto';
import { connectAgent, type ClientConstructor, type TlsMaterial } from '@wgctl/transport';
import { formatDuration } from './render/text';
import { printable, printableMessage } from './untrusted';
import { AgentCallError, type MacAgentApi, type UpListeners, SIDE_LABEL, type Side, type StepListener, type VmAgentApi } from './agents';

export interface AgentTarget {
  side: Side;
  /** 'HOST:PORT' or 'unix:/path'. */
  target: string;
  /** Name the agent's certificate must carry (SAN); default the agent's role. */
  serverName?: string;
}

export interface ClientOptions {
  tls: TlsMaterial;
  /** Deadline of Up/Down/Capture, ms. */
  timeoutMs: number;
  /** Deadline of Describe/Status, ms (default timeoutMs): a dead agent is reported quickly. */
  quickTimeoutMs?: number;
  /** Sent as gRPC metadata on Describe to the mac-agent so it can report its vnic. */
  vmAddress?: string;
  /**
   * Send the first Describe as the client is made (see describeStartedNow): `up`'s. That Describe
   * tells the vm-agent an Up follows (up_follows), so it starts that Up's first reads.
   */
  describeNow?: boolean;
}

/** Metadata key: the VM's address, so the mac-agent can name the interface/address facing it. */
const VM_ADDRESS_METADATA = 'wgctl-vm-address';

type GenericClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** A CLI run is short: no keepalive pings, quick reconnects, no transparent retries. */
const CLI_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_retries': 0,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 1000,
};

/** grpc-js wraps the socket error in boilerplate: keep the part that says what happened. */
function conciseDetails(details: string): string {
  const last = /Last error: (?:Error: )?(.*?)(?:\.\s*Resolution note:.*)?$/s.exec(details);
  return (last?.[1] ?? details).trim();
}

/** Turns a transport-level failure into a sentence that says what to do. */
function describeCallError(side: Side, rpc: string, target: string, error: grpc.ServiceError | Error, timeoutMs: number): AgentCallError {
  const who = SIDE_LABEL[side];
  const code = (error as grpc.ServiceError).code;
  const details = printable(conciseDetails((error as grpc.ServiceError).details ?? error.message));
  let sentence: string;
  switch (code) {
    case grpc.status.UNAVAILABLE:
      sentence = `cannot reach ${who} at ${target}: ${details} (is the agent running? is the address right?)`;
      break;
    case grpc.status.DEADLINE_EXCEEDED:
      sentence = `${who} at ${target} did not answer ${rpc} within ${formatDuration(timeoutMs)} (raise --timeout?)`;
      break;
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      sentence = `${who} at ${target} refused our certificate: ${details} (same PKI on both sides? see \`wgctl init --help\`)`;
      break;
    case grpc.status.UNIMPLEMENTED:
      sentence = `${who} at ${target} does not implement ${rpc}: ${details} (agent too old?)`;
      break;
    case grpc.status.ABORTED:
      // The agents refuse a second Up/Down while one runs: another wgctl (or a rollback) is at work.
      sentence = `${who} is busy: ${details} — another wgctl up/down is in progress; wait for it to finish, then run \`wgctl status\``;
      break;
    default:
      sentence = `${who} ${rpc} failed: ${code !== undefined ? `${grpc.status[code] ?? code}: ` : ''}${details}`;
  }
  return new AgentCallError(side, rpc, code, sentence);
}

class AgentConnection {
  readonly client: GenericClient;

  constructor(
    readonly side: Side,
    readonly target: string,
    ClientCtor: ClientConstructor<grpc.Client>,
    private readonly options: ClientOptions,
    serverName?: string,
  ) {
    // The agent's certificate must carry DNS:<role> (default) or the configured serverName.
    this.client = connectAgent(ClientCtor, target, {
      tls: options.tls,
      serverName: serverName ?? SIDE_LABEL[side],
      channelOptions: CLI_CHANNEL_OPTIONS,
    }) as GenericClient;
  }

  private timeoutFor(rpc: string): number {
    return rpc === 'Describe' || rpc === 'Status' ? (this.options.quickTimeoutMs ?? this.options.timeoutMs) : this.options.timeoutMs;
  }

  private deadline(rpc: string): Date {
    return new Date(Date.now() + this.timeoutFor(rpc));
  }

  private fail(rpc: string, error: grpc.ServiceError | Error): AgentCallError {
    return describeCallError(this.side, rpc, this.target, error, this.timeoutFor(rpc));
  }

  unary<Res>(rpc: string, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.client[method]!(request, metadata, { deadline: this.deadline(rpc) }, (error: grpc.ServiceError | null, response: Res) => {
        if (error) reject(this.fail(rpc, error));
        else resolve(printableMessage(response));
      });
    });
  }

  /** Reads an Up/Down Progress stream to its Outcome. */
  /**
   * The stream broke after the agent had started (it restarted, crashed, or the network went):
   * say where, and what to do — the agent's journal knows what it changed.
   */
  private connectionLost(rpc: string, lastStep: string | undefined, why: string): AgentCallError {
    const who = SIDE_LABEL[this.side];
    return new AgentCallError(
      this.side,
      rpc,
      grpc.status.UNAVAILABLE,
      `${who} connection lost during ${lastStep ? `step ${lastStep}` : rpc} (${why}); the agent journals its changes: ` +
        'run `wgctl status`, then `wgctl up` or `wgctl down`',
    );
  }

  progress(rpc: string, method: string, request: unknown, onStep: StepListener, listeners: UpListeners = {}): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const call = this.client[method]!(request, new grpc.Metadata(), { deadline: this.deadline(rpc) }) as grpc.ClientReadableStream<Progress>;
      let outcome: Outcome | undefined;
      let settled = false;
      let lastStep: string | undefined;
      call.on('data', (raw: Progress) => {
        const kind = printableMessage(raw).kind;
        if (kind?.$case === 'step') {
          lastStep = kind.value.step;
          try {
            onStep(kind.value as StepEvent);
          } catch {
            // a rendering problem must not abort an agent operation half-way
          }
        } else if (kind?.$case === 'vmPlan' || kind?.$case === 'tunnelReady') {
          try {
            if (kind.$case === 'vmPlan') listeners.onPlan?.(kind.value);
            else listeners.onTunnelReady?.(kind.value.handshake);
          } catch {
            // as above: the listener's problem, not the agent's
          }
        } else if (kind?.$case === 'outcome') outcome = kind.value;
      });
      call.on('error', (error: grpc.ServiceError) => {
        if (settled) return;
        settled = true;
        // Codes of a broken connection, once the agent has begun (the agent's own refusals —
        // INVALID_ARGUMENT, ABORTED, … — come before any step and keep their own message).
        const broken = [grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.UNKNOWN].includes(error.code);
        if (lastStep !== undefined && broken) reject(this.connectionLost(rpc, lastStep, printable(conciseDetails(error.details ?? error.message))));
        else reject(this.fail(rpc, error));
      });
      call.on('end', () => {
        if (settled) return;
        settled = true;
        if (outcome) resolve(outcome);
        else reject(this.connectionLost(rpc, lastStep, 'the stream ended without an outcome'));
      });
    });
  }

  /**
   * Resolves once the channel is READY (TCP, mTLS, HTTP/2 settings: a call leaves at once), or
   * once `settled` has: a Describe to an unreachable agent fails fast, where waitForReady waits
   * out its deadline. Never rejects (the Describe says what went wrong).
   */
  connected(settled?: Promise<unknown>): Promise<void> {
    const ready = new Promise<void>((resolve) => this.client.waitForReady(this.deadline('Describe'), () => resolve()));
    return settled ? Promise.race([ready, settled.then(noop, noop)]) : ready;
  }

  close(): void {
    this.client.close();
  }
}

const noop = (): void => undefined;

/**
 * Describe, sent at once when `now`: the first describe() gets that call, later ones new calls.
 * `up` sends both as it opens the clients, so that nothing else stands before the connections.
 */
function describeStartedNow<T>(now: boolean | undefined, call: (startedNow: boolean) => Promise<T>): { describe: () => Promise<T>; started?: Promise<T> } {
  let pending = now ? call(true) : undefined;
  pending?.catch(() => undefined); // its caller sees the error; nobody may ask (e.g. the lock was taken)
  const started = pending;
  return {
    started,
    describe: () => {
      const first = pending;
      pending = undefined;
      return first ?? call(false);
    },
  };
}

/** What the clients add to the agents' API for the commands: see AgentConnection.connected. */
export interface Connecting {
  connected(): Promise<void>;
}

export function vmAgentApi(target: AgentTarget, options: ClientOptions): VmAgentApi & Connecting {
  const c = new AgentConnection('vm', target.target, VmAgentClient, options, target.serverName);
  const { describe, started } = describeStartedNow(options.describeNow, (upFollows) => c.unary<VmDescription>('Describe', 'describe', { upFollows }));
  return {
    side: 'vm',
    target: target.target,
    describe,
    connected: () => c.connected(started),
    up: (request, onStep, listeners) => c.progress('Up', 'up', request, onStep, listeners),
    down: (request, onStep) => c.progress('Down', 'down', request, onStep),
    status: () => c.unary('Status', 'status', {}),
    capture: (request: CaptureRequest) => c.unary<CaptureResult>('Capture', 'capture', request),
    close: () => c.close(),
  };
}

export function macAgentApi(target: AgentTarget, options: ClientOptions): MacAgentApi & Connecting {
  const c = new AgentConnection('mac', target.target, MacAgentClient, options, target.serverName);
  const describeMetadata = (): grpc.Metadata => {
    const metadata = new grpc.Metadata();
    if (options.vmAddress) metadata.set(VM_ADDRESS_METADATA, options.vmAddress);
    return metadata;
  };
  const { describe, started } = describeStartedNow(options.describeNow, () => c.unary<MacDescription>('Describe', 'describe', {}, describeMetadata()));
  return {
    side: 'mac',
    target: target.target,
    describe,
    connected: () => c.connected(started),
    up: (request, onStep) => c.progress('Up', 'up', request, onStep),
    down: (request, onStep) => c.progress('Down', 'down', request, onStep),
    status: () => c.unary('Status', 'status', {}),
    capture: (request: CaptureRequest) => c.unary<CaptureResult>('Capture', 'capture', request),
    endPortalWindow: () => c.unary<EndPortalWindowResult>('EndPortalWindow', 'endPortalWindow', {}),
    close: () => c.close(),
  };
}
