/**
 * Where an agent's journal says it is: one vocabulary for both agents. A phase "in progress"
 * found at start-up means the previous process was interrupted (crash, SIGTERM, a cancelled
 * call): the engine's reconcile() finishes or undoes that operation.
 */
export const JOURNAL_PHASES = ['up-in-progress', 'up', 'down-in-progress', 'down'] as const;

export type JournalPhase = (typeof JOURNAL_PHASES)[number];
