/**
 * Importing the library does not load winston (the CLI's config checks import it for
 * shownValue on the way to its first RPCs); the first logger made does, and logs as before.
 */
describe('winston is loaded by the first logger, not by the import', () => {
  afterEach(() => jest.dontMock('winston'));

  it('loads winston at createLogger, and the record is still redacted JSON', () => {
    let loads = 0;
    jest.isolateModules(() => {
      jest.doMock('winston', () => {
        loads += 1;
        return jest.requireActual('winston');
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const logging = require('../index') as typeof import('../index');
      expect(logging.shownValue('x')).toBe('"x"');
      expect(logging.parseLogLevel('debug')).toBe('debug');
      expect(() => logging.parseLogLevel('loud')).toThrow(/invalid log level "loud": expected one of error, warn, info, debug/);
      expect(loads).toBe(0);

      const memory = new logging.MemoryTransport();
      logging.createLogger({ service: 'test', level: 'info', transports: [memory] }).info('hello', { privateKey: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0=' });
      expect(loads).toBe(1);
      expect(memory.lines).toHaveLength(1);
      const record = JSON.parse(memory.lines[0]!);
      expect(record).toMatchObject({ level: 'info', message: 'hello', service: 'test' });
      expect(memory.lines[0]).not.toContain('c2VjcmV0');
    });
  });
});
