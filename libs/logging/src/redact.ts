/**
 * Redaction: WireGuard private/preshared keys, PEM private keys and tokens never reach a log
 * line, an error message or an RPC. Applied to strings and (recursively) to log metadata.
 *
 * A WireGuard key is 32 bytes in base64: 43 base64 characters and one '='. Public keys have
 * the same shape, so a bare key is only redacted where it is labelled private/preshared or
 * sits in a field named so; `redactAllKeys` removes every key-shaped string (for raw tool
 * output such as `wg show dump`, where position, not a label, says which key is private).
 */

export const REDACTED = '[REDACTED]';

const WG_KEY = String.raw`[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=`;
const PEM_PRIVATE = /-----BEGIN ((?:RSA |EC |ENCRYPTED |OPENSSH |DSA )?PRIVATE KEY)-----[\s\S]*?(?:-----END \1-----|$)/g;
const LABELLED_KEY = new RegExp(
  String.raw`\b((?:private|preshared|psk)[_ -]?key\b["']?\s*[:=]\s*["']?)(${WG_KEY})`,
  'gi',
);
const TOKEN_ASSIGN = /\b((?:token|password|secret|authorization)["']?\s*[:=]\s*["']?(?:Bearer\s+)?|Bearer\s+)([^\s"',;]{6,})/gi;
const ANY_WG_KEY = new RegExp(String.raw`(?<![A-Za-z0-9+/])${WG_KEY}(?![A-Za-z0-9+/=])`, 'g');

const SECRET_FIELD = /(private|preshared|psk|secret|password|token|passphrase|^key$|private_key|privateKey)/i;

/**
 * Secret values this process knows (the vm-agent's WireGuard private and preshared keys, as
 * it reads its config). Wherever they appear — labelled or not, in a log line, an error, a
 * command's stderr or an RPC answer — they are replaced: redaction does not depend on a
 * label being next to them.
 */
const knownSecrets = new Set<string>();
/** The redactor of `knownSecrets`, built on first use after each change. */
let knownRedactor: ((text: string) => string) | null = null;

/** Registers a secret value; values shorter than 16 characters are refused (they would redact ordinary text). */
export function addKnownSecret(value: string): void {
  if (value.length < 16) throw new Error('addKnownSecret: a secret shorter than 16 characters cannot be redacted safely');
  if (!knownSecrets.has(value)) knownRedactor = null;
  knownSecrets.add(value);
}

/** Forgets every registered secret (tests). */
export function clearKnownSecrets(): void {
  knownSecrets.clear();
  knownRedactor = null;
}

/** Replaces every registered secret value; nothing else. */
function redactKnownSecrets(text: string): string {
  if (knownSecrets.size === 0) return text;
  knownRedactor ??= secretValueRedactor(knownSecrets);
  return knownRedactor(text);
}

/**
 * A copy of a message (plain objects, arrays, strings) with every registered secret replaced
 * in every string; other values (numbers, Uint8Array, …) are kept as they are. The value itself
 * comes back when no secret is registered. For RPC answers: the transport scrubs them all.
 */
export function scrubKnownSecrets<T>(value: T, depth = 0): T {
  if (knownSecrets.size === 0 || depth > 32) return value;
  if (typeof value === 'string') return redactKnownSecrets(value) as T;
  if (Array.isArray(value)) return value.map((v) => scrubKnownSecrets(v, depth + 1)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = scrubKnownSecrets(v, depth + 1);
    return out as T;
  }
  return value;
}

/** Multiplier of the polynomial hash of a q-gram (odd), and the longest q-gram hashed. */
const HASH_BASE = 0x01000193;
const MAX_GRAM = 8;
// A module binding, not a global lookup in the loops (globals are slow inside vm contexts, e.g. jest's).
const { imul } = Math;

/**
 * `text` with each occurrence ([start, end) pairs in `found`, any order) replaced by one
 * REDACTED, left to right; overlapping occurrences become one REDACTED stretch.
 */
function replaceOccurrences(text: string, found: number[]): string {
  const order = Array.from({ length: found.length / 2 }, (_, i) => i * 2).sort((a, b) => found[a]! - found[b]! || found[b + 1]! - found[a + 1]!);
  const parts: string[] = [];
  let copied = 0; // text[0, copied) is in parts
  let openEnd = -1; // end of the stretch being redacted, or -1
  for (const i of order) {
    const start = found[i]!;
    const end = found[i + 1]!;
    if (openEnd > start) {
      if (end > openEnd) openEnd = end;
      continue;
    }
    if (openEnd >= 0) {
      parts.push(REDACTED);
      copied = openEnd;
    }
    parts.push(text.slice(copied, start));
    copied = start;
    openEnd = end;
  }
  parts.push(REDACTED, text.slice(openEnd));
  return parts.join('');
}

