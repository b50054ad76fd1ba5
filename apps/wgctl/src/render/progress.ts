/**
 * Live progress of an orchestrated operation: listr2 on a terminal, plain timestamped lines
 * otherwise (pipes, CI, logs), nothing with --json. Both consume the orchestrator's events.
 */
import { type StepEvent, StepState } from '@wgctl/proto';
import { SIDE_LABEL } from '../agents';
import type { Writable } from '../io';
import { type OrchestratorEvent, STEP_TITLES, type StepId } from '../orchestrator';
import { shellQuote } from './text';

export interface ProgressView {
  onEvent(event: OrchestratorEvent): void;
  /** Settles the display (steps that never ran are shown as not run). */
  finish(): Promise<void>;
}

export type ProgressMode = 'listr' | 'plain' | 'none';

export interface ProgressOptions {
  mode: ProgressMode;
  out: Writable;
  /** listr2 mode: where its renderer writes (default: `out`). */
  err?: Writable;
  /** Top-level steps in order (rollback steps appear only when a rollback happens). */
  steps: StepId[];
  /** up/plan stop at the first failed step; down carries on. */
  stopOnFailure: boolean;
}

const STATE_WORD: Record<number, string> = {
  [StepState.STEP_STATE_STARTED]: 'started',
  [StepState.STEP_STATE_DONE]: 'done',
  [StepState.STEP_STATE_SKIPPED]: 'skipped',
  [StepState.STEP_STATE_FAILED]: 'FAILED',
};

function agentStepLine(side: 'vm' | 'mac', event: StepEvent): string {
  const word = STATE_WORD[event.state] ?? 'unknown';
  return `${side === 'vm' ? 'vm ' : 'mac'} ${event.step} ${word}${event.message ? `: ${event.message}` : ''}`;
}

export function commandLine(c: { argv: string[]; exitCode: number; dryRun: boolean; stderr: string }): string {
  const status = c.dryRun ? ' (would run)' : c.exitCode === 0 ? '' : ` (exit ${c.exitCode})`;
  return `$ ${shellQuote(c.argv)}${status}`;
}

function stamp(ms: number): string {
  return `[${(ms / 1000).toFixed(1).padStart(5)}s]`;
}

export function createProgress(options: ProgressOptions): ProgressView {
  if (options.mode === 'none') return { onEvent: () => {}, finish: async () => {} };
  if (options.mode === 'plain') return plainProgress(options.out);
  return listrProgress(options);
}

/** One line per event; agent steps with each command they ran. Never rewrites a line. */
function plainProgress(out: Writable): ProgressView {
  return {
    onEvent(e) {
      const t = stamp(e.atMs);
      switch (e.kind) {
        case 'start':
          out.write(`${t} ${e.step}: ${STEP_TITLES[e.step]}\n`);
          break;
        case 'agent':
          if (e.event.state === StepState.STEP_STATE_STARTED) break;
          out.write(`${t}   ${agentStepLine(e.side, e.event)}\n`);
          for (const c of e.event.commands) {
            out.write(`${t}       ${commandLine(c)}\n`);
            // stderr only where it explains a failure (probes like `nft list table` exit 1 by design)
            if (e.event.state === StepState.STEP_STATE_FAILED && c.exitCode !== 0 && !c.dryRun && c.stderr) out.write(`${t}         stderr: ${c.stderr.split('\n').join('\n                 ')}\n`);
          }
          break;
        case 'done':
          out.write(`${t} ${e.step}: ok${e.detail ? ` (${e.detail})` : ''}\n`);
          break;
        case 'skipped':
          out.write(`${t} ${e.step}: skipped (${e.detail})\n`);
          break;
        case 'failed':
          out.write(`${t} ${e.step}: FAILED: ${e.error}\n`);
          break;
        case 'rollback':
          out.write(`${t} rolling back: ${e.steps.join(', ')}\n`);
          break;
      }
    },
    finish: async () => {},
  };
}

interface Deferred {
  resolve(detail?: string): void;
  reject(error: Error): void;
  skip(detail: string): void;
}

type ListrModule = typeof import('listr2');
type TaskWrapper = { title: string | undefined; output: string; skip(message?: string): void };

/** What the listr2 tasks and the event routing share. */
interface ListrState {
  /** Events of steps whose task has not started yet. */
  buffered: Map<StepId, OrchestratorEvent[]>;
  active: Map<StepId, { task: TaskWrapper; deferred: Deferred }>;
  settled: Set<StepId>;
  /** A main step failed with stopOnFailure: remaining main steps will not run. */
  stopped: boolean;
  finished: boolean;
  isMainStep(step: StepId): boolean;
}

