/**
 * A laptop roams for months: the roams kept in memory are bounded while the count since start
 * keeps counting, and Status (hence wgctl_roams_total / wgctl_last_roam_duration_seconds)
 * carries the count and the last roam's duration.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { MacAgentEngine } from '../engine';
import { JournalStore } from '../journal';
import { KEPT_ROAMS } from '../roam';
import { macStatusMessage } from '../server';

const UPLINKS = [
  { interface: 'en0', gateway: '192.0.2.1', address: '192.0.2.2' },
  { interface: 'en5', gateway: '192.0.2.65', address: '192.0.2.66' },
];

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('roams since start', () => {
  let dir: string;
  let host: FakeHostState;
  let engine: MacAgentEngine;
  let monitorLine: ((line: string) => void) | undefined;

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    monitorLine = options.onLine;
    let exit!: (e: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (exit = r));
    return { argv: [...argv], pid: 1, exited, stderrTail: () => [], stop: async () => (exit({ code: null, signal: 'SIGTERM' }), exited) };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgctl-roams-'));
    host = fakeHost();
    engine = new MacAgentEngine({
      driver: new FakeDriver(host),
      runner: new ScriptedRunner([]),
      journal: new JournalStore(dir),
      logger: silentLogger(),
      spawnMonitor: fakeSpawn,
      roamDebounceMs: 1,
      roamMaxWaitMs: 5,
      roamBackstopMs: 0,
      dnsRecheckMs: 0,
      healCheckMs: 0,
    });
  });

  afterEach(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`keeps the last ${KEPT_ROAMS} roams, counts them all, and Status says how many and how long the last took`, async () => {
    const up = await engine.up({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' }, {}, () => undefined);
    expect(up).toMatchObject({ ok: true });
    await waitFor('the routing monitor', () => monitorLine !== undefined);
    const total = KEPT_ROAMS + 5;
    for (let i = 1; i <= total; i++) {
      const uplink = UPLINKS[i % 2];
      host.uplink = { ...uplink };
      host.routes = [...host.routes.filter((r) => r.destination !== '0.0.0.0/0'), { destination: '0.0.0.0/0', gateway: uplink.gateway, interface: uplink.interface }];
      monitorLine!(`default via ${uplink.gateway} dev ${uplink.interface}`);
      await waitFor(`roam ${i}`, () => engine.roamSummary.count === i);
    }
    expect(engine.roams).toHaveLength(KEPT_ROAMS);
    const last = engine.roams[KEPT_ROAMS - 1];
    expect(engine.roamSummary).toEqual({ count: total, last });
    expect(last).toMatchObject({ toInterface: UPLINKS[total % 2].interface });

    const status = macStatusMessage(await engine.status(), engine.driverName, engine.roamSummary);
    expect(status).toMatchObject({ roams: total, lastRoamTookMs: String(Math.round(last.tookMs)), lastRoamUnixMs: String(last.atMs) });
  });

  it('none yet: 0 roams, 0 ms', async () => {
    expect(macStatusMessage(await engine.status(), engine.driverName, engine.roamSummary)).toMatchObject({ roams: 0, lastRoamTookMs: '0' });
  });
});
