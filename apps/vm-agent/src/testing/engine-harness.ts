/**
 * The engine on a namespace lab (testing/netns.ts), for the netns test files: one engine per
 * test against the lab's runner, and the step events of an Up/Down collected.
 */
import type { OperationOutcome } from '@wgctl/agent-kit';
import type { StepListener, StepRecord } from '@wgctl/runner';
import { VmEngine, type VmEngineOptions } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { RunnerSysctl } from '../host/sysctl';
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
  outcome: OperationOutcome;
  steps: StepRecord[];
  /** Final state of each step, in order. */
  finals: [string, StepRecord['state']][];
}

export async function collect(run: (onStep: StepListener) => Promise<OperationOutcome>): Promise<Collected> {
  const steps: StepRecord[] = [];
  const outcome = await run((step) => steps.push(step));
  const finals = steps.filter((s) => s.state !== 'started').map((s): [string, StepRecord['state']] => [s.step, s.state]);
  return { outcome, steps, finals };
}
