/**
 * Issue #15 item 5 on a real Linux host (network namespaces, see testing/lab.ts): after an Up,
 * the journal is corrupted (garbage, truncated, valid JSON with a wrong checksum) or removed
 * with its previous copy (the old advice), a new engine takes over, and Down removes every
 * route and table of ours it can recognise, and names what it could not put back (DNS, the
 * server pin) instead of reporting a clean host. With the previous copy there, Down restores
 * everything from it.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@wgctl/logging';
import { LinuxDriver } from '../host/linux';
import { MacAgentEngine } from '../service/engine';
import { JournalStore, type UpIntent } from '../service/journal';
import { ADDR, IF, createLab, netnsSpawner, netnsTestsEnabled, type Lab } from '../testing/lab';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const ORIGINAL_RESOLV = '# lab resolv.conf\nnameserver 192.0.2.1\n';
const intent: UpIntent = { vmAddress: ADDR.vm, endpoints: [{ ip: ADDR.server, port: ADDR.port }], dnsServers: ['198.51.100.53'], ipv6: 'block' };

const corruptions: [string, (store: JournalStore) => Promise<void> | void][] = [
  ['garbage bytes', (s) => writeFileSync(s.path, Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a]))],
  ['truncated', (s) => truncateSync(s.path, Math.floor(statSync(s.path).size / 3))],
  ['valid JSON with a wrong checksum', (s) => writeFileSync(s.path, readFileSync(s.path, 'utf8').replace('"phase": "up"', '"phase": "down"'))],
  ['removed with its previous copy (the old advice)', (s) => s.remove()],
];

describeNetns('mac-agent Down without a usable journal (linux driver, network namespaces)', () => {
  let lab: Lab;
  let dir: string;
  const engines: MacAgentEngine[] = [];
  const resolv = () => join(dir, 'resolv.conf');
  const newEngine = (store: JournalStore) => {
    const engine = new MacAgentEngine({
      driver: new LinuxDriver({ resolvConfPath: resolv() }),
      runner: lab.host,
      journal: store,
      logger: silentLogger(),
      spawnMonitor: netnsSpawner(lab.ns.host),
    });
    engines.push(engine);
    return engine;
  };
  const routes = async () => (await lab.host.run(['ip', '-4', 'route', 'show', 'table', 'main'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
  const ourTables = async () => (await lab.host.run(['nft', 'list', 'tables'])).stdout.split('\n').filter((l) => l.includes('wgctl'));

  beforeAll(async () => {
    lab = await createLab();
  });
  afterAll(async () => {
    await lab?.destroy();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-jc-'));
    writeFileSync(resolv(), ORIGINAL_RESOLV);
  });
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.close();
    // What a lost journal cannot undo, undone by hand for the next test.
    await lab.host.run(['ip', 'route', 'del', `${ADDR.server}/32`], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });

  /** Up by one engine; the journal is then damaged and a new engine (a restarted agent) is handed the Down. */
  async function upThenDamage(damage: (store: JournalStore) => Promise<void> | void, keepPrevious: boolean) {
    const before = await routes();
    const store = new JournalStore(join(dir, 'state'));
    const first = newEngine(store);
    expect(await first.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    expect(await routes()).toEqual(expect.arrayContaining([`0.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`, `128.0.0.0/1 via ${ADDR.vm} dev ${IF.hostV}`]));
    expect(await ourTables()).toEqual(['table inet wgctl']);
    await first.close();
    await damage(store);
    if (!keepPrevious) rmSync(store.previousPath, { force: true });
    return { before, next: newEngine(new JournalStore(join(dir, 'state'))) };
  }

  it.each(corruptions)('journal %s: the split routes via the VM and the kill switch are gone; DNS and the pin are named, not claimed', async (_name, damage) => {
    const { before, next } = await upThenDamage(damage, false);
    const outcome = await next.down({ vmAddresses: { v4: ADDR.vm } }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(await routes()).toEqual([...before, `${ADDR.server} via ${ADDR.gwA} dev ${IF.hostA}`].sort());
    expect(await ourTables()).toEqual([]);
    expect(readFileSync(resolv(), 'utf8')).toMatch(/^nameserver 198\.51\.100\.53$/m);
    expect(outcome.notRestored).toEqual([expect.stringMatching(/^DNS: the settings from before `wgctl up` were only in the journal/), expect.stringMatching(/^server pins: /)]);
  });

  it.each(corruptions.slice(0, 3))('journal %s but its previous copy sound: everything restored from the copy, nothing to report', async (_name, damage) => {
    const { before, next } = await upThenDamage(damage, true);
    const outcome = await next.down({ vmAddresses: { v4: ADDR.vm } }, () => undefined);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.notRestored).toBeUndefined();
    expect(await routes()).toEqual(before);
    expect(await ourTables()).toEqual([]);
    expect(readFileSync(resolv(), 'utf8')).toBe(ORIGINAL_RESOLV);
  });
});
