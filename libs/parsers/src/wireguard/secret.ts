/**
 * A secret (WireGuard private or preshared key) that cannot leak by accident: it prints,
 * serializes and inspects as "[REDACTED]"; only `reveal()` gives the value, so every place
 * that handles the real key is greppable.
 */
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

export class WgSecret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[REDACTED]';
  }

  toJSON(): string {
    return '[REDACTED]';
  }

  [INSPECT](): string {
    return 'WgSecret([REDACTED])';
  }
}

/** 32 bytes in base64: 43 significant characters (the last carries 4 bits) and one '='. */
const WG_KEY_PATTERN = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWgKey(value: string): boolean {
  return value.length === 44 && WG_KEY_PATTERN.test(value);
}