/** listr2's logger, writing to options.out / options.err. */
function listrLogger(listr2: ListrModule, options: ProgressOptions): InstanceType<ListrModule['ListrLogger']> {
  const { ListrLogger, ProcessOutput } = listr2;
  type Stream = ConstructorParameters<typeof ProcessOutput>[0];
  return new ListrLogger({ processOutput: new ProcessOutput(options.out as Stream, (options.err ?? options.out) as Stream) });
}

/** Routes one event to its step's task, or buffers it until the task starts. */
function applyStepEvent(state: ListrState, step: StepId, e: OrchestratorEvent): void {
  const entry = state.active.get(step);
  if (!entry) {
    state.buffered.set(step, [...(state.buffered.get(step) ?? []), e]);
    return;
  }
  const { task, deferred } = entry;
  switch (e.kind) {
    case 'agent':
      if (e.event.state === StepState.STEP_STATE_STARTED) task.output = `${SIDE_LABEL[e.side]}: ${e.event.step}…`;
      else task.output = agentStepLine(e.side, e.event);
      break;
    case 'done':
      state.settled.add(step);
      if (e.detail) task.title = `${STEP_TITLES[step]} (${e.detail})`;
      deferred.resolve();
      break;
    case 'skipped':
      state.settled.add(step);
      deferred.skip(e.detail);
      break;
    case 'failed':
      state.settled.add(step);
      deferred.reject(new Error(e.error));
      break;
    default:
      break;
  }
}

/** The listr2 task of one step: settles when its events say so (or at once, if it will not run). */
function stepTask(state: ListrState, step: StepId) {
  return {
    title: STEP_TITLES[step],
    task: (_ctx: unknown, task: TaskWrapper) =>
      new Promise<void>((resolve, reject) => {
        const deferred: Deferred = {
          resolve: () => resolve(),
          reject,
          skip: (detail) => {
            task.skip(detail);
            resolve();
          },
        };
        state.active.set(step, { task, deferred });
        if (((state.stopped && state.isMainStep(step)) || state.finished) && !state.buffered.has(step)) {
          state.settled.add(step);
          deferred.skip('not run');
          return;
        }
        for (const e of state.buffered.get(step) ?? []) applyStepEvent(state, step, e);
        state.buffered.delete(step);
      }),
    rendererOptions: { persistentOutput: true, outputBar: Infinity },
  };
}

/** Main steps after a failure (or everything, when finishing) will not run: show that. */
function stopRemaining(state: ListrState): void {
  state.stopped = true;
  for (const [step, { deferred }] of state.active) {
    if (!state.settled.has(step) && (state.finished || state.isMainStep(step))) {
      state.settled.add(step);
      deferred.skip('not run');
    }
  }
}

/** listr2 with one task per step, resolved by the events; rollback tasks are added on demand. */
function listrProgress(options: ProgressOptions): ProgressView {
  // Lazy: listr2 is only loaded for an interactive terminal.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const listr2 = require('listr2') as ListrModule;
  const logger = listrLogger(listr2, options);
  const state: ListrState = {
    buffered: new Map(),
    active: new Map(),
    settled: new Set(),
    stopped: false,
    finished: false,
    isMainStep: (step) => options.steps.includes(step),
  };
  let rollbackSteps: StepId[] | undefined;
  let resolveRollback: (steps: StepId[]) => void = () => {};
  const rollbackKnown = new Promise<StepId[]>((r) => (resolveRollback = r));
  const taskFor = (step: StepId) => stepTask(state, step);

  const tasks = [
    ...options.steps.map(taskFor),
    {
      // Untitled (hidden) unless a rollback happens; then it holds the rollback steps.
      task: async (_ctx: unknown, task: TaskWrapper & { newListr: (t: unknown[], o?: unknown) => unknown }) => {
        const steps = await rollbackKnown;
        if (steps.length === 0) return;
        task.title = 'Roll back what this run changed';
        return task.newListr(steps.map(taskFor), { exitOnError: false });
      },
    },
  ];
  const listr = new listr2.Listr(tasks as never, {
    exitOnError: false,
    registerSignalListeners: false,
    rendererOptions: { collapseSubtasks: false, showErrorMessage: true, logger },
    // Not a TTY after all (listr2 checks process.stdout): its line-by-line renderer.
    fallbackRendererOptions: { logger },
  });
  const running = listr.run().catch(() => {});

  return {
    onEvent(e) {
      if (e.kind === 'rollback') {
        rollbackSteps = e.steps;
        resolveRollback(e.steps);
        return;
      }
      applyStepEvent(state, e.step, e);
      if (e.kind === 'failed' && options.stopOnFailure && state.isMainStep(e.step)) stopRemaining(state);
    },
    async finish() {
      if (!rollbackSteps) resolveRollback([]);
      state.finished = true;
      stopRemaining(state);
      await running;
    },
  };
}
