/** down: Mac Down → VM Down (the Mac stops sending into the VM before the tunnel goes). */
import { parseWgDumpEndpoint } from '@wgctl/parsers';
import { type Endpoint, type Outcome, type VmStatus } from '@wgctl/proto';
import { type MacAgentApi, SIDE_LABEL, type Side, type VmAgentApi } from '../agents';
import { connectBoth, connectDetail } from './connect';
import { AgentStepLog, type EventListener, type Failure, type StepId, Sequencer, StepFailure, leftBehind, messageOf, streamStep } from './steps';

export type SideOutcome = 'done' | 'failed' | 'unreachable' | 'not-run';

export interface DownOptions {
  dryRun?: boolean;
  forceInterfaceDown?: boolean;
  /** The VM's addresses: the mac-agent recognises its split routes by them when its journal is unusable. */
  vmAddress?: string;
  vmAddress6?: string;
  /** The config's excluded CIDRs: the Mac recognises their routes by them when its journal is unusable. */
  exclude?: string[];
  now?: () => number;
}

export interface DownResult {
  /** Both sides removed everything of ours (notRestored may still list settings that could not be put back). */
  ok: boolean;
  totalMs: number;
  sides: Record<Side, { outcome: SideOutcome; error?: string; failure?: Failure; notRestored?: string[] }>;
  left: string[];
  /** Settings a side could not put back as they were (its journal was unusable), "Mac: …" / "VM: …". */
  notRestored: string[];
}

/**
 * The WireGuard servers as the VM's status shows them (its cached sample: no process there),
 * for the mac-agent to recognise its pins by when its journal is unusable. None when the VM
 * cannot say; the Mac's Down then names the pins as not removed.
 */
export async function serversOfVm(vm: VmAgentApi): Promise<Endpoint[]> {
  let status: VmStatus;
  try {
    status = await vm.status();
  } catch {
    return [];
  }
  return status.peers.flatMap((peer) => {
    const endpoint = parseWgDumpEndpoint(peer.endpoint || '(none)');
    return endpoint ? [{ host: '', ip: endpoint.host, port: endpoint.port }] : [];
  });
}

/** Mac first, then VM; an unreachable or failing side does not stop the other one. */
export async function down(
  vm: VmAgentApi,
  mac: MacAgentApi,
  opts: DownOptions,
  onEvent: EventListener = () => {},
): Promise<DownResult> {
  const seq = new Sequencer(onEvent, opts.now ?? Date.now);
  const result: DownResult = {
    ok: false,
    totalMs: 0,
    sides: { mac: { outcome: 'not-run' }, vm: { outcome: 'not-run' } },
    left: [],
    notRestored: [],
  };
  seq.emit({ kind: 'start', step: 'connect' });
  const connected = await connectBoth(vm, mac);
  const unreachable = Object.entries(connected.errors) as [Side, string][];
  if (unreachable.length === 0) seq.emit({ kind: 'done', step: 'connect', detail: connectDetail(connected) });
  else seq.emit({ kind: 'failed', step: 'connect', error: unreachable.map(([, e]) => e).join('; ') });

  const endpoints = connected.errors.vm || connected.errors.mac ? [] : await serversOfVm(vm);
  const sides: { side: Side; step: StepId; run: (log: AgentStepLog) => Promise<Outcome> }[] = [
    {
      side: 'mac',
      step: 'mac-down',
      run: (log) => streamStep(seq, 'mac-down', 'mac', log, (cb) => mac.down({ dryRun: !!opts.dryRun, vmAddress: opts.vmAddress ?? '', vmAddress6: opts.vmAddress6 ?? '', endpoints, exclude: opts.exclude ?? [] }, cb)),
    },
    {
      side: 'vm',
      step: 'vm-down',
      run: (log) =>
        streamStep(seq, 'vm-down', 'vm', log, (cb) =>
          vm.down({ dryRun: !!opts.dryRun, forceInterfaceDown: !!opts.forceInterfaceDown }, cb),
        ),
    },
  ];
  for (const { side, step, run } of sides) {
    const why = connected.errors[side];
    if (why) {
      seq.emit({ kind: 'skipped', step, detail: `${SIDE_LABEL[side]} unreachable` });
      result.sides[side] = { outcome: 'unreachable', error: why };
      result.left.push(leftBehind(side));
      continue;
    }
    const log = new AgentStepLog();
    try {
      const outcome = await seq.run(step, async () => {
        const done = await run(log);
        return { value: done, detail: log.changed ? 'removed' : 'nothing to remove' };
      });
      const notRestored = outcome.notRestored ?? [];
      result.sides[side] = { outcome: 'done', ...(notRestored.length ? { notRestored } : {}) };
      result.notRestored.push(...notRestored.map((what) => `${SIDE_LABEL[side]}: ${what}`));
    } catch (error) {
      const failure = error instanceof StepFailure ? error.failure : { step, message: messageOf(error) };
      result.sides[side] = { outcome: 'failed', error: failure.message, failure };
      result.left.push(leftBehind(side));
    }
  }
  result.ok = result.sides.mac.outcome === 'done' && result.sides.vm.outcome === 'done';
  result.totalMs = seq.elapsed();
  return result;
}

