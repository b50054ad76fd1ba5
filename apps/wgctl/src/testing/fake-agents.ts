/**
 * Fake agents for tests: real gRPC servers (mTLS via @wgctl/transport, the VM on
 * 127.0.0.1:<ephemeral>, the Mac on a unix socket) implementing VmAgent/MacAgent with
 * scripted answers, recording every call in one shared, ordered log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@wgctl/logging';
import {
  type CaptureResult,
  type Command,
  MacAgentService,
  type MacDescription,
  type MacStatus,
  type Progress,
  StepState,
  VmAgentService,
  type VmApplied,
  type VmDescription,
  type VmStatus,
} from '@wgctl/proto';
import { createAgentServer, createPki, loadTlsMaterial, type AgentServer, type Role } from '@wgctl/transport';

export interface ScriptedStep {
  step: string;
  state: 'done' | 'skipped' | 'failed';
  message?: string;
  commands?: Partial<Command>[];
}

export interface ScriptedOutcome {
  ok: boolean;
  failedStep?: string;
  error?: string;
  /** Down without a usable journal: what could not be put back. */
  notRestored?: string[];
  /**
   * VM Up only. Unset: a successful Up reports the endpoints and tunnel addresses of the
   * scripted Describe, as the vm-agent reports its config's; null: nothing (an older vm-agent).
   */
  vmApplied?: VmApplied | null;
}

/** How an Up/Down stream behaves. */
export type StreamScript =
  | {
      steps: ScriptedStep[];
      outcome: ScriptedOutcome;
      delayMs?: number;
      /**
       * VM Up only: the plan (Progress.vm_plan) sent before the first step. Unset: the scripted
       * Describe's endpoints and tunnel addresses, as the vm-agent sends its config's; null: none
       * (an older vm-agent).
       */
      plan?: VmApplied | null;
      /**
       * VM Up only: send Progress.tunnel_ready after this step's final event, as the vm-agent
       * does after await-handshake. Unset: none (an older vm-agent).
       */
      tunnelReadyAfter?: string;
      /** How long the outcome waits after the last step (the vm-agent's verify and journal). */
      outcomeDelayMs?: number;
    }
  | { grpcError: { code: grpc.status; details: string }; afterSteps?: ScriptedStep[] }
  /** The stream stays open (until the deadline or a cancel). */
  | { hang: true };

export type UnaryScript<T> = T | { grpcError: { code: grpc.status; details: string } } | { hang: true };

export interface AgentScript<Description, Status> {
  describe: UnaryScript<Description>;
  /** How long Describe takes to answer (a mac-agent reads its routing table first). */
  describeDelayMs?: number;
  up: StreamScript;
  /** mac-agent only: an Up with kill_switch_only (made fail-closed while the VM's tunnel comes up). */
  upKillSwitchOnly?: StreamScript;
  down: StreamScript;
  status: UnaryScript<Status>;
  capture: UnaryScript<CaptureResult>;
}

export interface RecordedCall {
  side: 'vm' | 'mac';
  rpc: 'Describe' | 'Up' | 'Down' | 'Status' | 'Capture';
  request: unknown;
  metadata: Record<string, unknown>;
  peerRole?: string;
}

export const okSteps = (...names: string[]): ScriptedStep[] =>
  names.map((step) => ({ step, state: 'done', message: `${step} done`, commands: [{ argv: ['true', step], exitCode: 0 }] }));

/** The mac-agent's answer to an Up with kill_switch_only, unless the script says otherwise. */
const KILL_SWITCH_ONLY_UP: StreamScript = { steps: okSteps('discover', 'kill-switch', 'pin-endpoint'), outcome: { ok: true } };

export function agentInfo(agent: 'vm-agent' | 'mac-agent', protocolVersion = 'wgctl.v1') {
  return { agent, version: '0.1.0', protocolVersion, hostname: `${agent}-host`, driver: agent === 'vm-agent' ? 'nft' : 'linux', pid: '4242' };
}

export function defaultVmDescription(): VmDescription {
  return {
    agent: agentInfo('vm-agent'),
    interface: 'wg0',
    tunnelAddresses: ['10.64.0.2/32'],
    endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }],
    peers: [],
    dns: ['10.64.0.1'],
    mtu: 1420,
    configPath: '/etc/wireguard/wg0.conf',
    publicKey: 'PUBLICKEYPUBLICKEYPUBLICKEYPUBLICKEYPUBLIC=',
  };
}

