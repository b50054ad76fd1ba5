import type { z } from 'zod';

export interface ConfigProblem {
  /** JSON path of the bad value, e.g. 'vm.port' or 'dns[1]'; '(root)' for the whole document. */
  path: string;
  message: string;
}

/** Formats a zod issue path as 'a.b[2].c'. */
function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/** One problem per zod issue, with its JSON path. */
export function zodProblems(error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => ({ path: formatIssuePath(issue.path), message: issue.message }));
}

/** 'field: problem' lines, one per issue. */
export function formatZodError(error: z.ZodError): string {
  return zodProblems(error)
    .map((p) => `${p.path}: ${p.message}`)
    .join('\n');
}

/** A configuration that cannot be used; the message lists every `field: problem`. */
export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  readonly source?: string;

  constructor(summary: string, problems: ConfigProblem[] = [], source?: string) {
    const lines = problems.map((p) => `  ${p.path}: ${p.message}`);
    super([source ? `${source}: ${summary}` : summary, ...lines].join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
    this.source = source;
  }
}