/**
 * A function replacing every occurrence of any of `values` in a text by REDACTED, in ONE pass
 * over the text however many values there are (replacing them one after the other costs a pass
 * per value: quadratic for a `wg show dump` of 10,000 peers and its 10,000 keys).
 *
 * How: W is the length of the shortest value, q = min(W, 8). Every occurrence of a value spans
 * W characters at least, so among text positions sampled every W − q + 1 characters exactly one
 * falls in its first W − q + 1 characters, and the q characters there are one of the value's
 * q-grams at offsets 0 … W − q. Those q-grams of every value are in a hash table (value and
 * offset); the text is hashed at the sampled positions only and each candidate start is
 * confirmed with `startsWith`. Time: the text's length (a q-character hash every W − q + 1
 * characters) plus the values' total length, plus the candidates confirmed (as many as the
 * occurrences when the values share no q-grams, as random keys do).
 *
 * Occurrences are replaced from left to right, each by one REDACTED: the same text as replacing
 * the values one by one whenever occurrences do not overlap. Where two overlap (or one value
 * contains another), the whole stretch becomes one REDACTED — never part of a secret left
 * visible. Empty values are ignored. A text with no occurrence comes back as it is.
 */
export function secretValueRedactor(values: Iterable<string>): (text: string) => string {
  const distinct = [...new Set(values)].filter((v) => v.length > 0);
  if (distinct.length === 0) return (text) => text;
  const width = distinct.reduce((min, v) => Math.min(min, v.length), Infinity);
  const q = Math.min(width, MAX_GRAM);
  const stride = width - q + 1;
  // HASH_BASE^(q-1) mod 2^32: the weight of the character leaving a rolling q-gram.
  let outWeight = 1;
  for (let i = 1; i < q; i++) outWeight = imul(outWeight, HASH_BASE);
  const gramAt = (text: string, from: number): number => {
    let h = 0;
    for (let i = from; i < from + q; i++) h = (imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
    return h;
  };

  // Open addressing, linear probing: slot → hash and entry + 1 (0: empty); entry → value, offset.
  const entries = distinct.length * stride;
  let bits = 4;
  while (1 << bits < entries * 2) bits++;
  const mask = (1 << bits) - 1;
  // The high bits of a scrambled product are the well-mixed ones.
  const slotOf = (h: number): number => imul(h, 0x9e3779b1) >>> (32 - bits);
  const slotHash = new Int32Array(mask + 1);
  const slotEntry = new Int32Array(mask + 1);
  const entryValue = new Int32Array(entries);
  const entryOffset = new Int32Array(entries);
  let entry = 0;
  for (let v = 0; v < distinct.length; v++) {
    const value = distinct[v]!;
    let h = gramAt(value, 0);
    for (let offset = 0; ; offset++) {
      let slot = slotOf(h);
      while (slotEntry[slot] !== 0) slot = (slot + 1) & mask;
      slotHash[slot] = h;
      slotEntry[slot] = entry + 1;
      entryValue[entry] = v;
      entryOffset[entry] = offset;
      entry++;
      if (offset === stride - 1) break;
      h = (imul((h - imul(value.charCodeAt(offset), outWeight)) | 0, HASH_BASE) + value.charCodeAt(offset + q)) | 0;
    }
  }

  return (text) => {
    if (text.length < width) return text;
    // Occurrences as [start, end) pairs, in the order found (by sampled position).
    const found: number[] = [];
    for (let at = 0; at + q <= text.length; at += stride) {
      const h = gramAt(text, at);
      for (let slot = slotOf(h); slotEntry[slot] !== 0; slot = (slot + 1) & mask) {
        if (slotHash[slot] !== h) continue;
        const e = slotEntry[slot]! - 1;
        const value = distinct[entryValue[e]!]!;
        const start = at - entryOffset[e]!;
        if (start >= 0 && text.startsWith(value, start)) found.push(start, start + value.length);
      }
    }
    if (found.length === 0) return text;
    return replaceOccurrences(text, found);
  };
}

/** Redacts labelled secrets in free text (log messages, stderr, error messages). */
export function redactText(text: string): string {
  return redactKnownSecrets(text)
    .replace(PEM_PRIVATE, `-----BEGIN $1-----${REDACTED}-----END $1-----`)
    .replace(LABELLED_KEY, `$1${REDACTED}`)
    .replace(TOKEN_ASSIGN, `$1${REDACTED}`);
}

/** Redacts every WireGuard-key-shaped string as well (for raw dumps). */
export function redactAllKeys(text: string): string {
  return redactText(text).replace(ANY_WG_KEY, REDACTED);
}

/** Deep copy of a value with secret-named fields and labelled secrets removed. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[…]';
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), stack: value.stack ? redactText(value.stack) : undefined };
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_FIELD.test(k) && !/public/i.test(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redactValue(v, depth + 1);
    }
    return out;
  }
  return value;
}
