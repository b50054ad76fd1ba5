import { randomBytes } from 'node:crypto';
import { MemoryTransport, REDACTED, addKnownSecret, clearKnownSecrets, createLogger, redactText, scrubKnownSecrets } from '@wgctl/logging';

const secret = () => randomBytes(32).toString('base64');

describe('known secrets', () => {
  afterEach(() => clearKnownSecrets());

  it('are redacted wherever they appear, with no label next to them', () => {
    const s = secret();
    expect(redactText(`stderr: bad value \`${s}'`)).toContain(s); // unlabelled: not recognisable by shape alone
    addKnownSecret(s);
    expect(redactText(`stderr: bad value \`${s}' and again ${s}`)).toBe(`stderr: bad value \`${REDACTED}' and again ${REDACTED}`);
  });

  it('are removed from every string of a message, other values kept', () => {
    const s = secret();
    const bytes = new Uint8Array([1, 2, 3]);
    const message = { a: `x${s}`, list: [s, 'plain', 7], nested: { kind: { $case: 'step', value: { message: s } } }, bytes, n: 5 };
    expect(scrubKnownSecrets(message)).toBe(message); // nothing registered: the same object back
    addKnownSecret(s);
    const scrubbed = scrubKnownSecrets(message);
    expect(JSON.stringify(scrubbed)).not.toContain(s);
    expect(scrubbed).toEqual({ a: `x${REDACTED}`, list: [REDACTED, 'plain', 7], nested: { kind: { $case: 'step', value: { message: REDACTED } } }, bytes, n: 5 });
    expect(scrubbed.bytes).toBe(bytes);
  });

  it('reach log lines (message and metadata)', () => {
    const s = secret();
    addKnownSecret(s);
    const memory = new MemoryTransport();
    createLogger({ service: 't', transports: [memory] }).warn(`failed: ${s}`, { stderr: `echo ${s}`, nested: { argv: ['wg', s] } });
    expect(memory.lines.join('\n')).not.toContain(s);
    expect(memory.lines[0]).toContain(REDACTED);
  });

  it('refuses short values that would redact ordinary text', () => {
    expect(() => addKnownSecret('abc')).toThrow(/shorter than 16/);
  });
});
