/**
 * The engine on a namespace lab (testing/netns.ts), for the netns test files: one engine per
 * test against the lab's runner, and the progress events of an Up/Down collected.
 */
import { StepState, type Outcome, type Progress, type StepEvent } from '@wgctl/proto';
import { VmEngine, type VmEngineOptions } from '../engine';
import { JournalStore } from '../journal';
import { RunnerSysctl } from '../sysctl';
import type { VmLab } from './netns';

/** argv without the `ip netns exec NS` prefix of the lab's runner (dry-run records argv before it is added). */
export const plain = (argv: readonly string[]): string => (argv[0] === 'ip' && argv[1] === 'netns' ? argv.slice(4) : argv).join(' ');

export function engineFor(lab: VmLab, overrides: Partial<VmEngineOptions> = {}): VmEngine {
  return new VmEngine({
    configPath: lab.vmConfigPath,
    runner: lab.vm,
    sysctl: new RunnerSysctl(lab.vm),
    journal: new JournalStore(lab.stateDir),
    interfaceMethod: 'wg-quick',
    handshakeTimeoutMs: 10_000,
    ...overrides,
  });
}

export interface Collected {
  outcome: Outcome;
  steps: StepEvent[];
  /** Final state of each step, in order. */
  finals: [string, StepState][];
}

export async function collect(run: (emit: (p: Progress) => void) => Promise<Outcome>): Promise<Collected> {
  const steps: StepEvent[] = [];
  const outcome = await run((p) => {
    if (p.kind?.$case === 'step') steps.push(p.kind.value);
  });
  const finals = steps.filter((s) => s.state !== StepState.STEP_STATE_STARTED).map((s): [string, StepState] => [s.step, s.state]);
  return { outcome, steps, finals };
}
