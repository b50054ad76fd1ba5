/**
 * Progress renderers driven by real orchestrator event streams (from runs against in-memory
 * agents): listr2 must settle every task (no hang) and show failures, rollbacks and steps
 * that never ran; plain mode prints one line per event.
 */
import { type Outcome, type StepEvent, StepState } from '@wgctl/proto';
import type { MacAgentApi, VmAgentApi } from '../agents';
import { DOWN_STEPS, type OrchestratorEvent, UP_STEPS, down, up } from '../orchestrator';
import { createProgress } from '../render/progress';
import { defaultMacDescription, defaultVmDescription } from '../testing/fake-agents';

function memoryAgent<T extends VmAgentApi | MacAgentApi>(side: 'vm' | 'mac', script: { up: Outcome; down?: Outcome; unreachable?: boolean }): T {
  const emit = (onStep: (e: StepEvent) => void, step: string, ok: boolean) => {
    onStep({ step, state: StepState.STEP_STATE_STARTED, message: '', commands: [], elapsedMs: '0' });
    onStep({
      step,
      state: ok ? StepState.STEP_STATE_DONE : StepState.STEP_STATE_FAILED,
      message: ok ? 'ok' : 'broke',
      commands: [{ argv: ['cmd', step], exitCode: ok ? 0 : 1, stderr: ok ? '' : 'it broke', dryRun: false, durationMs: '1' }],
      elapsedMs: '1',
    });
  };
  const api = {
    side,
    target: side,
    describe: async () => {
      if (script.unreachable) throw new Error(`cannot reach ${side}`);
      return side === 'vm' ? defaultVmDescription() : defaultMacDescription();
    },
    up: async (_req: unknown, onStep: (e: StepEvent) => void) => {
      emit(onStep, `${side}-step`, script.up.ok);
      return script.up;
    },
    down: async (_req: unknown, onStep: (e: StepEvent) => void) => {
      emit(onStep, `${side}-undo`, true);
      return script.down ?? { ok: true, failedStep: '', error: '', totalMs: '1' };
    },
    status: async () => {
      throw new Error('unused');
    },
    capture: async () => {
      throw new Error('unused');
    },
    close: () => {},
  };
  return api as unknown as T;
}

const OK: Outcome = { ok: true, failedStep: '', error: '', totalMs: '1', vmApplied: undefined, notRestored: [] };
const FAIL: Outcome = { ok: false, failedStep: 'mac-step', error: 'broke', totalMs: '1', vmApplied: undefined, notRestored: [] };
/** A VM Up reports what it applied: the described endpoints and tunnel addresses. */
const VM_OK: Outcome = { ...OK, vmApplied: { endpoints: defaultVmDescription().endpoints, tunnelAddresses: defaultVmDescription().tunnelAddresses } };

async function render(mode: 'listr' | 'plain', steps: typeof UP_STEPS, stopOnFailure: boolean, run: (on: (e: OrchestratorEvent) => void) => Promise<unknown>) {
  let out = '';
  const sink = { write: (s: string) => (out += s) };
  const progress = createProgress({ mode, out: sink, steps, stopOnFailure });
  await run((e) => progress.onEvent(e));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    progress.finish(),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('progress did not settle')), 5000))),
  ]).finally(() => clearTimeout(timer));
  if (process.env.SHOW_PROGRESS) process.stderr.write(`${out}\n----\n`);
  return out;
}

describe('listr2 progress', () => {
  it('a successful up: every step completes', async () => {
    const out = await render('listr', UP_STEPS, true, (on) =>
      up(memoryAgent<VmAgentApi>('vm', { up: VM_OK }), memoryAgent<MacAgentApi>('mac', { up: OK }), { vmAddress: '192.0.2.3' }, on),
    );
    expect(out).toMatch(/Connect to both agents/);
    expect(out).toMatch(/Mac: routes via the VM/);
    expect(out).not.toMatch(/Roll back/);
    expect(out).not.toMatch(/not run/);
  });

  it('a failed up: the failure, the rollback tasks, and nothing left hanging', async () => {
    const out = await render('listr', UP_STEPS, true, (on) =>
      up(memoryAgent<VmAgentApi>('vm', { up: VM_OK }), memoryAgent<MacAgentApi>('mac', { up: FAIL }), { vmAddress: '192.0.2.3' }, on),
    );
    expect(out).toMatch(/mac-agent failed at step mac-step: broke/);
    expect(out).toMatch(/Roll back what this run changed/);
    expect(out).toMatch(/Rollback: Mac Down/);
    expect(out).toMatch(/Rollback: VM Down/);
  });

  it('a VM failure marks the later steps as not run', async () => {
    const out = await render('listr', UP_STEPS, true, (on) =>
      up(memoryAgent<VmAgentApi>('vm', { up: { ...FAIL, failedStep: 'vm-step' } }), memoryAgent<MacAgentApi>('mac', { up: OK }), { vmAddress: '192.0.2.3' }, on),
    );
    expect(out).toMatch(/vm-agent failed at step vm-step/);
    expect(out).toMatch(/Mac: routes via the VM.*\[SKIPPED: not run\]/);
  });

  it('down with an unreachable Mac carries on and settles', async () => {
    const out = await render('listr', DOWN_STEPS, false, (on) =>
      down(memoryAgent<VmAgentApi>('vm', { up: OK }), memoryAgent<MacAgentApi>('mac', { up: OK, unreachable: true }), {}, on),
    );
    expect(out).toMatch(/cannot reach mac/);
    expect(out).toMatch(/mac-agent unreachable/);
    expect(out).toMatch(/VM: remove forwarding \+ SNAT, tunnel down/);
  });
});

describe('plain progress', () => {
  it('prints one line per step event with commands and stderr of failures', async () => {
    const out = await render('plain', UP_STEPS, true, (on) =>
      up(memoryAgent<VmAgentApi>('vm', { up: VM_OK }), memoryAgent<MacAgentApi>('mac', { up: FAIL }), { vmAddress: '192.0.2.3' }, on),
    );
    const lines = out.trim().split('\n').map((l) => l.replace(/^\[\s*[\d.]+s\] /, ''));
    expect(lines).toEqual([
      'connect: Connect to both agents and check protocol versions',
      expect.stringMatching(/^connect: ok \(vm-agent 0\.1\.0 on vm-agent-host, mac-agent 0\.1\.0 \(linux\) on mac-agent-host; Mac source 192\.0\.2\.2; IPv6 blocked\)$/),
      'vm-up: VM: bring the tunnel up and await a handshake, then forwarding + SNAT; meanwhile the Mac: kill switch, endpoint pinning',
      '  vm  vm-step done: ok',
      '      $ cmd vm-step',
      'vm-up: ok (forwarding 192.0.2.2 into the tunnel; endpoints 203.0.113.5:51820; tunnel 10.64.0.2/32)',
      'mac-up: Mac: routes via the VM, DNS',
      '  mac mac-step FAILED: broke',
      '      $ cmd mac-step (exit 1)',
      '        stderr: it broke',
      'mac-up: FAILED: mac-agent failed at step mac-step: broke',
      'rolling back: rollback-mac, rollback-vm',
      'rollback-mac: Rollback: Mac Down',
      '  mac mac-undo done: ok',
      '      $ cmd mac-undo',
      'rollback-mac: ok (undone)',
      'rollback-vm: Rollback: VM Down',
      '  vm  vm-undo done: ok',
      '      $ cmd vm-undo',
      'rollback-vm: ok (undone)',
    ]);
  });
});
