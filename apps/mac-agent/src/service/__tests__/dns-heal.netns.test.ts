/**
 * DNS put back for real on Linux (network namespaces, testing/lab.ts, prefix `wdn`), with no
 * routing event: while up, something rewrites the managed resolv.conf with the café's resolver —
 * as a DHCP client does on renewal (a new file renamed over it), or an editor in place. The
 * agent hears it through inotify (fs.watch on the file's directory) and writes the tunnel's
 * resolvers back within 2 s; the heal names the file event.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import { parseResolvConf } from '@wgctl/parsers';
import { LinuxDriver } from '../../host/linux';
import { ADDR, createLab, netnsSpawner, netnsTestsEnabled, type Lab } from '../../testing/lab';
import { MacAgentEngine } from '../engine';
import { JournalStore, type UpIntent } from '../journal';

const describeNetns = netnsTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

const TUNNEL_DNS = '198.51.100.53';
const CAFE_DNS = '192.0.2.1';
const intent: UpIntent = { vmAddress: ADDR.vm, endpoints: [{ ip: ADDR.server, port: ADDR.port }], dnsServers: [TUNNEL_DNS], ipv6: 'auto' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ms until `ok()` holds (polled every 10 ms), or throws after `limitMs`. */
async function msUntil(what: string, ok: () => boolean, limitMs = 5_000): Promise<number> {
  const start = Date.now();
  while (!ok()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return Date.now() - start;
}

describeNetns('DNS self-healing on a Linux host, no routing event (network namespaces)', () => {
  let lab: Lab;
  let dir: string;
  let resolvConf: string;
  let engine: MacAgentEngine;

  const nameservers = () => parseResolvConf(readFileSync(resolvConf, 'utf8')).nameservers;

  beforeAll(async () => {
    lab = await createLab('wdn');
    dir = mkdtempSync(join(tmpdir(), 'wdn-dns-'));
    resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, `search example.org\nnameserver ${CAFE_DNS}\n`);
    engine = new MacAgentEngine({
      driver: new LinuxDriver({ resolvConfPath: resolvConf }),
      runner: lab.host,
      journal: new JournalStore(join(dir, 'state')),
      logger: createLogger({ service: 'mac-agent-test', level: 'info', transports: [new MemoryTransport()] }),
      spawnMonitor: netnsSpawner(lab.ns.host),
      dnsRecheckMs: 0, // no DNS look 2 s after routing events: only the watch can put it back
    });
    expect(await engine.up(intent, {}, () => undefined)).toMatchObject({ ok: true });
    expect(nameservers()).toEqual([TUNNEL_DNS]);
    await sleep(1_000); // the monitors listening, the routing events of the Up handled
  });

  afterAll(async () => {
    await engine?.down({}, () => undefined);
    await engine?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a DHCP client renames a new resolv.conf (the café resolver) over it: the tunnel\'s resolvers are back within 2 s, the heal names the file event', async () => {
    const before = engine.healSummary().count;
    const routesBefore = (await lab.host.run(['ip', 'route', 'show'])).stdout;
    writeFileSync(`${resolvConf}.dhclient-new`, `search example.org\nnameserver ${CAFE_DNS}\n`);
    renameSync(`${resolvConf}.dhclient-new`, resolvConf);
    const tookMs = await msUntil('the tunnel resolvers back', () => nameservers().join() === TUNNEL_DNS);
    await msUntil('the heal recorded', () => engine.healSummary().count > before, 1_000); // recorded once the write is done
    process.stdout.write(`dns self-heal (linux, renamed over): tunnel resolvers back ${tookMs} ms after the rewrite\n`);
    expect(tookMs).toBeLessThan(2_000);
    expect((await lab.host.run(['ip', 'route', 'show'])).stdout).toBe(routesBefore); // no routing change anywhere
    expect(engine.healSummary()).toMatchObject({
      count: before + 1,
      last: { what: 'dns', detail: `${resolvConf} (was ${CAFE_DNS})`, trigger: `file event: rename ${resolvConf}` },
    });
    expect(readFileSync(resolvConf, 'utf8')).toMatch(/^search example\.org$/m); // the search domain kept
  });

  it('rewritten in place (truncated and written): back within 2 s too', async () => {
    await sleep(500); // the previous heal's own write heard and found fine
    const before = engine.healSummary().count;
    writeFileSync(resolvConf, `nameserver ${CAFE_DNS}\n`);
    const tookMs = await msUntil('the tunnel resolvers back', () => nameservers().join() === TUNNEL_DNS);
    await msUntil('the heal recorded', () => engine.healSummary().count > before, 1_000); // recorded once the write is done
    process.stdout.write(`dns self-heal (linux, in place): tunnel resolvers back ${tookMs} ms after the rewrite\n`);
    expect(tookMs).toBeLessThan(2_000);
    expect(engine.healSummary()).toMatchObject({ count: before + 1, last: { what: 'dns', trigger: `file event: change ${resolvConf}` } });
    // Its own write (a rename) is heard once more and found fine: no heal loop.
    await sleep(600);
    expect(engine.healSummary().count).toBe(before + 1);
  });
});
