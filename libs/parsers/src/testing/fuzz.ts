/**
 * Helpers for the parsers' property tests: random text, real captures with random edits, and
 * a per-input check that a parser answers or throws ParseError — never another error — within
 * a time bound (a catastrophic regex or an endless loop shows up as a slow input, not a hung
 * test run).
 */
import fc from 'fast-check';
import { ParseError } from '../errors';

/** Generous for inputs of a few KB: a real hang or quadratic blow-up takes seconds. */
export const PER_INPUT_LIMIT_MS = 250;

export type Parse = (text: string) => unknown;

export interface ParseVerdict {
  ok: boolean;
  error?: ParseError;
  ms: number;
}

/**
 * Runs `parse` once; rethrows anything that is not a ParseError (that is the bug a property
 * test is looking for) and throws when the input took longer than `limitMs`.
 */
export function parseOrParseError(parse: Parse, text: string, limitMs = PER_INPUT_LIMIT_MS): ParseVerdict {
  const started = performance.now();
  let verdict: ParseVerdict;
  try {
    parse(text);
    verdict = { ok: true, ms: 0 };
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    if (e.message.trim() === '') throw new Error('ParseError with an empty message');
    verdict = { ok: false, error: e, ms: 0 };
  }
  verdict.ms = performance.now() - started;
  if (verdict.ms > limitMs) throw new Error(`took ${verdict.ms.toFixed(1)} ms (> ${limitMs} ms) on an input of ${text.length} characters`);
  return verdict;
}

type Edit =
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'duplicate-line'; at: number }
  | { kind: 'drop-line'; at: number }
  | { kind: 'swap-lines'; at: number; with: number };

const EDIT_CHARACTERS = [' ', '\t', '\n', '\r', ':', '/', '=', ',', '[', ']', '"', '\\', '#', '-', '.', '0', '9', 'a', 'Z', '+', '%', '*'];

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 8, unit: fc.constantFrom(...EDIT_CHARACTERS) }) }),
  fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('drop-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap-lines' as const), at: fc.nat(), with: fc.nat() }),
);

export function applyEdits(text: string, edits: readonly Edit[]): string {
  let out = text;
  for (const e of edits) {
    if (e.kind === 'delete') {
      const at = e.at % (out.length + 1);
      out = out.slice(0, at) + out.slice(at + e.length);
    } else if (e.kind === 'insert') {
      const at = e.at % (out.length + 1);
      out = out.slice(0, at) + e.text + out.slice(at);
    } else {
      const lines = out.split('\n');
      const at = e.at % lines.length;
      if (e.kind === 'duplicate-line') lines.splice(at, 0, lines[at]);
      else if (e.kind === 'drop-line') lines.splice(at, 1);
      else {
        const other = e.with % lines.length;
        [lines[at], lines[other]] = [lines[other], lines[at]];
      }
      out = lines.join('\n');
    }
  }
  return out;
}

/** One of `texts` with 1–6 random edits. */
export function mutated(texts: readonly string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...texts), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([text, edits]) => applyEdits(text, edits));
}

/** Random text, from arbitrary code points to lines of the tokens these outputs are made of. */
export function randomText(tokens: readonly string[] = []): fc.Arbitrary<string> {
  const units = [' ', '\t', 'a', 'Z', '0', '9', '.', ':', '/', '=', ',', '[', ']', '"', '#', '-', '*', ...tokens];
  return fc.oneof(
    fc.string({ maxLength: 400 }),
    fc.string({ maxLength: 400, unit: 'grapheme' }),
    fc.array(fc.string({ maxLength: 60, unit: fc.constantFrom(...units) }), { maxLength: 12 }).map((lines) => lines.join('\n')),
  );
}

/** Long pathological lines (for a one-off bounded-time check of each parser). */
export const ADVERSARIAL_INPUTS: readonly string[] = [
  ' '.repeat(60_000),
  `${'\t'.repeat(40_000)}x`,
  'a'.repeat(60_000),
  '"'.repeat(20_001),
  `"${'\\'.repeat(40_000)}`,
  '='.repeat(40_000),
  `[${'['.repeat(20_000)}`,
  `${'A'.repeat(43)}=\t`.repeat(5_000),
  '-A X '.repeat(10_000),
  `*filter\n${':X - [0:0]\n'.repeat(5_000)}`,
  `${'1.'.repeat(20_000)}:1`,
  `${'#'.repeat(30_000)}\n`.repeat(2),
];
