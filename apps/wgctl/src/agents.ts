/**
 * The controller's view of the two agents: promise-based, one method per RPC. clients.ts
 * adapts the generated gRPC clients to these interfaces; tests may hand the orchestrator
 * any implementation. Types only — importing this module loads no gRPC code.
 */
import type {
  CaptureRequest,
  CaptureResult,
  EndPortalWindowResult,
  MacDescription,
  MacDownRequest,
  MacStatus,
  MacUpRequest,
  Outcome,
  StepEvent,
  VmApplied,
  VmDescription,
  VmDownRequest,
  VmStatus,
  VmUpRequest,
} from '@wgctl/proto';

export type Side = 'vm' | 'mac';
export const SIDE_LABEL: Record<Side, string> = { vm: 'vm-agent', mac: 'mac-agent' };

export type StepListener = (event: StepEvent) => void;
/** A vm-agent Up's word of what it is about to apply, before its tunnel is up (Progress.vm_plan). */
export type PlanListener = (planned: VmApplied) => void;
/** What a vm-agent Up says besides its steps: its plan, then that its tunnel is ready (Progress.tunnel_ready). */
export interface UpListeners {
  onPlan?: PlanListener;
  /** The first handshake came and every change is in place; read-back and journal follow. */
  onTunnelReady?: (handshake: string) => void;
}

interface AgentApi<Description, Status, UpRequest, DownRequest> {
  readonly side: Side;
  /** Where we connect, for messages ("192.0.2.10:7443", "unix:/var/run/…"). */
  readonly target: string;
  describe(): Promise<Description>;
  /** Streams step events to `onStep` (and a vm-agent's plan and tunnel-ready to `listeners`); resolves with the final Outcome (ok or not). */
  up(request: UpRequest, onStep: StepListener, listeners?: UpListeners): Promise<Outcome>;
  down(request: DownRequest, onStep: StepListener): Promise<Outcome>;
  status(): Promise<Status>;
  capture(request: CaptureRequest): Promise<CaptureResult>;
  close(): void;
}

export type VmAgentApi = AgentApi<VmDescription, VmStatus, VmUpRequest, VmDownRequest>;
export type MacAgentApi = AgentApi<MacDescription, MacStatus, MacUpRequest, MacDownRequest> & {
  /** `wgctl portal --end`: close an open captive-portal sign-in window now. */
  endPortalWindow(): Promise<EndPortalWindowResult>;
};

/** An RPC that failed at the transport level (unreachable, deadline, refused by the agent). */
export class AgentCallError extends Error {
  constructor(
    readonly side: Side,
    readonly rpc: string,
    readonly grpcCode: number | undefined,
    /** The whole sentence for the user (who, what, what to check). */
    message: string,
  ) {
    super(message);
    this.name = 'AgentCallError';
  }
}
