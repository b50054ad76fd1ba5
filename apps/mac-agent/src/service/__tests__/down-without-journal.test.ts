/**
 * Down when the journal is corrupt or gone (issue #15 item 5): the previous copy stands in when
 * it can; without it, the split routes via the VM and the kill switch are found by their marks,
 * and the outcome names what could not be put back instead of claiming a clean host.
 */
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { ScriptedRunner } from '@wgctl/runner';
import { FakeDriver, fakeHost, type FakeHostState } from '../../testing/fake-host';
import { notRestoredWithoutJournal } from '../down-by-marks';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const intent: UpIntent = { vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'], ipv6: 'auto' };
const vmAddresses = { v4: '192.0.2.130' };

const corruptions: [string, (path: string) => void][] = [
  ['garbage bytes', (path) => writeFileSync(path, Buffer.from([0x00, 0xff, 0x13, 0x37]))],
  ['truncated', (path) => truncateSync(path, 100)],
  ['a wrong checksum', (path) => writeFileSync(path, readFileSync(path, 'utf8').replace('"phase": "up"', '"phase": "down"'))],
];

describe('MacAgentEngine Down without a usable journal (in-memory host)', () => {
  let dir: string;
  let host: FakeHostState;
  let store: JournalStore;
  let engine: MacAgentEngine;
  let driver: FakeDriver;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-nojournal-'));
    host = fakeHost();
    store = new JournalStore(dir);
    driver = new FakeDriver(host);
    engine = new MacAgentEngine({ driver, runner: new ScriptedRunner([]), journal: store, logger: silentLogger(), roamBackstopMs: 0 });
  });

  afterEach(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const routesNow = () => host.routes.map((r) => `${r.destination} via ${r.gateway}`).sort();

  it.each(corruptions)('journal %s, previous copy gone: split routes and kill switch removed by their marks; DNS and the pin named as not restored', async (_name, corrupt) => {
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    corrupt(store.path);
    rmSync(store.previousPath);
    const outcome = await engine.down({ vmAddresses }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(routesNow()).toEqual(['0.0.0.0/0 via 192.0.2.1', '203.0.113.10/32 via 192.0.2.1']);
    expect(host.killSwitch).toBeNull();
    expect(host.dns).toEqual(['198.51.100.53']); // only the lost journal knew the user's
    expect(outcome.notRestored).toEqual([expect.stringMatching(/^DNS: /), expect.stringMatching(/^server pins: /)]);
    expect(store.load()).toMatchObject({ phase: 'down', routes: [] }); // a sound journal again
  });

  it.each(corruptions)('journal %s: the previous copy stands in, everything is restored, nothing to report', async (_name, corrupt) => {
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    corrupt(store.path);
    const outcome = await engine.down({ vmAddresses }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.notRestored).toBeUndefined();
    expect(routesNow()).toEqual(['0.0.0.0/0 via 192.0.2.1']);
    expect(host).toMatchObject({ killSwitch: null, dns: ['192.0.2.1'] });
  });

  it('journal and its copy removed by hand (the old advice): the marks still say what is ours', async () => {
    await engine.up(intent, {}, () => undefined);
    await store.remove();
    const outcome = await engine.down({ vmAddresses }, () => undefined);
    expect(outcome).toMatchObject({ ok: true, notRestored: [expect.stringMatching(/^DNS: /), expect.stringMatching(/^server pins: /)] });
    expect(routesNow()).toEqual(['0.0.0.0/0 via 192.0.2.1', '203.0.113.10/32 via 192.0.2.1']);
    expect(host.killSwitch).toBeNull();
  });

  it.each(corruptions)('journal %s, with the servers in the request (wgctl down reads them from the VM): the pin is removed by its marks too', async (_name, corrupt) => {
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    host.routes.push({ destination: '198.51.100.7/32', gateway: '192.0.2.1', interface: 'en0' }); // someone else's host route
    corrupt(store.path);
    rmSync(store.previousPath);
    const outcome = await engine.down({ vmAddresses, servers: [{ ip: '203.0.113.10', port: 51820 }] }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(routesNow()).toEqual(['0.0.0.0/0 via 192.0.2.1', '198.51.100.7/32 via 192.0.2.1']);
    expect(outcome.notRestored).toEqual([expect.stringMatching(/^DNS: /)]);
  });

  it('a journal that is sound and lists its routes: no look for pins by marks (no extra process)', async () => {
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    driver.calls.length = 0;
    await engine.down({ vmAddresses, servers: [{ ip: '203.0.113.10', port: 51820 }] }, () => undefined);
    expect(driver.calls.filter((c) => c.startsWith('discoverUplink'))).toEqual([]);
  });

  it('without the VM address the split routes cannot be found, and the outcome says so', async () => {
    await engine.up(intent, {}, () => undefined);
    await store.remove();
    const outcome = await engine.down({}, () => undefined);
    expect(outcome.notRestored?.[0]).toMatch(/^split routes: no VM address came with the Down/);
    expect(host.killSwitch).toBeNull(); // found by its name all the same
  });

  it('an Up refuses an unusable journal and names the way out', async () => {
    await engine.up(intent, {}, () => undefined);
    writeFileSync(store.path, 'garbage');
    rmSync(store.previousPath);
    await expect(Promise.resolve().then(() => engine.up(intent, {}, () => undefined))).rejects.toThrow(/not valid JSON.*`wgctl down` removes what is ours by its marks/);
  });

  it('never up, no journal: a clean Down with nothing to report, and the /1 routes of another VPN are left alone', async () => {
    host.routes.push({ destination: '0.0.0.0/1', gateway: '198.51.100.1', interface: 'utun9' });
    const outcome = await engine.down({ vmAddresses }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.notRestored).toBeUndefined();
    expect(routesNow()).toEqual(['0.0.0.0/0 via 192.0.2.1', '0.0.0.0/1 via 198.51.100.1']);
  });
});

describe('notRestoredWithoutJournal', () => {
  it('on darwin also names PF, which the lost pfctl -E token may keep enabled', () => {
    expect(notRestoredWithoutJournal('darwin', vmAddresses)).toEqual([expect.stringMatching(/^DNS: /), expect.stringMatching(/^server pins: /), expect.stringMatching(/^PF: .*may stay enabled/)]);
    expect(notRestoredWithoutJournal('linux', vmAddresses).some((x) => x.startsWith('PF'))).toBe(false);
  });
});
