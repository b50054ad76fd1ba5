/**
 * A caller that goes away (the gRPC call cancelled: `signal` aborted) ends the mac-agent's Up
 * or Down the way SIGTERM does: between two steps, with no rollback. The host stays as
 * fail-closed as the last step left it, the journal (up-/down-in-progress) lists what it
 * holds and says why (lastError, shown by Status), and the next Up, Down or start takes it
 * from there. Unlike SIGTERM the agent runs on: the next request is served.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const finals = (steps: StepRecord[]) => steps.filter((s) => s.state !== 'started').map((s) => s.step);

describe('MacAgentEngine: the caller cancels', () => {
  let dir: string;
  let driver: FakeDriver;
  let store: JournalStore;
  let engine: MacAgentEngine;
  const make = () => new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: idleMonitor });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-mcancel-'));
    driver = new FakeDriver(fakeHost());
    store = new JournalStore(dir);
  });
  afterEach(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an Up cancelled after kill-switch ends before pin-endpoint: no rollback, kill switch kept, the journal says why; the next Up completes it', async () => {
    engine = make();
    const cancel = new AbortController();
    const steps: StepRecord[] = [];
    const outcome = await engine.up(INTENT, { signal: cancel.signal }, (s) => {
      steps.push(s);
      if (s.step === 'kill-switch' && s.state === 'done') cancel.abort();
    });

    expect(outcome).toMatchObject({ ok: false, failedStep: 'pin-endpoint' });
    expect(outcome.error).toMatch(/^cancelled before pin-endpoint: the caller went away or its deadline passed; nothing was rolled back/);
    expect(finals(steps)).toEqual(['discover', 'kill-switch']); // no rollback-* step
    expect(driver.host.killSwitch).not.toBeNull(); // fail-closed: the block stays
    expect(driver.host.routes.map((r) => r.destination)).toEqual(['0.0.0.0/0']);
    expect(driver.host.dns).toEqual(['192.0.2.1']);
    expect(store.load()).toMatchObject({ phase: 'up-in-progress', lastError: expect.stringMatching(/^pin-endpoint: cancelled before pin-endpoint/) });
    expect((await engine.status()).checks).toContainEqual(expect.objectContaining({ name: 'last-operation', ok: false }));

    // The agent runs on: the next Up is served and completes what the cancelled one started.
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    expect(store.load()).toMatchObject({ phase: 'up', lastError: '' });
    expect(driver.host.routes.map((r) => r.destination)).toEqual(expect.arrayContaining(['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1']));
  });

  it('an Up cancelled before it changed anything leaves the journal as it was', async () => {
    engine = make();
    const cancel = new AbortController();
    cancel.abort();
    const steps: StepRecord[] = [];
    expect(await engine.up(INTENT, { signal: cancel.signal }, (s) => steps.push(s))).toMatchObject({ ok: false, failedStep: 'discover' });
    expect(steps).toEqual([]);
    expect(store.load()).toBeNull();
    expect(driver.calls).toEqual([]);
  });

  it('a Down cancelled after restore-dns ends there: routes and kill switch kept; the next start finishes it', async () => {
    engine = make();
    expect(await engine.up(INTENT, {}, () => undefined)).toMatchObject({ ok: true });
    const cancel = new AbortController();
    const steps: StepRecord[] = [];
    const outcome = await engine.down({ signal: cancel.signal }, (s) => {
      steps.push(s);
      if (s.step === 'restore-dns' && s.state === 'done') cancel.abort();
    });

    expect(outcome).toMatchObject({ ok: false, failedStep: 'remove-routes' });
    expect(finals(steps)).toEqual(['restore-dns']);
    expect(driver.host.killSwitch).not.toBeNull();
    expect(driver.host.routes.map((r) => r.destination)).toEqual(expect.arrayContaining(['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1']));
    expect(store.load()).toMatchObject({ phase: 'down-in-progress', lastError: expect.stringMatching(/^remove-routes: cancelled before remove-routes/) });

    await engine.close();
    engine = make();
    await engine.reconcile();
    expect(driver.host).toMatchObject({ routes: [{ destination: '0.0.0.0/0' }], killSwitch: null, dns: ['192.0.2.1'] });
  });
});
