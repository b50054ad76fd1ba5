import { createLogger, MemoryTransport } from '../logger';
import { RateLimitedLog } from '../rate-limit';

describe('RateLimitedLog', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function setup(maxPerWindow = 5) {
    const transport = new MemoryTransport();
    const logger = createLogger({ service: 't', level: 'info', transports: [transport] });
    const limited = new RateLimitedLog({ logger, what: 'rejected connections', maxPerWindow, windowMs: 60_000 });
    const records = () => transport.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    return { limited, records };
  }

  it('writes maxPerWindow lines, then one summary with the count and the peers when the window ends', () => {
    const { limited, records } = setup();
    for (let i = 0; i < 100; i++) limited.log('rejected', { n: i }, i % 4 === 0 ? '192.0.2.1' : '198.51.100.7');
    expect(records().map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    jest.advanceTimersByTime(59_999);
    expect(records()).toHaveLength(5);
    jest.advanceTimersByTime(1);
    const summary = records()[5]!;
    expect(summary).toMatchObject({
      level: 'warn',
      message: '95 more rejected connections in the last 60 s (rate limit: 5 lines)',
      suppressed: 95,
      peers: { '192.0.2.1': 23, '198.51.100.7': 72 },
    });
  });

  it('starts a new window after the summary, and writes no summary for a quiet window', () => {
    const { limited, records } = setup(2);
    limited.log('a', {});
    jest.advanceTimersByTime(60_000);
    expect(records().map((r) => r.message)).toEqual(['a']);
    for (const m of ['b', 'c', 'd']) limited.log(m, {});
    jest.advanceTimersByTime(60_000);
    limited.log('e', {});
    expect(records().map((r) => r.message)).toEqual(['a', 'b', 'c', '1 more rejected connections in the last 60 s (rate limit: 2 lines)', 'e']);
    limited.close();
  });

  it('counts at most 16 peers by name (a flood from many addresses stays one short line)', () => {
    const { limited, records } = setup(0);
    for (let i = 0; i < 1000; i++) limited.log('x', {}, `203.0.113.${i % 250}`);
    limited.close();
    const [summary] = records();
    expect(Object.keys(summary!.peers as object)).toHaveLength(16);
    expect(summary).toMatchObject({ suppressed: 1000, otherPeers: 1000 - 16 * 4 });
  });
});
