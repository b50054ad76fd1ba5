/**
 * LinuxDriver.readRoutingTable: one read of both families (the very commands discoverUplink
 * runs), the read-back readRoutes gives, and a fingerprint that ignores our routes and changes
 * with anything discover depends on. Outputs are the captured `ip -j route` fixtures.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuleRunner, SharedReadRunner } from '@wgctl/runner';
import { LinuxDriver } from '../linux';

const fixtures = join(__dirname, '../../../../../libs/parsers/src/linux/__fixtures__');
const V4 = readFileSync(join(fixtures, 'ip-route-main.json'), 'utf8');
const V6 = readFileSync(join(fixtures, 'ip-6-route-main.json'), 'utf8');
/** Ours in the fixture: the pin 203.0.113.10 and 0.0.0.0/1 (v4), ::/1 (v6). */
const OURS = ['203.0.113.10/32', '0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1'];

function tables(v4: string, v6 = V6): RuleRunner {
  return new RuleRunner([
    { match: (a) => a.join(' ') === 'ip -j route show table main', reply: { stdout: v4 } },
    { match: (a) => a.join(' ') === 'ip -j -6 route show table main', reply: { stdout: v6 } },
    { match: (a) => a.join(' ') === 'ip -j addr show', reply: { stdout: '[]' } },
  ]);
}

const withRoutes = (routes: object[], base = V4) => JSON.stringify([...(JSON.parse(base) as object[]), ...routes]);
const withoutDestination = (dst: string, base = V4) => JSON.stringify((JSON.parse(base) as { dst: string }[]).filter((r) => r.dst !== dst));

describe('LinuxDriver.readRoutingTable', () => {
  const driver = new LinuxDriver();
  const fingerprint = async (v4: string, v6?: string) => (await driver.readRoutingTable(tables(v4, v6))).fingerprint(OURS);

  it('reads both families once, shared with discoverUplink, and reads routes back as readRoutes does', async () => {
    const run = tables(V4);
    const shared = new SharedReadRunner(run);
    const [table, uplink] = await Promise.all([driver.readRoutingTable(shared), driver.discoverUplink(shared, { address: false })]);
    expect(run.calls.map((a) => a.join(' '))).toEqual(['ip -j route show table main', 'ip -j -6 route show table main']);
    expect(uplink).toMatchObject({ interface: 'wtmx0', gateway: '192.0.2.1', gateway6: 'fe80::1' });
    const wanted = [
      { destination: '203.0.113.10/32', gateway: '192.0.2.1', interface: 'wtmx0' },
      { destination: '128.0.0.0/1', gateway: '192.0.2.130', interface: 'wtmv0' },
      { destination: '::/1', gateway: '2001:db8:a::1', interface: 'wtmx0' },
    ];
    expect(table.readback(wanted)).toEqual(await driver.readRoutes(tables(V4), wanted));
    expect(table.readback(wanted).map((r) => r.present)).toEqual([true, false, true]);
  });

  it('fingerprints every route but ours: ours come and go unseen; a default route, an interface route or a metric change it', async () => {
    const before = await fingerprint(V4);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    // Ours: the pin gone, a split route added — the same.
    expect(await fingerprint(withoutDestination('203.0.113.10'))).toBe(before);
    expect(await fingerprint(withRoutes([{ dst: '128.0.0.0/1', gateway: '192.0.2.130', dev: 'wtmv0', flags: [] }]))).toBe(before);
    expect(await fingerprint(V4, withoutDestination('::/1', V6))).toBe(before);
    // Anything else: another.
    expect(await fingerprint(withoutDestination('default'))).not.toBe(before);
    expect(await fingerprint(withoutDestination('192.0.2.0/26'))).not.toBe(before);
    expect(await fingerprint(withRoutes([{ dst: '192.0.2.128/26', dev: 'wtmv0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.129', flags: [] }]))).not.toBe(before);
    expect(await fingerprint(V4.replace('"metric":600', '"metric":50'))).not.toBe(before);
    expect(await fingerprint(V4, withoutDestination('2001:db8:a::/64', V6))).not.toBe(before);
  });
});