export function defaultMacDescription(): MacDescription {
  return {
    agent: agentInfo('mac-agent'),
    uplinkInterface: 'en0',
    gateway: '192.0.2.1',
    gateway6: '',
    vnicInterface: 'bridge100',
    vnicAddress: '192.0.2.2',
    vnicAddress6: '',
  };
}

const NO_HEALS = { heals: 0, lastHealUnixMs: '0', lastChanges: [], lastBy: '', lastTrigger: '' };

export function healthyVmStatus(nowS = Math.floor(Date.now() / 1000)): VmStatus {
  return {
    agent: agentInfo('vm-agent'),
    health: { state: 1, reasons: [], sampledAtMs: String(nowS * 1000) },
    interface: 'wg0',
    interfaceUp: true,
    publicKey: 'PUBLICKEYPUBLICKEYPUBLICKEYPUBLICKEYPUBLIC=',
    listenPort: 51820,
    peers: [
      {
        publicKey: 'PEERKEYPEERKEYPEERKEYPEERKEYPEERKEYPEERKEY=',
        endpoint: '203.0.113.5:51820',
        allowedIps: ['0.0.0.0/0'],
        latestHandshakeUnix: String(nowS - 12),
        handshakeAgeS: '12',
        rxBytes: '1048576',
        txBytes: '204800',
        persistentKeepalive: 25,
      },
    ],
    ipForward: true,
    iptablesBackend: 'nft',
    checks: [{ name: 'snat', ok: true, detail: 'SNAT 192.0.2.2 -> 10.64.0.2', evidence: [] }],
    macSource: '192.0.2.2',
    macSource6: '',
    tunnelAddresses: ['10.64.0.2/32'],
    liveness: {
      state: 'alive',
      interface: 'wg0',
      lastReplyUnixMs: String((nowS - 4) * 1000),
      lastProbeUnixMs: '0',
      deadSinceUnixMs: '0',
      probeTarget: '192.0.2.1',
      detail: 'alive: last reply 4 s ago',
    },
    selfHeal: NO_HEALS,
  };
}

export function healthyMacStatus(): MacStatus {
  return {
    agent: agentInfo('mac-agent'),
    health: { state: 1, reasons: [], sampledAtMs: String(Date.now()) },
    uplinkInterface: 'en0',
    gateway: '192.0.2.1',
    routes: [
      { destination: '0.0.0.0/1', gateway: '192.0.2.3', interface: 'bridge100', present: true, evidence: '0/1 192.0.2.3 UGSc bridge100' },
      { destination: '128.0.0.0/1', gateway: '192.0.2.3', interface: 'bridge100', present: true, evidence: '128.0/1 192.0.2.3 UGSc bridge100' },
      { destination: '203.0.113.5/32', gateway: '192.0.2.1', interface: 'en0', present: true, evidence: '203.0.113.5 192.0.2.1 UGHS en0' },
    ],
    killSwitch: { loaded: true, enabled: true, referenced: true, tokenHeld: true, interface: 'en0', rules: ['block drop out quick on en0 all'] },
    dns: { servers: ['10.64.0.1'], previous: [], managed: true },
    checks: [{ name: 'kill-switch', ok: true, detail: 'loaded', evidence: [] }],
    up: true,
    vmAddress: '192.0.2.3',
    endpoints: [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }],
    lastRoamUnixMs: '0',
    ipv6: 'block',
    vmAddress6: '',
    selfHeal: NO_HEALS,
    roams: 0,
    lastRoamTookMs: '0',
    exclude: [],
    allowLan: false,
    lanSubnets: [],
    portalWindow: undefined,
  };
}

const STATE: Record<ScriptedStep['state'], StepState> = {
  done: StepState.STEP_STATE_DONE,
  skipped: StepState.STEP_STATE_SKIPPED,
  failed: StepState.STEP_STATE_FAILED,
};

/** What the fake VM's Up says it is about to apply, unless the script says otherwise. */
function vmPlanFor(side: 'vm' | 'mac', rpc: 'Up' | 'Down', plan: VmApplied | null | undefined, describe: unknown): VmApplied | undefined {
  if (side !== 'vm' || rpc !== 'Up') return undefined;
  if (plan !== undefined) return plan ?? undefined;
  const config = isGrpcError(describe) || isHang(describe) ? defaultVmDescription() : (describe as VmDescription);
  return { endpoints: config.endpoints, tunnelAddresses: config.tunnelAddresses };
}

