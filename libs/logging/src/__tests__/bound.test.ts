import { cutStrings, cutText, shownValue, utf8Prefix } from '../bound';
import { createLogger, MAX_LOG_LINE_BYTES, MAX_LOG_STRING_BYTES, MemoryTransport } from '../logger';
import { REDACTED } from '../redact';

const bytes = (text: string): number => Buffer.byteLength(text);

describe('cutText', () => {
  it('keeps text that fits, byte for byte', () => {
    expect(cutText('short', 64)).toBe('short');
    expect(cutText('é'.repeat(32), 64)).toBe('é'.repeat(32)); // 64 bytes exactly
  });

  it('cuts longer text to at most maxBytes, saying how long it was', () => {
    const cut = cutText('A'.repeat(102_400), 1024);
    expect(cut).toMatch(/^A+… \(102400 bytes, cut\)$/);
    expect(bytes(cut)).toBeLessThanOrEqual(1024);
    expect(bytes(cut)).toBeGreaterThan(1000);
  });

  it('never splits a character: multi-byte and surrogate pairs stay whole', () => {
    for (const unit of ['é', '€', '😀']) {
      for (let max = 40; max < 48; max++) {
        const cut = cutText(unit.repeat(100), max);
        expect(bytes(cut)).toBeLessThanOrEqual(max);
        expect(cut).not.toContain('\uFFFD');
        expect(cut.replace(/… \(\d+ bytes, cut\)$/, '')).toBe(unit.repeat(cut.replace(/… \(\d+ bytes, cut\)$/, '').length / unit.length));
      }
    }
    expect(utf8Prefix('a😀b', 4)).toBe('a');
    expect(utf8Prefix('a😀b', 5)).toBe('a😀');
  });
});

describe('shownValue', () => {
  it('quotes a short value as JSON (a newline cannot forge a line)', () => {
    expect(shownValue('mac.local')).toBe('"mac.local"');
    expect(shownValue('eth0\nx')).toBe('"eth0\\nx"');
  });

  it("cuts a long one to its head and gives the original length: '\"AAAA…\" (102400 bytes, cut)'", () => {
    expect(shownValue('A'.repeat(102_400))).toBe(`"${'A'.repeat(64)}…" (102400 bytes, cut)`);
    expect(shownValue('é'.repeat(40))).toBe(`"${'é'.repeat(32)}…" (80 bytes, cut)`);
  });
});

describe('cutStrings', () => {
  it('cuts strings at any depth and leaves other values', () => {
    const out = cutStrings({ a: 'x'.repeat(100), n: 5, list: ['y'.repeat(100), true], deep: { s: 'z'.repeat(100) } }, 50) as Record<string, unknown>;
    expect(out.n).toBe(5);
    expect(JSON.stringify(out)).not.toMatch(/x{50}|y{50}|z{50}/);
    expect(JSON.stringify(out).match(/\(100 bytes, cut\)/g)).toHaveLength(3);
  });
});

describe('createLogger bounds every line', () => {
  const parse = (line: string) => JSON.parse(line) as Record<string, unknown>;

  it('a 4 MB message and a 1 MB metadata string: each cut with its length, the line under the cap', () => {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [transport] });
    logger.info('B'.repeat(4 * 1024 * 1024), { stderr: 'C'.repeat(1024 * 1024), exitCode: 1 });
    const [line] = transport.lines;
    expect(bytes(line!)).toBeLessThanOrEqual(MAX_LOG_LINE_BYTES);
    const record = parse(line!);
    expect(record.message).toMatch(/^B+… \(4194304 bytes, cut\)$/);
    expect(record.stderr).toMatch(/^C+… \(1048576 bytes, cut\)$/);
    expect(bytes(String(record.stderr))).toBeLessThanOrEqual(MAX_LOG_STRING_BYTES);
    expect(record).toMatchObject({ level: 'info', service: 't', exitCode: 1 });
  });

  it('a record too long even so (many fields): replaced by one saying what was cut, still JSON', () => {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [transport] });
    const meta = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field${i}`, 'D'.repeat(2000)]));
    logger.warn('many outputs', meta);
    const [line] = transport.lines;
    expect(bytes(line!)).toBeLessThanOrEqual(MAX_LOG_LINE_BYTES);
    const record = parse(line!);
    expect(record).toMatchObject({ level: 'warn', message: 'many outputs', service: 't', lineCut: { bytes: expect.any(Number) } });
    expect((record.lineCut as { bytes: number }).bytes).toBeGreaterThan(80_000);
    expect((record.lineCut as { fields: string[] }).fields).toContain('field0');
  });

  it('redacts before it cuts: a key across the cut point is not half shown', () => {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [transport] });
    const key = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
    const text = `${'p'.repeat(MAX_LOG_STRING_BYTES - 60)} PrivateKey = ${key} ${'q'.repeat(5000)}`;
    logger.info('config', { text });
    const record = parse(transport.lines[0]!);
    expect(String(record.text)).not.toContain(key.slice(0, 10));
    expect(String(record.text)).toContain(REDACTED);
  });
});
