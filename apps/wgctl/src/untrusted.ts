/**
 * What the agents send is shown on the user's terminal: a compromised VM could put terminal
 * control sequences in a step message, an error or a status field (clear the screen, retitle
 * the window, hide text, rewrite earlier lines). Every string of every agent answer is made
 * printable before anything else sees it: C0 controls other than tab and newline, DEL and C1
 * controls become a visible \xNN.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A copy of an agent's message with every string made printable (plain objects and arrays). */
export function printableMessage<T>(value: T, depth = 0): T {
  if (depth > 32) return value;
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map((v) => printableMessage(v, depth + 1)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = printableMessage(v, depth + 1);
    return out as T;
  }
  return value;
}
