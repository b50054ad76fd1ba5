/**
 * Every file in __fixtures__ (real macOS outputs) goes through the parser of its kind, and the
 * assertions state what the capture really says (gateways, interfaces, tokens…).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  NetworksetupUnknownServiceError,
  ParseError,
  classifyPfRelease,
  classifyRouteChange,
  classifyRouteMonitorMessage,
  findDefaultGateway,
  findIfconfigInterfaceForAddress,
  networksetupError,
  normalizePfRule,
  normalizePfRuleset,
  parseAdditionalRoutes,
  parseDnsServers,
  parseIfconfig,
  parseNetstatRoutes,
  parseNetworkServices,
  parsePfAnchors,
  parsePfEnableOutput,
  parsePfInfo,
  parsePfReferences,
  parsePfRules,
  parsePfSyntaxErrors,
  parseRouteGet,
  parseRouteMonitor,
  parseScutilNwi,
  parseSearchDomains,
  pfRulesReferenceAnchor,
} from '@wgctl/parsers';
import { FIXTURE_DIR, fixture, fixtureNames, sharedFixtureDir, transcript, withoutAnnotations } from './fixture-helpers';

const checks: Record<string, (text: string) => void> = {
  // ---------------------------------------------------------------- ifconfig
  'ifconfig-bridge100-utm-vmnet.txt': (text) => {
    const [bridge] = parseIfconfig(text);
    expect(bridge.name).toBe('bridge100');
    expect(bridge.up).toBe(true);
    expect(bridge.mtu).toBe(1500);
    expect(bridge.inet).toEqual([{ address: '192.168.64.1', prefixLength: 24, netmask: '255.255.255.0', broadcast: '192.168.64.255' }]);
    expect(bridge.inet6.map((a) => [a.address, a.scope, a.prefixLength, a.flags])).toEqual([
      ['fe80::6c7e:67ff:feeb:5b64', 'bridge100', 64, []],
      ['fdc4:f46c:bb17:931b:1099:c71:e430:9090', undefined, 64, ['autoconf', 'secured']],
    ]);
    expect(bridge.members.map((m) => m.name)).toEqual(['vmenet0', 'vmenet1']);
    expect(bridge.status).toBe('active');
    // The VM (192.168.64.2 on UTM's shared network) sits behind bridge100.
    expect(findIfconfigInterfaceForAddress(parseIfconfig(text), '192.168.64.2')?.interface.name).toBe('bridge100');
  },
  'ifconfig-en0-ventura-tp.txt': (text) => {
    const [en0] = parseIfconfig(text);
    expect(en0.name).toBe('en0');
    expect(en0.inet).toEqual([{ address: '10.33.16.202', prefixLength: 22, netmask: '255.255.252.0', broadcast: '10.33.19.255' }]);
    expect(en0.ether).toBe('74:8f:3c:be:6e:b6');
    expect(en0.inet6).toEqual([{ address: 'fe80::42e:fb9c:7a0c:781a', scope: 'en0', prefixLength: 64, flags: ['secured'], scopeId: 11 }]);
    expect(en0.options).toContain('CHANNEL_IO');
    expect(en0.status).toBe('active');
  },
  'ifconfig-lo0-en-mojave-evidence-pack.txt': (text) => {
    const all = parseIfconfig(text);
    expect(all.map((i) => i.name)).toEqual(['lo0', 'gif0', 'stf0', 'en0', 'en1']);
    const [lo0, gif0, stf0, en0, en1] = all;
    expect(lo0.mtu).toBe(16384);
    expect(lo0.inet[0]).toMatchObject({ address: '127.0.0.1', prefixLength: 8 });
    expect(lo0.inet6.map((a) => a.address)).toEqual(['::1', 'fe80::1']);
    expect(gif0.up).toBe(false);
    expect(stf0.flags).toEqual([]);
    expect(en0.status).toBe('inactive');
    expect(en0.inet).toEqual([]);
    expect(en1.inet[0]).toMatchObject({ address: '192.168.1.98', prefixLength: 24 });
    expect(en1.inet6).toHaveLength(6);
    expect(en1.inet6.filter((a) => a.flags.includes('temporary')).map((a) => a.address)).toEqual([
      '2603:6010:7c00:4328:6d73:7756:449d:ef44',
      'fd00:7437:5f96:ab30:592f:e2b6:9959:d8d',
    ]);
    // Loopback is never "the interface facing" an address, even one in 127/8.
    expect(findIfconfigInterfaceForAddress(all, '127.0.0.2')).toBeNull();
    expect(findIfconfigInterfaceForAddress(all, '192.168.1.1')?.interface.name).toBe('en1');
  },
  'ifconfig-vnic0-parallels-legacy.txt': (text) => {
    const all = parseIfconfig(text);
    expect(all.map((i) => [i.name, i.inet[0].address, i.inet[0].prefixLength, i.media, i.status])).toEqual([
      ['vnic0', '10.211.55.2', 24, 'autoselect', 'active'],
      ['vnic1', '10.37.129.2', 24, 'autoselect', 'active'],
    ]);
    const facing = findIfconfigInterfaceForAddress(all, '10.211.55.5');
    expect([facing?.interface.name, facing?.inet.address]).toEqual(['vnic0', '10.211.55.2']);
  },

  // ---------------------------------------------------------------- netstat
  'netstat-r-catalina-real-world-systems-excerpt.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes).toHaveLength(14);
    expect(routes.every((r) => r.family === 'inet' && r.refs === undefined)).toBe(true);
    const byText = (t: string) => routes.find((r) => r.destinationText === t)!;
    expect(byText('127').destination).toBe('127.0.0.0/8');
    expect(byText('169.254')).toMatchObject({ destination: '169.254.0.0/16', expire: 'expired' });
    expect(byText('224.0.0/4').destination).toBe('224.0.0.0/4');
    expect(byText('localhost').destination).toBeNull(); // names: netstat without -n
    expect(byText('germansfios_g1100.')).toMatchObject({ gateway: { kind: 'mac', mac: '20:c0:47:c2:a8:a3' }, expire: 1181 });
    expect(byText('default').gateway).toEqual({ kind: 'name', text: 'germansfios_g1100.' });
    // A host name is not a usable next hop: without -n there is no default gateway to pin to.
    expect(findDefaultGateway(routes, 'inet')).toBeNull();
  },
  'netstat-rn-bigsur-11.3-default-hatenablog.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatchObject({ destination: '0.0.0.0/0', flags: ['U', 'G', 'S', 'c', 'g'], netif: 'en0', scoped: false });
    expect(routes[0].refs).toBeUndefined();
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '192.168.0.1', interface: 'en0', source: 'unscoped' });
  },
  'netstat-rn-grep-default-monterey-or-ventura-2023-wg-blog.txt': (text) => {
    const [scopedCase, normalCase] = text.split('# (b) normal:\n').map(withoutAnnotations);
    const scoped = parseNetstatRoutes(scopedCase);
    expect(scoped[0]).toMatchObject({ family: 'inet', scoped: true, netif: 'en1' });
    // The WireGuard app made the physical default interface-scoped: fall back to it, and say so.
    expect(findDefaultGateway(scoped, 'inet')).toMatchObject({ gateway: '192.168.76.1', interface: 'en1', source: 'scoped-fallback' });
    expect(findDefaultGateway(scoped, 'inet')?.displacedBy).toBeUndefined();
    expect(findDefaultGateway(parseNetstatRoutes(normalCase), 'inet')).toMatchObject({ gateway: '192.168.76.1', source: 'unscoped' });
  },
  'netstat-rn-grep-default-ventura-ugscg-tp.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes.map((r) => [r.family, r.gateway.text, r.netif, r.scoped])).toEqual([
      ['inet', '10.33.19.254', 'en0', false],
      ['inet6', 'fe80::%utun0', 'utun0', true],
      ['inet6', 'fe80::%utun1', 'utun1', true],
      ['inet6', 'fe80::%utun2', 'utun2', true],
    ]);
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '10.33.19.254', interface: 'en0' });
    // The system's utun defaults are not an IPv6 uplink.
    expect(findDefaultGateway(routes, 'inet6')).toBeNull();
  },
  'netstat-rn-inet6-openwrt-blog-excerpt.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes).toHaveLength(8);
    expect(routes.every((r) => r.family === 'inet6')).toBe(true);
    expect(findDefaultGateway(routes, 'inet6')).toMatchObject({ gateway: 'fe80::e6f4:c6ff:fee9:d5a%en0', interface: 'en0' });
    expect(findDefaultGateway(routes, 'inet')).toBeNull();
    const lo = routes.find((r) => r.destinationText === 'fe80::%lo0/64')!;
    expect(lo).toMatchObject({ destination: 'fe80::/64', destinationScope: 'lo0', scoped: true });
    // The author masked the prefix (2001:xxxx:…): not an address, kept as text.
    expect(routes.filter((r) => r.destination === null)).toHaveLength(5);
    expect(routes.find((r) => r.destinationText === '::1')?.destination).toBe('::1/128');
  },
  'netstat-rn-mojave-apple-stackexchange-336888.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes).toHaveLength(15);
    const byText = (t: string) => routes.find((r) => r.destinationText === t)!;
    expect(byText('default')).toMatchObject({ refs: 20, use: 16, netif: 'en0' });
    expect(byText('172.16.111/24')).toMatchObject({ destination: '172.16.111.0/24', netif: 'vmnet1', gateway: { kind: 'link', index: 11 } });
    expect(byText('192.168.220')).toMatchObject({ destination: '192.168.220.0/24', netif: 'vmnet8' });
    expect(byText('127.0.0.1').use).toBe(2734893);
    expect(byText('10.10.10.107').expire).toBe(820);
    expect(byText('255.255.255.255/32').destination).toBe('255.255.255.255/32');
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '10.10.10.1', interface: 'en0', source: 'unscoped' });
  },
  'netstat-rn-mojave-with-inet6-evidence-pack.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes.filter((r) => r.family === 'inet')).toHaveLength(21);
    expect(routes.filter((r) => r.family === 'inet6')).toHaveLength(12);
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '192.168.1.1', interface: 'en1' });
    expect(findDefaultGateway(routes, 'inet6')).toMatchObject({ gateway: 'fe80::7637:5fff:fe96:ab30%en1', interface: 'en1', source: 'unscoped' });
    expect(routes.find((r) => r.destinationText === '192.168.1.98' && r.netif === 'lo0')?.gateway).toMatchObject({ kind: 'mac', mac: '90:fd:61:eb:4f:04' });
  },
  'netstat-rn-pre-bigsur-default-hatenablog.txt': (text) => {
    const [route] = parseNetstatRoutes(text);
    expect(route).toMatchObject({ destination: '0.0.0.0/0', refs: 0, use: 0, netif: 'en0', flags: ['U', 'G', 'S', 'c'] });
  },
  'netstat-rn-two-defaults-mojave-2020-blog.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes.map((r) => [r.gateway.text, r.netif, r.scoped])).toEqual([
      ['172.20.10.1', 'en5', false],
      ['11.136.160.254', 'en1', true],
    ]);
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({ gateway: '172.20.10.1', interface: 'en5', source: 'unscoped' });
  },
  'netstat-rn-vpn-default-scoped-jackpal-gateway.txt': (text) => {
    const routes = parseNetstatRoutes(text);
    expect(routes[0].gateway).toEqual({ kind: 'link', text: 'link#17', index: 17 });
    expect(findDefaultGateway(routes, 'inet')).toMatchObject({
      gateway: '192.168.1.254',
      interface: 'en0',
      source: 'scoped-fallback',
      displacedBy: { interface: 'utun3', gateway: 'link#17' },
    });
  },
  'netstat-rn-wg-routes-mrash-condensed.txt': (text) => {
    // The README quotes rows (whitespace condensed); the source comments keep raw columns.
    const quoted = [...text.matchAll(/active: '([^']*)'/g)].map((m) => m[1]).join('\n');
    const routes = parseNetstatRoutes(quoted);
    expect(routes.map((r) => [r.destination, r.gateway.text, r.netif, r.refs])).toEqual([
      ['0.0.0.0/1', '10.211.44.31', 'vnic0', 50],
      ['128.0.0.0/1', '10.211.44.31', 'vnic0', 1],
      ['1.1.1.1/32', '192.168.0.1', 'en0', 0],
    ]);
    const raw = [...text.matchAll(/^### (.*)$/gm)].map((m) => m[1]);
    // Its third row was cut mid-Netif ("en") by the author: refused, not misread.
    expect(() => parseNetstatRoutes(raw[2])).toThrow(/Netif "en"/);
    const table = parseNetstatRoutes([raw[0], raw[1], raw[3]].join('\n'));
    // 0/1 sorts before default; it must not be mistaken for the default route.
    expect(table[0].isDefault).toBe(false);
    expect(findDefaultGateway(table, 'inet')).toMatchObject({ gateway: '192.168.0.1', interface: 'en0', source: 'unscoped' });
  },

  // ---------------------------------------------------------------- networksetup
  'networksetup-getadditionalroutes-2020-blog.txt': (text) => {
    expect(parseAdditionalRoutes(text)).toEqual([]);
  },
  'networksetup-getdnsservers-empty.txt': (text) => {
    expect(parseDnsServers(text)).toEqual([]);
  },
  'networksetup-listallnetworkservices-2020-blog.txt': (text) => {
    expect(parseNetworkServices(text)).toEqual(
      ['802.11n NIC', 'Wi-Fi', 'Ethernet', 'FireWire', 'Bluetooth PAN', 'Thunderbolt Bridge', 'iPhone USB', 'Parallels Shared #0'].map((name) => ({
        name,
        enabled: true,
      })),
    );
  },
  'networksetup-unknown-service-error.txt': (text) => {
    expect(() => parseDnsServers(text)).toThrow(NetworksetupUnknownServiceError);
    expect(() => parseNetworkServices(text)).toThrow(NetworksetupUnknownServiceError);
    let caught: unknown;
    try {
      parseSearchDomains(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ParseError);
    expect((caught as NetworksetupUnknownServiceError).service).toBe('NoSuch');
    expect(networksetupError(text, '')).toBe('NoSuch is not a recognized network service.');
  },

  // ---------------------------------------------------------------- pf
  'pf-conf-default-macos.txt': (text) => {
    const normalised = normalizePfRuleset(text);
    // What `pfctl -sr` shows after boot is exactly the scrub-anchor and anchor lines of pf.conf.
    const live = parsePfRules(fixture('pfctl-s-rules-main-default-apple-stackexchange-221058.txt')).map((r) => r.text);
    expect(normalised.filter((r) => /^(scrub-anchor|anchor) /.test(r))).toEqual(live);
    expect(normalised).toContain('load anchor "com.apple" from "/etc/pf.anchors/com.apple"');
  },
  'pfctl-E-X-results-macos26-capture.json': (text) => {
    const capture = JSON.parse(text) as Record<string, { code: number; stdout: string; stderr: string }>;
    const token = parsePfEnableOutput(capture['pfctl -E'].stderr).token;
    expect(token).toBe('11012949885072952621');
    expect(BigInt(token) > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    const release = (key: string) => classifyPfRelease(capture[key].stdout, capture[key].stderr);
    expect(release('pfctl -X <stale> while pf disabled')).toMatchObject({ outcome: 'already-released', reason: 'pf-not-enabled' });
    expect(release('pfctl -X <stale> while pf enabled')).toMatchObject({ outcome: 'already-released', reason: 'token-invalid' });
    expect(release('pfctl -X <valid, last reference>')).toMatchObject({ outcome: 'released', pfDisabled: true });
    expect(release('pfctl -X <valid, others remain>')).toMatchObject({ outcome: 'released', pfDisabled: false, remainingReferences: 1 });
  },
  'pfctl-F-all-and-f-warning-ettercap-pr641.txt': (text) => {
    const result = parsePfSyntaxErrors(text);
    expect(result).toMatchObject({ errors: [], rulesNotLoaded: false, other: [] });
    expect(result.info).toEqual([
      'rules cleared',
      'nat cleared',
      'dummynet cleared',
      '0 tables deleted.',
      '0 states cleared',
      'source tracking entries cleared',
      'pf: statistics cleared',
      'pf: interface flags reset',
    ]);
  },
  'pfctl-X-switchyard-log.txt': (text) => {
    const logged = /Releasing pf: (.*)$/.exec(text.trim())![1].split('; ').join('\n');
    expect(classifyPfRelease('', logged)).toMatchObject({ outcome: 'released', remainingReferences: 1, pfDisabled: false });
  },
  'pfctl-a-anchor-sr-normalization-pfctl-rs-tests.txt': (text) => {
    const body = withoutAnnotations(text);
    const rules = parsePfRules(body);
    expect(rules).toHaveLength(25);
    expect(rules.map((r) => r.action)).toContain('no nat');
    // Printed rules are fixed points of the normaliser (pfctl would print them unchanged).
    for (const rule of rules) expect(normalizePfRule(rule.text)).toEqual([rule.text]);
  },
  'pfctl-a-wg-pf-rules-sr-mrash-readme.txt': (text) => {
    const rules = parsePfRules(text).map((r) => r.text);
    expect(rules).toHaveLength(5);
    expect(rules).toEqual(normalizePfRuleset(fixture('pfctl-wg-pf-rules-source-mrash.conf')));
  },
  'pfctl-killswitch-load-and-disable-vpn-kill-switch-issue12.txt': (text) => {
    const [loaded, restored] = text.split(/^# sudo killswitch -d.*$/m).map(withoutAnnotations);
    const rules = parsePfRules(loaded);
    expect(rules).toHaveLength(10);
    expect(rules[0].text).toBe('block drop all');
    for (const rule of rules) expect(normalizePfRule(rule.text)).toEqual([rule.text]);
    const main = parsePfRules(restored);
    expect(main.map((r) => r.text)).toEqual(['scrub-anchor "com.apple/*" all fragment reassemble', 'anchor "com.apple/*" all']);
    expect(pfRulesReferenceAnchor(main, 'com.apple/*')).toBe(true);
  },
  'pfctl-killswitch-rules-vpn-kill-switch-issue19.txt': (text) => {
    const rules = parsePfRules(text);
    expect(rules).toHaveLength(11);
    expect(rules[1].text).toBe('block drop out quick inet6 all');
    for (const rule of rules) expect(normalizePfRule(rule.text)).toEqual([rule.text]);
    // Written `proto {tcp, udp}`, printed as one rule per protocol, tcp first.
    expect(normalizePfRule('pass on en2 inet proto {tcp, udp} to 64.145.93.14')).toEqual([rules[8].text, rules[9].text]);
  },
  'pfctl-mullvad-anchor-rules-issues-7677-7701.txt': (text) => {
    const rules = parsePfRules(withoutAnnotations(text));
    expect(rules.filter((r) => r.action === 'no nat')).toHaveLength(17);
    expect(rules.find((r) => r.action === 'rdr')?.text).toBe('rdr on lo0 proto udp from any to any port = 53 -> any port 52696');
    const filters = rules.filter((r) => r.action === 'pass');
    expect(filters.map((r) => r.text)).toEqual(['pass out quick route-to (utun4 any) all flags S/SA keep state', 'pass quick on utun4 all flags S/SA keep state']);
    for (const rule of filters) expect(normalizePfRule(rule.text)).toEqual([rule.text]);
  },
  'pfctl-osx-blog-info-references-anchors.txt': (text) => {
    const steps = transcript(text);
    expect(steps).toHaveLength(9);
    expect(parsePfInfo(steps[0].output)).toMatchObject({ enabled: false, debug: 'Urgent' });
    expect(parsePfInfo(steps[1].output, new Date('2020-01-01T00:02:03Z'))).toMatchObject({
      enabled: true,
      enabledForSeconds: 123,
      since: '2020-01-01T00:00:00.000Z',
    });
    expect(parsePfReferences(steps[2].output)).toEqual([
      { pid: 618, processName: 'socketfilterfw', token: '9813589183660731843', age: '0 days 00:03:31', ageSeconds: 211 },
    ]);
    expect(parsePfRules(steps[3].output).map((r) => r.anchor)).toEqual(['200.AirDrop/*', '250.ApplicationFirewall/*']);
    expect(parsePfRules(steps[4].output).map((r) => r.action)).toEqual(['scrub', 'block', 'block', 'block']);
    // pfctl cannot list a wildcard anchor: that output is an error, not an empty ruleset.
    expect(() => parsePfRules(steps[5].output)).toThrow(/DIOCGETRULES: Invalid argument/);
    expect(parsePfAnchors(steps[6].output)).toEqual(['com.apple', 'com.apple/200.AirDrop', 'com.apple/200.AirDrop/Bonjour', 'com.apple/250.ApplicationFirewall']);
    const bonjour = parsePfRules(steps[7].output);
    expect(bonjour.map((r) => r.text)).toEqual(['pass in on p2p0 inet6 proto udp from any to any port = 5353 keep state', 'pass out on p2p0 proto tcp all flags any keep state']);
    for (const rule of bonjour) expect(normalizePfRule(rule.text)).toEqual([rule.text]);
    const main = parsePfRules(steps[8].output);
    expect(main).toHaveLength(4);
    expect(pfRulesReferenceAnchor(main, 'com.apple/*')).toBe(true);
    expect(pfRulesReferenceAnchor(main, 'com.wgctl')).toBe(false);
  },
  'pfctl-s-info-disabled-macos26-capture.txt': (text) => {
    const info = parsePfInfo(text, new Date());
    expect(info.enabled).toBe(false);
    expect(info.enabledForSeconds).toBeUndefined();
    expect(info.since).toBeUndefined();
    expect(info.sections['State Table']['current entries']).toBe(0);
    expect(Object.keys(info.sections.Counters)).toHaveLength(17);
  },
  'pfctl-s-info-enabled-macos26-capture.txt': (text) => {
    expect(parsePfInfo(text)).toMatchObject({ enabled: true, enabledForSeconds: 0, debug: 'Urgent' });
  },
  'pfctl-s-info-status-sunknudsen.txt': (text) => {
    const output = text.split('\n').slice(1).join('\n'); // drop the "$ sudo pfctl -s info | grep" line
    expect(parsePfInfo(output)).toMatchObject({ enabled: true, enabledForSeconds: 13 * 3600 + 2 * 60 + 35 });
  },
  'pfctl-s-references-none-macos26-capture.txt': (text) => {
    expect(parsePfReferences(text)).toEqual([]);
  },
  'pfctl-s-references-sshuttle-pr4.txt': (text) => {
    expect(parsePfReferences(text)).toEqual([{ pid: 5191, processName: 'pfctl', token: '10051342025653898869', age: '0 days 00:00:07', ageSeconds: 7 }]);
  },
  'pfctl-s-references-two-macos26-capture.txt': (text) => {
    expect(parsePfReferences(text).map((r) => [r.pid, r.token])).toEqual([
      [4077, '9084387343160548126'],
      [4063, '15053025338191571182'],
    ]);
  },
  'pfctl-s-rules-main-default-apple-stackexchange-221058.txt': (text) => {
    const rules = parsePfRules(text);
    expect(rules.map((r) => [r.action, r.anchor])).toEqual([
      ['scrub-anchor', 'com.apple/*'],
      ['anchor', 'com.apple/*'],
    ]);
    expect(pfRulesReferenceAnchor(rules, 'com.wgctl')).toBe(false);
  },
  'pfctl-si-sshuttle-pr4.txt': (text) => {
    const output = text.split('\n').slice(1).join('\n'); // drop the shell prompt line
    expect(parsePfInfo(output)).toMatchObject({ enabled: true, enabledForSeconds: 303 });
  },
  'pfctl-strings-macos-binary.txt': (text) => {
    // The format strings of the real binary, filled in, go through the parsers that read them.
    expect(text).toContain('pf enabled\\nToken : %llu\\n');
    expect(parsePfEnableOutput('pf enabled\nToken : 18446744073709551615\n').token).toBe('18446744073709551615');
    expect(text).toContain('disable request successful. %llu more pf enable reference(s) remaining, pf still enabled.');
    expect(classifyPfRelease('', 'disable request successful. 3 more pf enable reference(s) remaining, pf still enabled.\n').remainingReferences).toBe(3);
    expect(text).toContain('pf disabled\\n');
    expect(classifyPfRelease('', 'pf disabled\n')).toMatchObject({ outcome: 'released', pfDisabled: true });
    expect(text).toContain('Syntax error in config file: pf rules not loaded');
    expect(parsePfSyntaxErrors('pfctl: Syntax error in config file: pf rules not loaded\n').rulesNotLoaded).toBe(true);
    expect(text).toContain('%d states cleared');
    expect(parsePfSyntaxErrors('12 states cleared\n').info).toEqual(['12 states cleared']);
  },
  'pfctl-wg-pf-rules-source-mrash.conf': (text) => {
    expect(normalizePfRuleset(text)).toEqual([
      'block drop in log on en0 all',
      'block drop out log on en0 all',
      'pass quick on en0 inet proto tcp from any port 67:68 to any port 67:68 flags S/SA keep state',
      'pass quick on en0 inet proto udp from any port 67:68 to any port 67:68 keep state',
      'pass out quick on en0 inet proto udp from any to 1.1.1.1 port = 30003 keep state',
    ]);
  },

  // ---------------------------------------------------------------- route
  'route-add-delete-errors-mrash.txt': (text) => {
    const lines = text.split('\n');
    expect(classifyRouteChange(lines[2], lines[1])).toEqual({ outcome: 'exists', message: 'File exists' });
    expect(classifyRouteChange(lines[5], lines[4])).toEqual({ outcome: 'not-in-table', message: 'not in table' });
    // The stdout line alone says the same (route exits 0 either way).
    expect(classifyRouteChange(lines[2], '').outcome).toBe('exists');
  },
  'route-add-verbose-colima-blog.txt': (text) => {
    const lines = text.trimEnd().split('\n');
    expect(classifyRouteChange(lines[lines.length - 1], '')).toEqual({ outcome: 'ok', message: '' });
    const [message] = parseRouteMonitor(lines.slice(0, -1).join('\n'));
    expect(message).toMatchObject({ type: 'RTM_ADD', pid: 0, seq: 1, flags: ['UP', 'GATEWAY', 'STATIC'] });
    expect(message.addresses).toEqual({ DST: '172.18.0.0', GATEWAY: '192.168.64.2', NETMASK: '255.255.0.0' });
    expect(classifyRouteMonitorMessage(message).kind).toBe('other');
    // route's own "add net …" line is not monitor output.
    expect(() => parseRouteMonitor(text)).toThrow(ParseError);
  },
  'route-get-default-jackpal-gateway-test.txt': (text) => {
    expect(parseRouteGet(text)).toMatchObject({
      destination: '0.0.0.0/0',
      isDefault: true,
      isSplitRoute: false,
      gateway: '172.16.32.1',
      interface: 'en0',
      flags: ['UP', 'GATEWAY', 'DONE', 'STATIC', 'PRCLONING'],
      metrics: { mtu: 1500, expire: 0 },
    });
  },
  'route-get-host-real-world-systems.txt': (text) => {
    expect(parseRouteGet(text)).toMatchObject({ routeTo: '192.0.43.10', isDefault: true, gateway: '192.168.1.1', interface: 'en1' });
  },
  'route-monitor-delete-default-2023-wg-blog.txt': (text) => {
    const [message] = parseRouteMonitor(text);
    expect(message).toMatchObject({ type: 'RTM_DELETE', pid: 94, errno: 0, ifp: { name: 'en1' } });
    expect(message.flags).toContain('CONDEMNED');
    expect(classifyRouteMonitorMessage(message)).toMatchObject({ kind: 'default-changed', family: 'inet' });
  },
  'route-monitor-ifinfo-2020-real-world-systems.txt': (text) => {
    const messages = parseRouteMonitor(text);
    expect(messages.map((m) => [m.type, m.ifIndex, m.flags.includes('PPROMISC')])).toEqual([
      ['RTM_IFINFO', 5, true],
      ['RTM_IFINFO', 5, false],
      ['RTM_IFINFO', 12, true],
      ['RTM_IFINFO', 12, false],
      ['RTM_IFINFO', 1, true],
      ['RTM_IFINFO', 1, false],
    ]);
    expect(messages.every((m) => classifyRouteMonitorMessage(m).kind === 'link-changed')).toBe(true);
  },
  'route-monitor-mullvad-2020-comment.txt': (text) => {
    const [message] = parseRouteMonitor(text);
    // The header was wrapped before "flags:"; IFP is empty (double space).
    expect(message).toMatchObject({ errno: 3, ifscope: 23, flags: ['UP', 'GATEWAY', 'STATIC', 'IFSCOPE'] });
    expect(message.addresses).toEqual({ DST: 'default', GATEWAY: '192.168.44.1', NETMASK: 'default', IFP: '', IFA: '192.168.44.90' });
    // errno 3 (ESRCH): the delete failed, nothing changed.
    expect(classifyRouteMonitorMessage(message)).toMatchObject({ kind: 'other', reason: 'failed request (errno 3)' });
  },
  'route-monitor-service-reorder-2020-blog.txt': (text) => {
    const messages = parseRouteMonitor(text);
    expect(messages.map((m) => [m.type, m.addresses.GATEWAY, m.ifscope ?? null, classifyRouteMonitorMessage(m).kind])).toEqual([
      ['RTM_DELETE', '172.20.10.1', null, 'default-changed'],
      ['RTM_DELETE', '11.136.160.254', 6, 'default-changed'],
      ['RTM_ADD', '11.136.160.254', null, 'default-changed'],
      ['RTM_ADD', '172.20.10.1', 5, 'other'], // a scoped add: every interface gets one
    ]);
    expect(messages[0]).toMatchObject({ size: 164, receivedAt: 'Tue May 19 12:20:05 2020', ifp: { name: 'en5', linkAddress: '40.a5.ef.41.9f.fb' } });
  },

  // ---------------------------------------------------------------- scutil
  'scutil-nwi-dualstack-blog.txt': (text) => {
    expect(parseScutilNwi(text)).toEqual({
      ipv4: [{ interface: 'en0', flags: ['IPv4', 'IPv6', 'DNS'], address: '192.168.0.106', reach: '0x00000002 (Reachable)' }],
      ipv6: [{ interface: 'en0', flags: ['IPv4', 'IPv6', 'DNS'], address: '2602:ae:15a4:8001:424:837a:870:6095', reach: '0x00000002 (Reachable)' }],
      interfaces: ['en0'],
    });
  },
};

describe('macOS fixtures', () => {
  it('has a check for every fixture file, and SOURCES.md names each one', () => {
    expect(fixtureNames()).toEqual(Object.keys(checks).sort());
    const sources = fixture('SOURCES.md');
    for (const name of fixtureNames()) expect(sources).toContain(name);
  });

  const shared = sharedFixtureDir();
  (shared ? it : it.skip)('vendored copies match shared/fixtures/macos', () => {
    const names = readdirSync(shared!).sort();
    expect(readdirSync(FIXTURE_DIR).sort()).toEqual(names);
    for (const name of names) expect(readFileSync(join(FIXTURE_DIR, name), 'utf8')).toBe(readFileSync(join(shared!, name), 'utf8'));
  });

  for (const [name, check] of Object.entries(checks)) {
    it(name, () => check(fixture(name)));
  }
});
