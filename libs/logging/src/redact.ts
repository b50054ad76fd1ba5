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

/** Registers a secret value; values shorter than 16 characters are refused (they would redact ordinary text). */
export function addKnownSecret(value: string): void {
  if (value.length < 16) throw new Error('addKnownSecret: a secret shorter than 16 characters cannot be redacted safely');
  knownSecrets.add(value);
}

/** Forgets every registered secret (tests). */
export function clearKnownSecrets(): void {
  knownSecrets.clear();
}

/** Replaces every registered secret value; nothing else. */
export function redactKnownSecrets(text: string): string {
  if (knownSecrets.size === 0) return text;
  let out = text;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
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
