import { MemoryTransport, createLogger } from '../logger';

/** Metadata that counts how often something walks its fields (redaction does). */
function countingMeta() {
  const meta = { reads: 0 };
  Object.defineProperty(meta, 'payload', {
    enumerable: true,
    get() {
      meta.reads += 1;
      return 'value';
    },
  });
  return meta as { reads: number; payload?: string };
}

describe('createLogger level filtering', () => {
  it('does not redact or serialize records below the level', () => {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [transport] });
    const meta = countingMeta();
    logger.debug('not wanted', { meta });
    expect(meta.reads).toBe(0);
    expect(transport.lines).toEqual([]);
    logger.info('wanted', { meta });
    expect(meta.reads).toBeGreaterThan(0);
    expect(transport.lines).toHaveLength(1);
    expect(JSON.parse(transport.lines[0]!)).toMatchObject({ message: 'wanted', meta: { payload: 'value' } });
  });

  it('follows a level changed at run time', () => {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'warn', transports: [transport] });
    logger.info('dropped');
    logger.level = 'debug';
    logger.debug('kept');
    expect(transport.lines.map((l) => JSON.parse(l).message)).toEqual(['kept']);
  });

  it("keeps winston's rule that a transport with its own lower level still gets those records", () => {
    const verbose = new MemoryTransport({ level: 'debug' });
    const quiet = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [verbose, quiet] });
    logger.debug('detail');
    logger.error('failure');
    expect(verbose.lines.map((l) => JSON.parse(l).message)).toEqual(['detail', 'failure']);
    expect(quiet.lines.map((l) => JSON.parse(l).message)).toEqual(['failure']);
  });
});
