/**
 * The captive-portal sign-in window in the engine (in-memory host): opened by a kill-switch-only
 * Up with the uplink's resolvers, closed at its deadline by the engine itself (the kill switch
 * stays: fail-closed), by the full Up that follows, never re-opened by a restart; refused where
 * it cannot help.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidRequestError } from '@wgctl/agent-kit';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type StreamingProcess } from '@wgctl/runner';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const intent = (overrides: Partial<UpIntent> = {}): UpIntent => ({
  vmAddress: '192.0.2.130',
  endpoints: [{ ip: '203.0.113.10', port: 51820 }],
  dnsServers: ['198.51.100.53'],
  ipv6: 'auto',
  ...overrides,
});
const WINDOW_MS = 1_000; // the shortest window the engine accepts

const idleMonitor = (argv: readonly string[]): StreamingProcess => {
  let exit!: (e: { code: number | null; signal: NodeJS.Signals | null }) => void;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (exit = r));
  return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => (exit({ code: null, signal: 'SIGTERM' }), exited) };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('captive-portal sign-in window (engine, in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let store: JournalStore;
  const engines: MacAgentEngine[] = [];
  const make = () => {
    const engine = new MacAgentEngine({ driver: new FakeDriver(host), runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), spawnMonitor: idleMonitor, healCheckMs: 0 });
    engines.push(engine);
    return engine;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-portal-'));
    host = fakeHost();
    store = new JournalStore(dir);
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("opens with the uplink's resolvers, shows in status, and closes itself at the deadline, the kill switch staying on", async () => {
    const engine = make();
    const started = Date.now();
    expect(await engine.up(intent({ killSwitchOnly: true, portalWindowMs: WINDOW_MS }), {}, () => undefined)).toMatchObject({ ok: true });
    const window = host.killSwitch?.portalWindow;
    expect(window).toEqual({ untilMs: expect.any(Number), resolvers: ['192.0.2.1'] });
    expect(window!.untilMs - started).toBeGreaterThanOrEqual(WINDOW_MS);
    expect((await engine.status()).portalWindow).toEqual(window);

    await sleep(window!.untilMs - Date.now() + 300);
    expect(host.killSwitch).not.toBeNull();
    expect(host.killSwitch!.portalWindow).toBeUndefined();
    expect(host.killSwitch!.endpoints).toEqual([{ ip: '203.0.113.10', port: 51820 }]);
    expect(store.load()!.killSwitch!.policy.portalWindow).toBeUndefined();
    expect(store.load()!.intent!.portalWindowMs).toBeUndefined();
    expect((await engine.status()).portalWindow).toBeUndefined();
  });

  it('is closed by the full Up that follows (the handshake came)', async () => {
    const engine = make();
    await engine.up(intent({ killSwitchOnly: true, portalWindowMs: 60_000 }), {}, () => undefined);
    expect(host.killSwitch?.portalWindow).toBeDefined();
    expect(await engine.up(intent(), {}, () => undefined)).toMatchObject({ ok: true });
    expect(host.killSwitch).not.toBeNull();
    expect(host.killSwitch!.portalWindow).toBeUndefined();
  });

  it('is closed on request (wgctl portal --end), the kill switch staying on; nothing to close is no error', async () => {
    const engine = make();
    await engine.up(intent({ killSwitchOnly: true, portalWindowMs: 60_000 }), {}, () => undefined);
    expect(await engine.endPortalWindow()).toBe(true);
    expect(host.killSwitch).not.toBeNull();
    expect(host.killSwitch!.portalWindow).toBeUndefined();
    expect(await engine.endPortalWindow()).toBe(false);
  });

  it('is not re-opened by a restart (a crash during the window ends it, fail-closed)', async () => {
    await make().up(intent({ killSwitchOnly: true, portalWindowMs: 60_000 }), {}, () => undefined);
    expect(host.killSwitch?.portalWindow).toBeDefined();
    await make().reconcile();
    expect(host.killSwitch).not.toBeNull();
    expect(host.killSwitch!.portalWindow).toBeUndefined();
  });

  it('is refused with a full Up, out of bounds, and over a Mac that is up (its routes would take the browser to the VM)', async () => {
    const engine = make();
    expect(() => engine.up(intent({ portalWindowMs: WINDOW_MS }), {}, () => undefined)).toThrow(InvalidRequestError);
    expect(() => engine.up(intent({ killSwitchOnly: true, portalWindowMs: 999 }), {}, () => undefined)).toThrow(/portal_window_ms: 999 is not in 1000\.\.300000/);
    await engine.up(intent(), {}, () => undefined);
    const outcome = await engine.up(intent({ killSwitchOnly: true, portalWindowMs: WINDOW_MS }), {}, () => undefined);
    expect(outcome).toMatchObject({ ok: false, error: expect.stringContaining('a sign-in window needs `wgctl down` first') });
    expect(host.killSwitch?.portalWindow).toBeUndefined();
  });
});
