/**
 * Stopping the engine (what SIGTERM does): an Up in flight finishes its current step and ends
 * there — no later step, no rollback, so the kill switch it loaded stays (fail-closed); the
 * journal says up-in-progress and the next start completes the Up. New work is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoppingError } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type StepRecord, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { FakeDriver, fakeHost } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore } from '../journal';

const INTENT = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' as const };

const idleMonitor = (argv: readonly string[], _options: StreamingOptions): StreamingProcess => {
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(() => undefined);
  return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => ({ code: null, signal: 'SIGTERM' }) };
};

describe('MacAgentEngine.stop', () => {
  let dir: string;
  let driver: FakeDriver;
  let store: JournalStore;
  const make = (stallAfterStep?: string) =>
    new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: idleMonitor, stallAfterStep });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-mstop-'));
    driver = new FakeDriver(fakeHost());
    store = new JournalStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an Up stalled after kill-switch ends there on stop: no rollback, kill switch kept, the next start completes it', async () => {
    const engine = make('kill-switch');
    const steps: StepRecord[] = [];
    const up = engine.up(INTENT, {}, (s) => steps.push(s));
    for (let i = 0; i < 200 && !steps.some((s) => s.step === 'kill-switch' && s.state === 'done'); i++) await new Promise((r) => setTimeout(r, 5));
    const callsBefore = driver.calls.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(driver.calls.length).toBe(callsBefore); // stalled: the host is not touched

    const stopped = engine.stop('SIGTERM');
    expect(() => engine.down({}, () => undefined)).toThrow(StoppingError); // no new work
    const outcome = await up;
    await stopped;

    expect(outcome).toMatchObject({ ok: false, failedStep: 'pin-endpoint' });
    expect(outcome.error).toMatch(/^the mac-agent is stopping \(SIGTERM\): it finished its current step and stopped before pin-endpoint/);
    expect(steps.filter((s) => s.state !== 'started').map((s) => s.step)).toEqual(['discover', 'kill-switch']);
    expect(driver.host.killSwitch).not.toBeNull(); // fail-closed: the block stays
    expect(store.load()).toMatchObject({ phase: 'up-in-progress', lastError: '' });

    // The next start re-asserts the journaled Up and completes it.
    const next = make();
    await next.reconcile();
    expect(store.load()).toMatchObject({ phase: 'up' });
    expect(driver.host.routes.map((r) => r.destination)).toEqual(expect.arrayContaining(['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1']));
    await next.close();
  });

  it('stop while idle resolves at once; Up and Down are refused after it', async () => {
    const engine = make();
    await engine.stop('SIGTERM');
    expect(() => engine.up(INTENT, {}, () => undefined)).toThrow(/the mac-agent is stopping \(SIGTERM\): no new Up or Down/);
    expect(() => engine.down({}, () => undefined)).toThrow(StoppingError);
    expect(driver.calls).toEqual([]);
  });
});
