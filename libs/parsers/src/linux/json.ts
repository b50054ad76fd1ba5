/** The JSON step shared by the parsers of `ip -j` and `nft -j` output (internal: not in the barrel). */
import { ParseError } from '../errors';

/** JSON.parse, with a ParseError naming the tool on bad input. */
export function parseToolJson(kind: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ParseError(kind, `not JSON: ${(e as Error).message}`);
  }
}

/** `ip -j …` output: a JSON array of `what`; iproute2 prints nothing at all when there is nothing to list. */
export function parseIpJsonArray(kind: string, text: string, what: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const data = parseToolJson(kind, trimmed);
  if (!Array.isArray(data)) throw new ParseError(kind, `expected a JSON array of ${what}`);
  return data;
}
