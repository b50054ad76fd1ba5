/**
 * Bounded text: every value a request (or a tool) hands us may be megabytes long, and it must
 * not come back whole in an error message, a gRPC status or a log line. Cut text keeps its head
 * and says how long the original was, so the reader knows it was cut and by how much.
 *
 * The one place for this: validation messages (shownValue), gRPC statuses (@wgctl/transport
 * statusError) and log records (createLogger) all cut with cutText.
 */

/** Bytes of a request value echoed in an error message: enough to recognise it. */
export const SHOWN_VALUE_BYTES = 64;

const ELLIPSIS = '…';

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** The longest prefix of `text` that is at most `maxBytes` in UTF-8, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  // A character is at least one byte: the prefix has at most maxBytes UTF-16 units.
  let head = text.slice(0, maxBytes);
  if (isHighSurrogate(head.charCodeAt(head.length - 1))) head = head.slice(0, -1);
  while (Buffer.byteLength(head) > maxBytes) {
    head = head.slice(0, -1);
    if (isHighSurrogate(head.charCodeAt(head.length - 1))) head = head.slice(0, -1);
  }
  return head;
}

/** The note appended to cut text: ' (102400 bytes, cut)'. */
function cutNote(bytes: number): string {
  return ` (${bytes} bytes, cut)`;
}

/**
 * `text` unchanged if it fits in `maxBytes` (UTF-8), else its head, '…' and the original length:
 * `AAAA… (102400 bytes, cut)`; the result is never longer than maxBytes.
 */
export function cutText(text: string, maxBytes: number): string {
  // A string of n UTF-16 units is at most 3n bytes: most strings are decided without counting.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return text;
  const note = `${ELLIPSIS}${cutNote(bytes)}`;
  return utf8Prefix(text, maxBytes - Buffer.byteLength(note)) + note;
}

/**
 * A request value as an error message shows it: JSON-quoted (a newline or a control character
 * cannot forge a second line) and, past `maxBytes`, cut with its length:
 * `"AAAA…" (102400 bytes, cut)`.
 */
export function shownValue(value: string, maxBytes = SHOWN_VALUE_BYTES): string {
  if (value.length * 3 <= maxBytes) return JSON.stringify(value);
  const bytes = Buffer.byteLength(value);
  if (bytes <= maxBytes) return JSON.stringify(value);
  return JSON.stringify(utf8Prefix(value, maxBytes) + ELLIPSIS) + cutNote(bytes);
}

/**
 * A copy of log metadata (as redactValue leaves it: plain objects and arrays) with every string
 * cut to `maxBytes`; anything deeper than `maxDepth` is replaced.
 */
export function cutStrings(value: unknown, maxBytes: number, maxDepth = 8, depth = 0): unknown {
  if (typeof value === 'string') return cutText(value, maxBytes);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= maxDepth) return '[…]';
  if (Array.isArray(value)) return value.map((v) => cutStrings(v, maxBytes, maxDepth, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = cutStrings(v, maxBytes, maxDepth, depth + 1);
  return out;
}
