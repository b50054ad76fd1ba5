/**
 * secretValueRedactor: every value replaced in one pass. Where occurrences do not overlap, the
 * text must be exactly what replacing the values one after the other gives (the scrub it
 * replaced); where they overlap, one REDACTED covers them all.
 */
import { randomBytes } from 'node:crypto';
import { REDACTED, secretValueRedactor } from '@wgctl/logging';

const oneByOne = (text: string, values: string[]): string => values.reduce((out, v) => out.split(v).join(REDACTED), text);
const key = () => randomBytes(32).toString('base64');

/** mulberry32: the same texts every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('secretValueRedactor', () => {
  it('gives the text replacing each value one by one gives, on random texts and values', () => {
    const rand = prng(13);
    const pieces = ['"', '\n  ', ' ', ',', ':', '{', '}', 'é', '😀', '.', '=', 'A', 'a+/', '[REDACTED'];
    for (let round = 0; round < 200; round++) {
      // Values of 8 to 60 characters, regex specials and surrogate pairs included.
      const values = Array.from({ length: 1 + Math.floor(rand() * 12) }, (_, i) =>
        i % 3 === 0 ? key() : i % 3 === 1 ? `${key().slice(0, 8 + Math.floor(rand() * 30))}.*+?(${i})` : `😀${key().slice(0, 6 + Math.floor(rand() * 50))}`,
      );
      let text = '';
      for (let n = Math.floor(rand() * 60); n > 0; n--) {
        const r = rand();
        text += r < 0.4 ? values[Math.floor(rand() * values.length)] : r < 0.5 ? key() : pieces[Math.floor(rand() * pieces.length)];
      }
      expect(secretValueRedactor(values)(text)).toBe(oneByOne(text, values));
    }
  });

  it('keys at the very start and end, back to back, repeated', () => {
    const [a, b] = [key(), key()];
    const text = `${a}${b} x ${a}\n${b}${b}`;
    expect(secretValueRedactor([a, b])(text)).toBe(`${REDACTED}${REDACTED} x ${REDACTED}\n${REDACTED}${REDACTED}`);
  });

  it('overlapping occurrences and a value inside another become one REDACTED', () => {
    expect(secretValueRedactor(['abcdefgh', 'efghijkl'])('<abcdefghijkl>')).toBe(`<${REDACTED}>`);
    expect(secretValueRedactor(['efghijkl', 'abcdefgh'])('<abcdefghijkl>')).toBe(`<${REDACTED}>`);
    expect(secretValueRedactor(['cdefgh12', 'abcdefgh12345678'])('<abcdefgh12345678>')).toBe(`<${REDACTED}>`);
    expect(secretValueRedactor(['abababab'])('ababababab!')).toBe(`${REDACTED}!`);
  });

  it('no occurrence, a text shorter than every value, no values: the text itself', () => {
    const text = `nothing secret here, ${key()}`;
    expect(secretValueRedactor([key(), key()])(text)).toBe(text);
    expect(secretValueRedactor([key()])('short')).toBe('short');
    expect(secretValueRedactor([])(text)).toBe(text);
    expect(secretValueRedactor(['', key()])(text)).toBe(text);
  });

  it('values of every length from 1 up, among many (one pass for all of them)', () => {
    const values = Array.from({ length: 40 }, (_, i) => `${i}`.padStart(1 + i, '#').replace(/#/g, () => 'qwertyuiop'[i % 10]!));
    const text = values.map((v, i) => `(${v})${i % 7 === 0 ? values[(i * 3) % 40] : ''}`).join(' ');
    expect(secretValueRedactor(values.slice(9))(text)).toBe(oneByOne(text, values.slice(9)));
  });
});
