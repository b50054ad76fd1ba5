/**
 * What an agent's engine and its gRPC layer pass each other for an Up or a Down, in the
 * engine's own terms (no proto): grpc/ maps them to Progress and Outcome.
 */
import type { StepListener } from '@wgctl/runner';

export type AgentName = 'vm-agent' | 'mac-agent';

export interface OperationContext {
  /** Receives every step event, as it happens. */
  onStep?: StepListener;
  /** Aborted when the caller went away: the operation ends before its next step (CancelledError). */
  signal?: AbortSignal;
  /** Unix ms by which the answer is due (the RPC deadline). */
  deadlineMs?: number;
  /**
   * vm-agent Up: what it is about to apply, once known (config read, endpoints resolved) and
   * before the tunnel comes up, so that the Mac can be made fail-closed meanwhile. Called once.
   */
  onPlan?: (planned: AppliedTunnel) => void;
  /**
   * vm-agent Up: the first handshake came and every change is in place (read-back and journal
   * follow), so that the Mac's routes and DNS need not wait for the Outcome. Called at most once.
   */
  onTunnelReady?: (handshake: string) => void;
}

export interface OperationOutcome {
  ok: boolean;
  /** The step that failed, or the one the operation stopped before; '' when ok. */
  failedStep: string;
  error: string;
  totalMs: number;
  /** Set by a successful vm-agent Up only (dry-run too: what it would apply); Outcome.vm_applied. */
  vmApplied?: AppliedTunnel;
  /** A Down without a usable journal: what it could not put back as it was (Outcome.not_restored). */
  notRestored?: string[];
}

/** A WireGuard peer's endpoint: the host as configured (may be a name), the address it resolved to, the port. */
export interface ResolvedEndpoint {
  host: string;
  ip: string;
  port: number;
}

/** What a vm-agent Up put in place, from its wg-quick config: what the Mac's Up needs (the endpoints to pin). */
export interface AppliedTunnel {
  /** Every peer endpoint. */
  endpoints: ResolvedEndpoint[];
  /** The [Interface] Address CIDRs, IPv4 and IPv6. */
  tunnelAddresses: string[];
}

/** One line of an agent's Status: what was checked, whether it holds, and the evidence. */
export interface StatusCheck {
  name: string;
  ok: boolean;
  detail: string;
  evidence: string[];
}