/** What the fake VM's Up reports it applied, unless the script says otherwise. */
function vmAppliedFor(side: 'vm' | 'mac', rpc: 'Up' | 'Down', outcome: ScriptedOutcome, describe: unknown): VmApplied | undefined {
  if (side !== 'vm' || rpc !== 'Up' || !outcome.ok) return undefined;
  if (outcome.vmApplied !== undefined) return outcome.vmApplied ?? undefined;
  const config = isGrpcError(describe) || isHang(describe) ? defaultVmDescription() : (describe as VmDescription);
  return { endpoints: config.endpoints, tunnelAddresses: config.tunnelAddresses };
}

function toCommand(c: Partial<Command>): Command {
  return { argv: [], exitCode: 0, stderr: '', dryRun: false, durationMs: '1', ...c };
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isGrpcError(x: unknown): x is { grpcError: { code: grpc.status; details: string } } {
  return typeof x === 'object' && x !== null && 'grpcError' in x;
}
function isHang(x: unknown): x is { hang: true } {
  return typeof x === 'object' && x !== null && 'hang' in x;
}

export class FakeAgents {
  readonly calls: RecordedCall[] = [];
  /** Requests ("vm.Up") and unary answers ("mac.Describe answered"), in the order they happened. */
  readonly timeline: string[] = [];
  vm: AgentScript<VmDescription, VmStatus>;
  mac: AgentScript<MacDescription, MacStatus>;
  vmTarget = '';
  macTarget = '';
  private servers: AgentServer[] = [];

  constructor(
    readonly dir: string,
    readonly tlsDir: string,
  ) {
    this.vm = {
      describe: defaultVmDescription(),
      up: { steps: okSteps('wg-quick-up', 'await-handshake', 'forward', 'snat'), outcome: { ok: true } },
      down: { steps: okSteps('snat', 'forward', 'wg-quick-down'), outcome: { ok: true } },
      status: healthyVmStatus(),
      capture: { interface: 'wg0', packets: [], probeOk: false, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] },
    };
    this.mac = {
      describe: defaultMacDescription(),
      up: { steps: okSteps('pin-endpoint', 'split-routes', 'kill-switch', 'dns'), outcome: { ok: true } },
      down: { steps: okSteps('dns', 'kill-switch', 'split-routes', 'pin-endpoint'), outcome: { ok: true } },
      status: healthyMacStatus(),
      capture: { interface: 'en0', packets: [], probeOk: true, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] },
    };
  }

  /** "vm.Up", "mac.Down", … in call order (Describe/Status excluded unless asked). */
  sequence(include: RecordedCall['rpc'][] = ['Up', 'Down']): string[] {
    return this.calls.filter((c) => include.includes(c.rpc)).map((c) => `${c.side}.${c.rpc}`);
  }

  async start(allowedRoles: Role[] = ['controller']): Promise<void> {
    const vmServer = createAgentServer({
      serviceName: 'wgctl.v1.VmAgent',
      tls: loadTlsMaterial(this.tlsDir, 'vm-agent'),
      allowedRoles,
      logger: silentLogger(),
      reflection: false,
    });
    vmServer.addService(VmAgentService, this.implementation('vm', () => this.vm));
    this.vmTarget = await vmServer.listen('127.0.0.1:0');
    const macServer = createAgentServer({
      serviceName: 'wgctl.v1.MacAgent',
      tls: loadTlsMaterial(this.tlsDir, 'mac-agent'),
      allowedRoles,
      logger: silentLogger(),
      reflection: false,
    });
    macServer.addService(MacAgentService, this.implementation('mac', () => this.mac));
    this.macTarget = await macServer.listen(`unix:${join(this.dir, 'mac-agent.sock')}`);
    this.servers = [vmServer, macServer];
  }

  /** grpc.health.v1 status of one side ('' and the app service). */
  setHealth(side: 'vm' | 'mac', serving: boolean): void {
    this.servers[side === 'vm' ? 0 : 1]?.setHealth(serving);
  }

  /** Stops one side (to simulate an unreachable agent). */
  async stop(side?: 'vm' | 'mac'): Promise<void> {
    const which = side === 'vm' ? [this.servers[0]] : side === 'mac' ? [this.servers[1]] : this.servers;
    await Promise.all(which.map((s) => s?.shutdown(100)));
  }

  private implementation(
    side: 'vm' | 'mac',
    script: () => AgentScript<unknown, unknown>,
  ): grpc.UntypedServiceImplementation {
    const record = (rpc: RecordedCall['rpc'], call: { request: unknown; metadata: grpc.Metadata }) => {
      this.calls.push({ side, rpc, request: call.request, metadata: call.metadata.getMap() });
      this.timeline.push(`${side}.${rpc}`);
    };
    const unary =
      (rpc: RecordedCall['rpc'], pick: (s: AgentScript<unknown, unknown>) => UnaryScript<unknown>) =>
      (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        record(rpc, call);
        const answer = pick(script());
        if (isHang(answer)) return;
        const reply = (): void => {
          this.timeline.push(`${side}.${rpc} answered`);
          if (isGrpcError(answer)) callback({ code: answer.grpcError.code, details: answer.grpcError.details } as grpc.ServiceError);
          else callback(null, answer);
        };
        const delayMs = rpc === 'Describe' ? script().describeDelayMs : undefined;
        if (delayMs) setTimeout(reply, delayMs);
        else reply();
      };
    const stream =
      (rpc: 'Up' | 'Down', pick: (s: AgentScript<unknown, unknown>, request: { killSwitchOnly?: boolean }) => StreamScript) =>
      async (call: grpc.ServerWritableStream<{ dryRun?: boolean; killSwitchOnly?: boolean }, Progress>) => {
        record(rpc, call);
        const s = pick(script(), call.request);
        if ('hang' in s) return;
        const started = Date.now();
        const steps = 'grpcError' in s ? (s.afterSteps ?? []) : s.steps;
        const dryRun = !!call.request.dryRun;
        const plan = 'steps' in s ? vmPlanFor(side, rpc, s.plan, script().describe) : undefined;
        if (plan) call.write({ kind: { $case: 'vmPlan', value: plan } });
        for (const st of steps) {
          call.write({ kind: { $case: 'step', value: { step: st.step, state: StepState.STEP_STATE_STARTED, message: '', commands: [], elapsedMs: String(Date.now() - started) } } });
          if ('delayMs' in s && s.delayMs) await delay(s.delayMs);
          call.write({
            kind: {
              $case: 'step',
              value: {
                step: st.step,
                state: STATE[st.state],
                message: st.message ?? '',
                commands: (st.commands ?? []).map((c) => toCommand(dryRun ? { exitCode: -1, dryRun: true, ...c } : c)),
                elapsedMs: String(Date.now() - started),
              },
            },
          });
          if ('tunnelReadyAfter' in s && s.tunnelReadyAfter === st.step && side === 'vm' && rpc === 'Up') {
            call.write({ kind: { $case: 'tunnelReady', value: { handshake: st.message ?? '' } } });
          }
        }
        if ('grpcError' in s) {
          call.emit('error', { code: s.grpcError.code, details: s.grpcError.details });
          return;
        }
        if (s.outcomeDelayMs) await delay(s.outcomeDelayMs);
        const { ok, failedStep = '', error = '', notRestored = [] } = s.outcome;
        const vmApplied = vmAppliedFor(side, rpc, s.outcome, script().describe);
        call.write({ kind: { $case: 'outcome', value: { ok, failedStep, error, totalMs: String(Date.now() - started), vmApplied, notRestored } } });
        call.end();
      };
    return {
      describe: unary('Describe', (s) => s.describe),
      status: unary('Status', (s) => s.status),
      capture: unary('Capture', (s) => s.capture),
      up: stream('Up', (s, request) => (request.killSwitchOnly ? (s.upKillSwitchOnly ?? KILL_SWITCH_ONLY_UP) : s.up)),
      down: stream('Down', (s) => s.down),
    };
  }
}

export interface Lab {
  dir: string;
  tlsDir: string;
  agents: FakeAgents;
  cleanup(): Promise<void>;
}

/** A temp dir with a fresh PKI (or the given one) and both fake agents listening. */
export async function startLab(options: { allowedRoles?: Role[]; dir?: string; tlsDir?: string } = {}): Promise<Lab> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'wgctl-test-'));
  const tlsDir = options.tlsDir ?? join(dir, 'tls');
  if (!options.tlsDir) await createPki(tlsDir, { vmAddresses: ['127.0.0.1'] });
  const allowedRoles = options.allowedRoles ?? ['controller'];
  const agents = new FakeAgents(dir, tlsDir);
  await agents.start(allowedRoles);
  return {
    dir,
    tlsDir,
    agents,
    async cleanup() {
      await agents.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
