/**
 * The real engine + the real DarwinDriver over a ScriptedRunner: the exact argv sequences
 * (and the stdin fed to pfctl -R and to tee) of Up, Up again, Down, Down after a reboot and
 * roaming, from a realistic macOS 14 (Sonoma) state. No Mac needed.
 *
 * Outputs are real macOS captures (libs/parsers/src/darwin/__fixtures__) where one exists
 * for the state; the rest is written out in the exact layout the macOS tools print
 * (network_cmds 667+ netstat columns, ifconfig with TABs, route's kernel-error text on
 * stdout with exit 0, pfctl's ALTQ chatter on stderr), with documentation addresses:
 *   Wi-Fi en0 192.0.2.10/24 via 192.0.2.1 (later 192.0.2.140/25 via 192.0.2.129),
 *   Ethernet en1 203.0.113.130/25 via 203.0.113.129,
 *   Parallels shared network bridge100 198.51.100.1/24, the VM at 198.51.100.5,
 *   WireGuard server 203.0.113.7:51820, DNS through the tunnel 198.51.100.65.
 *
 * Time is Jest's fake clock (the engine reads it through `now` and debounces with setTimeout);
 * everything the engine awaits is a microtask, so one real setImmediate lets it finish.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTransport, createLogger } from '@wgctl/logging';
import { normalizePfRuleset } from '@wgctl/parsers';
import { type ScriptedCall, type ScriptedRunner, type StepRecord, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { DarwinDriver } from '../../host/darwin';
import { MacAgentEngine } from '../engine';
import { PhasedRunner, runPhase, settleEngine } from '../../testing/phased-runner';
import { JournalStore, emptyJournal, type MacJournal, type UpIntent } from '../journal';

const FIXTURES = join(__dirname, '../../../../../libs/parsers/src/darwin/__fixtures__');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

// ------------------------------------------------------------------------------ host outputs

const STATE_DIR = '/Library/Application Support/wgctl/mac-agent';
const ANCHOR = 'com.apple/000.wgctl';
const RULES_FILE = `${STATE_DIR}/pf-com.apple_000.wgctl.conf`;
const ALTQ = 'No ALTQ support in kernel\nALTQ related functions disabled\n';
const PF_E = JSON.parse(fixture('pfctl-E-X-results-macos26-capture.json')) as Record<string, { code: number; stdout: string; stderr: string }>;
const TOKEN = '11012949885072952621'; // the token in that capture of `pfctl -E`
const PF_INFO_DISABLED = fixture('pfctl-s-info-disabled-macos26-capture.txt');
const PF_INFO_ENABLED = fixture('pfctl-s-info-enabled-macos26-capture.txt');
const PF_REFERENCES_NONE = fixture('pfctl-s-references-none-macos26-capture.txt');
const PF_REFERENCES_OURS = [
  'TOKENS:',
  'PID      Process Name                 TOKEN                    TIMESTAMP',
  `4251     pfctl                        ${TOKEN}     0 days 00:00:03`,
  '',
].join('\n');
/** The stock main ruleset (/etc/pf.conf) as `pfctl -sr` prints it; the ALTQ lines go to stderr. */
const MAIN_STOCK = fixture('pfctl-s-rules-main-default-apple-stackexchange-221058.txt').replace(ALTQ, '');
/** What an older wgctl left: its top-level anchor appended to the main ruleset. */
const MAIN_WITH_LEGACY = `${MAIN_STOCK}anchor "com.wgctl" all\n`;
const ANCHOR_MISSING = { exitCode: 1, stderr: `${ALTQ}pfctl: DIOCGETRULES: Invalid argument\n` };

/**
 * The kill switch's rules as pfctl reads them back (`pfctl -a com.apple/000.wgctl -sr`), written out by
 * hand. They hold on every interface, so they are the same whatever the uplink is.
 */
const PRINTED_RULES: string[] = [
  'pass quick on lo0 all no state',
  'pass quick on bridge100 all no state',
  'pass out quick inet proto udp from any port = 68 to 255.255.255.255 port = 67 no state',
  'pass in quick inet proto udp from any port = 67 to any port = 68 no state',
  'block drop quick inet6 all',
  'pass out quick inet proto udp from any to 203.0.113.7 port = 51820 keep state',
  'pass in quick inet proto udp from 203.0.113.7 port = 51820 to any keep state',
  'block drop in quick all',
  'block drop out quick all',
];
/** …and as the file the driver tees them into (comments aside). */
const FILE_RULES: string[] = [
  'pass quick on lo0 all no state',
  'pass quick on bridge100 all no state',
  'pass out quick inet proto udp from any port 68 to 255.255.255.255 port 67 no state',
  'pass in quick inet proto udp from any port 67 to any port 68 no state',
  'block drop quick inet6 all',
  'pass out quick inet proto udp from any to 203.0.113.7 port 51820',
  'pass in quick inet proto udp from 203.0.113.7 port 51820 to any',
  'block drop in quick all',
  'block drop out quick all',
];
const ruleLines = (file: string): string[] => file.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));

/** One `netstat -rn` row as macOS 14+ prints it: `%-18s %-18s %-10.10s %14s %6s` (IPv6: 39-wide columns). */
const v4 = (destination: string, gateway: string, flags: string, netif: string, expire = ''): string =>
  `${destination.padEnd(18)} ${gateway.padEnd(18)} ${flags.padEnd(10)} ${netif.padStart(14)} ${expire.padStart(6)}`;
const v6 = (destination: string, gateway: string, flags: string, netif: string, expire = ''): string =>
  `${destination.padEnd(39)} ${gateway.padEnd(39)} ${flags.padEnd(10)} ${netif.padStart(14)} ${expire.padStart(6)}`;

/** Wi-Fi on the first network: en0 192.0.2.10/24 via 192.0.2.1. */
const WIFI_A = {
  defaults: [v4('default', '192.0.2.1', 'UGScg', 'en0')],
  links: [
    v4('169.254', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.1/32', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.1', '0:0:5e:0:1:1', 'UHLWIir', 'en0', '1197'),
    v4('192.0.2.10/32', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.10', 'a4:83:e7:12:34:56', 'UHLWI', 'lo0'),
  ],
};
/** Another Wi-Fi network on en0: 192.0.2.140/25 via 192.0.2.129. */
const WIFI_B = {
  defaults: [v4('default', '192.0.2.129', 'UGScg', 'en0')],
  links: [
    v4('169.254', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.128/25', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.129/32', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.129', '0:0:5e:0:1:2', 'UHLWIir', 'en0', '1199'),
    v4('192.0.2.140/32', 'link#11', 'UCS', 'en0', '!'),
    v4('192.0.2.140', 'a4:83:e7:12:34:56', 'UHLWI', 'lo0'),
  ],
};
/** Ethernet en1 (203.0.113.130/25 via 203.0.113.129) became primary; Wi-Fi keeps a scoped default. */
const ETHERNET = {
  defaults: [v4('default', '203.0.113.129', 'UGScg', 'en1'), v4('default', '192.0.2.129', 'UGScIg', 'en0')],
  links: [...WIFI_B.links, v4('203.0.113.128/25', 'link#7', 'UCS', 'en1', '!'), v4('203.0.113.129', '0:0:5e:0:1:3', 'UHLWIir', 'en1', '1200')],
};

interface Ours {
  pinGateway: string;
  pinInterface: string;
}

function netstat(uplink: typeof WIFI_A, ours?: Ours): string {
  const split = (destination: string) => (ours ? [v4(destination, '198.51.100.5', 'UGSc', 'bridge100')] : []);
  return [
    'Routing tables',
    '',
    'Internet:',
    v4('Destination', 'Gateway', 'Flags', 'Netif', 'Expire'),
    ...split('0/1'),
    ...uplink.defaults,
    v4('127', '127.0.0.1', 'UCS', 'lo0'),
    v4('127.0.0.1', '127.0.0.1', 'UH', 'lo0'),
    ...split('128.0/1'),
    ...uplink.links,
    v4('198.51.100', 'link#22', 'UC', 'bridge100', '!'),
    v4('198.51.100.1', '3e:22:fb:8a:1f:64', 'UHLWI', 'lo0'),
    v4('198.51.100.5', '0:1c:42:8a:1f:e', 'UHLWI', 'bridge100', '1178'),
    ...(ours ? [v4('203.0.113.7', ours.pinGateway, 'UGHS', ours.pinInterface)] : []),
    v4('224.0.0/4', 'link#11', 'UmCS', 'en0', '!'),
    v4('224.0.0.251', '1:0:5e:0:0:fb', 'UHmLWI', 'en0'),
    v4('255.255.255.255/32', 'link#11', 'UCS', 'en0', '!'),
    '',
    'Internet6:',
    v6('Destination', 'Gateway', 'Flags', 'Netif', 'Expire'),
    v6('default', 'fe80::%utun0', 'UGcIg', 'utun0'),
    v6('default', 'fe80::%utun1', 'UGcIg', 'utun1'),
    v6('::1', '::1', 'UHL', 'lo0'),
    v6('fe80::%lo0/64', 'fe80::1%lo0', 'UcI', 'lo0'),
    v6('fe80::1%lo0', 'link#1', 'UHLI', 'lo0'),
    v6('fe80::%en0/64', 'link#11', 'UCI', 'en0'),
    v6('fe80::1c2b:3d4e:5f60:7182%en0', 'a4:83:e7:12:34:56', 'UHLI', 'lo0'),
    v6('fe80::%bridge100/64', 'link#22', 'UCI', 'bridge100'),
    v6('fe80::3c22:fbff:fe8a:1f64%bridge100', '3e:22:fb:8a:1f:64', 'UHLI', 'lo0'),
    v6('fe80::%utun0/64', 'fe80::ab3:4c2e:9d1f:5a60%utun0', 'UcI', 'utun0'),
    v6('fe80::ab3:4c2e:9d1f:5a60%utun0', 'link#18', 'UHLI', 'lo0'),
    v6('ff00::/8', '::1', 'UmCI', 'lo0'),
    v6('ff00::/8', 'link#11', 'UmCI', 'en0'),
    '',
  ].join('\n');
}

const IFCONFIG_EN0_A = [
  'en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=6460<TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>',
  '\tether a4:83:e7:12:34:56',
  '\tinet6 fe80::1c2b:3d4e:5f60:7182%en0 prefixlen 64 secured scopeid 0xb ',
  '\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  '\tmedia: autoselect',
  '\tstatus: active',
  '',
].join('\n');
const IFCONFIG_EN0_B = IFCONFIG_EN0_A.replace('inet 192.0.2.10 netmask 0xffffff00', 'inet 192.0.2.140 netmask 0xffffff80');
const IFCONFIG_EN1 = [
  'en1: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=6464<VLAN_MTU,TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>',
  '\tether 00:e0:4c:68:01:02',
  '\tinet6 fe80::18f3:a2c1:77d0:4e21%en1 prefixlen 64 secured scopeid 0x7 ',
  '\tinet 203.0.113.130 netmask 0xffffff80 broadcast 203.0.113.255',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  '\tmedia: autoselect (1000baseT <full-duplex>)',
  '\tstatus: active',
  '',
].join('\n');
/** `ifconfig` (every interface) on a MacBook with a Parallels VM on the shared network. */
const IFCONFIG_ALL = [
  'lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384',
  '\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>',
  '\tinet 127.0.0.1 netmask 0xff000000',
  '\tinet6 ::1 prefixlen 128 ',
  '\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x1 ',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  'gif0: flags=8010<POINTOPOINT,MULTICAST> mtu 1280',
  'stf0: flags=0<> mtu 1280',
  'anpi0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=400<CHANNEL_IO>',
  '\tether 36:0e:8a:5c:01:7d',
  '\tmedia: none',
  '\tstatus: inactive',
  'en2: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=460<TSO4,TSO6,CHANNEL_IO>',
  '\tether 36:0e:8a:5c:01:60',
  '\tmedia: autoselect <full-duplex>',
  '\tstatus: inactive',
  IFCONFIG_EN0_A.trimEnd(),
  'bridge0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=63<RXCSUM,TXCSUM,TSO4,TSO6>',
  '\tether 36:0e:8a:5c:01:60',
  '\tConfiguration:',
  '\t\tid 0:0:0:0:0:0 priority 0 hellotime 0 fwddelay 0',
  '\t\tmaxage 0 holdcnt 0 proto stp maxaddr 100 timeout 1200',
  '\t\troot id 0:0:0:0:0:0 priority 0 ifcost 0 port 0',
  '\t\tipfilter disabled flags 0x0',
  '\tmember: en2 flags=3<LEARNING,DISCOVER>',
  '\t        ifmaxaddr 0 port 5 priority 0 path cost 0',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  '\tmedia: <unknown type>',
  '\tstatus: inactive',
  'awdl0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=6460<TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>',
  '\tether 3a:5b:1c:7d:9e:0f',
  '\tinet6 fe80::385b:1cff:fe7d:9e0f%awdl0 prefixlen 64 scopeid 0xc ',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  '\tmedia: autoselect',
  '\tstatus: active',
  'utun0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1380',
  '\tinet6 fe80::ab3:4c2e:9d1f:5a60%utun0 prefixlen 64 scopeid 0x12 ',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  'utun1: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 2000',
  '\tinet6 fe80::5d1e:7a02:c4b9:1e33%utun1 prefixlen 64 scopeid 0x13 ',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  'bridge100: flags=8a63<UP,BROADCAST,SMART,RUNNING,ALLMULTI,SIMPLEX,MULTICAST> mtu 1500',
  '\toptions=3<RXCSUM,TXCSUM>',
  '\tether 3e:22:fb:8a:1f:64',
  '\tinet 198.51.100.1 netmask 0xffffff00 broadcast 198.51.100.255',
  '\tinet6 fe80::3c22:fbff:fe8a:1f64%bridge100 prefixlen 64 scopeid 0x16 ',
  '\tConfiguration:',
  '\t\tid 0:0:0:0:0:0 priority 0 hellotime 0 fwddelay 0',
  '\t\tmaxage 0 holdcnt 0 proto stp maxaddr 100 timeout 1200',
  '\t\troot id 0:0:0:0:0:0 priority 0 ifcost 0 port 0',
  '\t\tipfilter disabled flags 0x0',
  '\tmember: vmenet0 flags=3<LEARNING,DISCOVER>',
  '\t        ifmaxaddr 0 port 21 priority 0 path cost 0',
  '\tnd6 options=201<PERFORMNUD,DAD>',
  '\tmedia: autoselect',
  '\tstatus: active',
  'vmenet0: flags=8b63<UP,BROADCAST,SMART,RUNNING,PROMISC,ALLMULTI,SIMPLEX,MULTICAST> mtu 1500',
  '\tether 6a:91:2f:0c:44:d8',
  '\tmedia: autoselect',
  '\tstatus: active',
  '',
].join('\n');
/** `ifconfig` once Wi-Fi has roamed to network B (another address on en0). */
const IFCONFIG_ALL_B = IFCONFIG_ALL.replace(IFCONFIG_EN0_A.trimEnd(), IFCONFIG_EN0_B.trimEnd());
/** `ifconfig` once the Ethernet adapter (en1) is up too. */
const IFCONFIG_ALL_EN1 = `${IFCONFIG_ALL}${IFCONFIG_EN1}`;

const SERVICES = 'An asterisk (*) denotes that a network service is disabled.\nWi-Fi\nThunderbolt Bridge\n';
const NO_DNS_WIFI = fixture('networksetup-getdnsservers-empty.txt');
const NO_SEARCH_WIFI = "There aren't any Search Domains set on Wi-Fi.\n";

// ------------------------------------------------------------------------------- scripts

const ROUTE = ['route', '-q', '-n'];
const pfctl = (...args: string[]): string[] => ['pfctl', ...args];
const NOT_IN_TABLE = 'route: writing to routing socket: not in table\n';

const readKillSwitch = (info: string, main: string, anchor: Omit<ScriptedCall, 'argv'>, references?: string): ScriptedCall[] => [
  { argv: pfctl('-s', 'info'), stdout: info, stderr: ALTQ },
  { argv: pfctl('-sr'), stdout: main, stderr: ALTQ },
  { argv: pfctl('-a', ANCHOR, '-sr'), ...anchor },
  ...(references !== undefined ? [{ argv: pfctl('-s', 'References'), stdout: references, stderr: ALTQ }] : []),
];
const liveRules = () => ({ stdout: `${PRINTED_RULES.join('\n')}\n`, stderr: ALTQ });
/** The kill switch in force, read back with our token. */
const killSwitchInForce = (): ScriptedCall[] => readKillSwitch(PF_INFO_ENABLED, MAIN_STOCK, liveRules(), PF_REFERENCES_OURS);
/** The uplink's DHCP lease, read each time the kill switch is ensured: none here (ipconfig prints nothing), so DHCP may only broadcast. */
const noLease = (uplink: string): ScriptedCall => ({ argv: ['ipconfig', 'getpacket', uplink], exitCode: 1 });
/** mkdir + tee + validate + load of the anchor (the tee'd text is checked separately). */
const loadAnchor: ScriptedCall[] = [
  { argv: ['mkdir', '-p', STATE_DIR] },
  { argv: ['tee', RULES_FILE] },
  { argv: pfctl('-n', '-a', ANCHOR, '-f', RULES_FILE), stderr: ALTQ },
  { argv: pfctl('-a', ANCHOR, '-f', RULES_FILE), stderr: ALTQ },
];
/**
 * The states forgotten after a load: en0's network (flows from it, flows towards it), link-local
 * IPv6, the VM's own flows — by address (`pfctl -k`), never `pfctl -F states` (all of them).
 */
const FORGET_STATES: ScriptedCall[] = [
  { argv: pfctl('-k', '192.0.2.0/24'), stderr: `${ALTQ}killed 12 states from 1 sources and 0 destinations\n` },
  { argv: pfctl('-k', '0.0.0.0/0', '-k', '192.0.2.0/24'), stderr: `${ALTQ}killed 0 states from 1 sources and 1 destinations\n` },
  { argv: pfctl('-k', 'fe80::/10'), stderr: `${ALTQ}killed 2 states from 1 sources and 0 destinations\n` },
  { argv: pfctl('-k', '::/0', '-k', 'fe80::/10'), stderr: `${ALTQ}killed 0 states from 1 sources and 1 destinations\n` },
  { argv: pfctl('-k', '198.51.100.5'), stderr: `${ALTQ}killed 1 states from 1 sources and 0 destinations\n` },
];
const UP_TABLE = netstat(WIFI_A, { pinGateway: '192.0.2.1', pinInterface: 'en0' });

/**
 * kill-switch with none in the journal (so no read first: the anchor load replaces whatever is
 * there; the main ruleset only read, as the stock `anchor "com.apple/*"` evaluates ours and no
 * older wgctl's reference is to be removed; then the states forgotten), and pin-endpoint: the
 * table discover read serves every route step (no read of its own); the pin goes in before the /1s.
 */
const LOAD_AND_PIN: ScriptedCall[] = [
  noLease('en0'),
  ...loadAnchor,
  { argv: pfctl('-sr'), stdout: MAIN_STOCK, stderr: ALTQ },
  { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
  { argv: pfctl('-E'), stderr: `${ALTQ}${PF_E['pfctl -E'].stderr}` },
  ...FORGET_STATES,
  { argv: [...ROUTE, 'add', '-inet', '-host', '203.0.113.7', '192.0.2.1'], stdout: 'add host 203.0.113.7: gateway 192.0.2.1\n' },
];

/**
 * split-routes, ipv6, dns and verify side by side once the pin is in: the /1s first (the table
 * the Up took says they are missing: no read of their own), then DNS's first read and verify's
 * read of the kill switch, then DNS per service (ipv6: none on bridge100, so none is routed; the
 * kill switch drops it on en0, no command). Verify's netstat follows, once the /1s are in.
 */
const SPLITS_THEN_READS: ScriptedCall[] = [
  { argv: [...ROUTE, 'add', '-inet', '0.0.0.0/1', '198.51.100.5'], stdout: 'add net 0.0.0.0: gateway 198.51.100.5\n' },
  { argv: [...ROUTE, 'add', '-inet', '128.0.0.0/1', '198.51.100.5'], stdout: 'add net 128.0.0.0: gateway 198.51.100.5\n' },
  { argv: ['networksetup', '-listallnetworkservices'], stdout: SERVICES },
  ...killSwitchInForce(),
  { argv: ['networksetup', '-getdnsservers', 'Wi-Fi'], stdout: NO_DNS_WIFI },
  { argv: ['networksetup', '-getsearchdomains', 'Wi-Fi'], stdout: NO_SEARCH_WIFI },
  { argv: ['networksetup', '-getdnsservers', 'Thunderbolt Bridge'], stdout: '192.0.2.53\n' },
  { argv: ['networksetup', '-getsearchdomains', 'Thunderbolt Bridge'], stdout: 'corp.example\n' },
];

/** The first Up from Wi-Fi with PF off, the stock pf.conf, and no DNS set on Wi-Fi. */
const FIRST_UP: ScriptedCall[] = [
  // discover: the table and the interfaces in one round; one ifconfig for the uplink's address and the vnic
  { argv: ['netstat', '-rn'], stdout: netstat(WIFI_A) },
  { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
  ...LOAD_AND_PIN,
  ...SPLITS_THEN_READS,
  { argv: ['netstat', '-rn'], stdout: UP_TABLE },
  { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '198.51.100.65'] },
  { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '198.51.100.65'] },
];

/** `networksetup` reads once our DNS is set. */
const DNS_OURS: ScriptedCall[] = [
  { argv: ['networksetup', '-listallnetworkservices'], stdout: SERVICES },
  { argv: ['networksetup', '-getdnsservers', 'Wi-Fi'], stdout: '198.51.100.65\n' },
  { argv: ['networksetup', '-getsearchdomains', 'Wi-Fi'], stdout: NO_SEARCH_WIFI },
  { argv: ['networksetup', '-getdnsservers', 'Thunderbolt Bridge'], stdout: '198.51.100.65\n' },
  { argv: ['networksetup', '-getsearchdomains', 'Thunderbolt Bridge'], stdout: 'corp.example\n' },
];

/** The re-check once the routing monitor runs after an Up: nothing changed, DNS included. */
const RECHECK_AFTER_UP: ScriptedCall[] = [
  { argv: ['netstat', '-rn'], stdout: UP_TABLE },
  { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
  { argv: ['netstat', '-rn'], stdout: UP_TABLE },
  ...DNS_OURS,
];

const RESTORE_DNS: ScriptedCall[] = [
  { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', 'Empty'] },
  { argv: ['networksetup', '-setsearchdomains', 'Wi-Fi', 'Empty'] },
  { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '192.0.2.53'] },
  { argv: ['networksetup', '-setsearchdomains', 'Thunderbolt Bridge', 'corp.example'] },
];

const INTENT: UpIntent = { vmAddress: '198.51.100.5', endpoints: [{ ip: '203.0.113.7', port: 51820 }], dnsServers: ['198.51.100.65'], ipv6: 'auto' };

// ------------------------------------------------------------------------- route -n monitor

let seq = 100;
/** One `route -n monitor` message, as route.tproj prints it (values line: one leading space per value). */
function rtm(type: string, description: string, header: string, sockaddrs: string | null, values = ''): string {
  const lines = ['', `got message of size 164 on Mon Mar  2 10:00:${String(seq % 60).padStart(2, '0')} 2026`, `${type}: ${description}: len 164, ${header}`];
  if (sockaddrs !== null) {
    if (!/ADDR$/.test(type)) lines.push('locks:  inits: ');
    lines.push(`sockaddrs: <${sockaddrs}>`, ` ${values}`);
  }
  seq++;
  return lines.join('\n');
}
const ROUTE_SOCKADDRS = 'DST,GATEWAY,NETMASK,IFP,IFA';
const CONFIGD = 312;
const AGENT = 4242; // the pid of our own `route` commands
const deleteDefault = (gateway: string, ifp: string, ifa: string, scope?: number) =>
  rtm('RTM_DELETE', 'Delete Route', `pid: ${CONFIGD}, seq ${seq}, errno 0, ${scope ? `ifscope ${scope}, flags:<GATEWAY,DONE,STATIC,PRCLONING,IFSCOPE,CONDEMNED>` : 'flags:<GATEWAY,DONE,STATIC,PRCLONING,CONDEMNED,GLOBAL>'}`, ROUTE_SOCKADDRS, `default ${gateway} default ${ifp} ${ifa}`);
const addDefault = (gateway: string, ifa: string, scope?: number) =>
  rtm('RTM_ADD', 'Add Route', `pid: ${CONFIGD}, seq ${seq}, errno 0, ${scope ? `ifscope ${scope}, flags:<UP,GATEWAY,DONE,STATIC,IFSCOPE>` : 'flags:<UP,GATEWAY,DONE,STATIC>'}`, ROUTE_SOCKADDRS, `default ${gateway} default  ${ifa}`);
const address = (type: 'RTM_NEWADDR' | 'RTM_DELADDR', mask: string, ifp: string, ifa: string, broadcast: string) =>
  rtm(type, type === 'RTM_NEWADDR' ? 'address being added to iface' : 'address being removed from iface', 'metric 0, flags:<UP>', 'NETMASK,IFP,IFA,BRD', `${mask} ${ifp} ${ifa} ${broadcast}`);
const EN0 = 'en0:a4.83.e7.12.34.56';
const EN1 = 'en1:0.e0.4c.68.1.2';

// ----------------------------------------------------------------------------------- rig


describe('MacAgentEngine + DarwinDriver on a scripted Mac', () => {
  let dir: string;
  let store: JournalStore;
  let runner: PhasedRunner;
  let logs: MemoryTransport;
  let engine: MacAgentEngine;
  let monitorLine: ((line: string) => void) | undefined;
  let spawned: string[][];
  let stopped: number;

  const fakeSpawn = (argv: readonly string[], options: StreamingOptions): StreamingProcess => {
    // The DNS watch (scutil) has its own tests (darwin-dns-heal.test.ts): here it stays silent.
    if (argv[0] === 'scutil') return { argv: [...argv], pid: 4400, exited: new Promise(() => undefined), stderrTail: () => [], stop: async () => ({ code: null, signal: 'SIGTERM' }) };
    spawned.push([...argv]);
    monitorLine = options.onLine;
    const exited = Promise.resolve({ code: null, signal: 'SIGTERM' as NodeJS.Signals });
    return {
      argv: [...argv],
      pid: 4300,
      exited,
      stderrTail: () => [],
      async stop() {
        stopped++;
        monitorLine = undefined;
        return exited;
      },
    };
  };

  const makeEngine = () =>
    new MacAgentEngine({
      driver: new DarwinDriver({ stateDir: STATE_DIR }),
      runner,
      journal: store,
      logger: createLogger({ service: 'mac-agent', level: 'warn', transports: [logs] }),
      spawnMonitor: fakeSpawn,
      now: () => Date.now(),
      roamDebounceMs: 100,
      roamWatchAfterUpMs: 0, // the monitor as soon as the reply is out: these tests script it
      roamMaxWaitMs: 300,
      // Timers of their own tests (roam-backstop.test.ts, dns-reapply.test.ts): here every
      // command comes from a routing event.
      roamBackstopMs: 0,
      dnsRecheckMs: 0,
      healCheckMs: 0, // darwin-heal.test.ts
    });

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-03-02T10:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    dir = mkdtempSync(join(tmpdir(), 'wtm-darwin-engine-'));
    store = new JournalStore(dir);
    runner = new PhasedRunner();
    logs = new MemoryTransport();
    spawned = [];
    stopped = 0;
    engine = makeEngine();
  });

  afterEach(async () => {
    await engine.close();
    jest.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  const settle = settleEngine;
  const phase = <T>(script: ScriptedCall[], fn: () => Promise<T>) => runPhase(runner, script, fn);

  const teeInput = (run: ScriptedRunner): string => run.calls.find((c) => c.argv[0] === 'tee')?.input ?? '';
  const errors = () => logs.lines.map((l) => JSON.parse(l) as { level: string; message: string }).filter((l) => l.level === 'error');

  async function firstUp(): Promise<{ steps: StepRecord[]; run: ScriptedRunner }> {
    const steps: StepRecord[] = [];
    const { result, run } = await phase(FIRST_UP, () => engine.up(INTENT, {}, (s) => steps.push(s)));
    expect(result).toMatchObject({ ok: true, failedStep: '', error: '' });
    // The monitor, started once the outcome was handed back, re-checks once (a change between
    // verify and the monitor listening): uplink and routes read, all as they were, nothing done.
    await phase(RECHECK_AFTER_UP, async () => jest.advanceTimersByTime(100));
    expect(engine.roams).toEqual([]);
    return { steps, run };
  }

  const UP_JOURNAL = (): MacJournal => ({
    version: 1,
    driver: 'darwin',
    phase: 'up',
    updatedAtMs: Date.parse('2026-03-02T10:00:00Z'),
    intent: INTENT,
    uplink: { interface: 'en0', gateway: '192.0.2.1', address: '192.0.2.10' },
    uplinkLost: false,
    vnic: { interface: 'bridge100', address: '198.51.100.1' },
    ipv6: 'block',
    routes: [
      { role: 'pin', destination: '203.0.113.7/32', gateway: '192.0.2.1', interface: 'en0' },
      { role: 'split', destination: '0.0.0.0/1', gateway: '198.51.100.5', interface: 'bridge100' },
      { role: 'split', destination: '128.0.0.0/1', gateway: '198.51.100.5', interface: 'bridge100' },
    ],
    killSwitch: {
      policy: { uplink: 'en0', endpoints: [{ ip: '203.0.113.7', port: 51820 }], vnic: 'bridge100', vmAddress: '198.51.100.5', allowDhcp6: false, blockIpv6: true },
      handle: { pfAnchor: ANCHOR, pfToken: TOKEN },
    },
    dns: {
      snapshot: {
        services: [
          { name: 'Wi-Fi', servers: [], searchDomains: [] },
          { name: 'Thunderbolt Bridge', servers: ['192.0.2.53'], searchDomains: ['corp.example'] },
        ],
      },
      servers: ['198.51.100.65'],
    },
    lastRoamMs: 0,
    lastError: '',
  });

  it('Up from Wi-Fi with PF off: the exact commands, the rules file, then the journal', async () => {
    const { steps, run } = await firstUp();
    // The rules file tee'd and then validated/loaded from that same path.
    expect(ruleLines(teeInput(run))).toEqual(FILE_RULES);
    // What verify read back is what pfctl prints for that file.
    expect(normalizePfRuleset(teeInput(run))).toEqual(PRINTED_RULES);
    expect(steps.filter((s) => s.state !== 'started').map((s) => [s.step, s.state, s.commands.length])).toEqual([
      ['discover', 'done', 2],
      ['kill-switch', 'done', 13],
      ['pin-endpoint', 'done', 1], // the route add: discover's netstat -rn says what is there
      ['split-routes', 'done', 2],
      ['ipv6', 'done', 0],
      ['dns', 'done', 7],
      ['verify', 'done', 5],
    ]);
    expect(steps.find((s) => s.step === 'discover' && s.state === 'done')!.message).toBe(
      'uplink en0 via 192.0.2.1; VM 198.51.100.5 on bridge100 (host 198.51.100.1); IPv6 blocked on the uplink',
    );
    expect(store.load()).toEqual(UP_JOURNAL());
    expect(spawned).toEqual([['route', '-n', 'monitor']]);
    expect(errors()).toEqual([]);
  });

  it('Up again: everything is re-read, nothing is re-applied', async () => {
    await firstUp();
    jest.advanceTimersByTime(60_000);
    const steps: StepRecord[] = [];
    const { result } = await phase(
      [
        { argv: ['netstat', '-rn'], stdout: UP_TABLE },
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        noLease('en0'),
        ...killSwitchInForce(), // matching, enabled, referenced, our token held: no reload
        // pin and split routes present in discover's table: no route add, no read of their own
        // dns and verify side by side: DNS already ours everywhere (no networksetup -set…)
        DNS_OURS[0],
        ...killSwitchInForce(),
        ...DNS_OURS.slice(1),
        { argv: ['netstat', '-rn'], stdout: UP_TABLE }, // verify's
      ],
      () => engine.up(INTENT, {}, (s) => steps.push(s)),
    );
    expect(result).toMatchObject({ ok: true });
    expect(steps.filter((s) => s.state === 'skipped').map((s) => s.step)).toEqual(['kill-switch', 'pin-endpoint', 'split-routes', 'dns']);
    // The DNS snapshot is still the user's (not our own servers read back), the token the same.
    expect(store.load()).toEqual({ ...UP_JOURNAL(), updatedAtMs: Date.now() }); // 60 s after the first Up and its re-check
    expect(spawned).toHaveLength(1); // the monitor already runs
  });

  /**
   * `wgctl up`'s first two calls: the Describe (connect), then the kill-switch-only Up while the
   * VM's tunnel comes up, every `netstat -rn` as `shown` prints it (the macOS release's layout).
   * That Up reads the table again, unchanged since the Describe: no ifconfig of its own.
   */
  async function describeThenFailClosed(shown: (table: string) => string): Promise<void> {
    const pinned = UP_TABLE.split('\n')
      .filter((line) => !/^(0\/1|128\.0\/1) /.test(line))
      .join('\n');
    await phase(
      [
        { argv: ['netstat', '-rn'], stdout: shown(netstat(WIFI_A)) },
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
      ],
      () => engine.describe(INTENT.vmAddress),
    );
    const steps: StepRecord[] = [];
    const { result } = await phase(
      [
        { argv: ['netstat', '-rn'], stdout: shown(netstat(WIFI_A)) },
        ...LOAD_AND_PIN,
        // verify: the whole table (kept for the full Up) and the kill switch
        { argv: ['netstat', '-rn'], stdout: shown(pinned) },
        ...killSwitchInForce(),
      ],
      () => engine.up({ ...INTENT, killSwitchOnly: true }, {}, (s) => steps.push(s)),
    );
    expect(result).toMatchObject({ ok: true });
    expect(steps.find((s) => s.step === 'discover' && s.state === 'done')!.message).toMatch(/as the Describe of this run found them/);
  }

  it("`wgctl up` as it runs: Describe, a kill-switch-only Up while the VM's tunnel comes up, the full Up after the handshake, which reads nothing before its /1s", async () => {
    await describeThenFailClosed((table) => table);
    const steps: StepRecord[] = [];
    const full = await phase(
      [
        ...SPLITS_THEN_READS,
        { argv: ['netstat', '-rn'], stdout: UP_TABLE }, // verify's: the routes read back from it
        { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '198.51.100.65'] },
        { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '198.51.100.65'] },
      ],
      () => engine.up(INTENT, {}, (s) => steps.push(s)),
    );
    expect(full.result).toMatchObject({ ok: true });
    expect(steps.find((s) => s.step === 'discover' && s.state === 'done')).toMatchObject({ commands: [] });
    expect(steps.find((s) => s.step === 'discover' && s.state === 'done')!.message).toMatch(/as the kill-switch-only Up found them, with its read-back of the routing table/);
    expect(store.load()).toEqual({ ...UP_JOURNAL(), updatedAtMs: Date.now() });
    expect(errors()).toEqual([]);
  });

  it('the same on macOS 11, where netstat cuts bridge100 to `bridge1`: the full Up\'s verify cannot settle the /1s from its table and asks route -n get, as readRoutes does', async () => {
    /** Netif as macOS up to 11 prints it: 7 wide (bridge100 → `bridge1`). */
    const cut = (table: string) => table.replace(/ {5}bridge100( |$)/gm, '   bridge1$1');
    expect(cut(UP_TABLE)).toMatch(/^0\/1 +198\.51\.100\.5 +UGSc +bridge1 /m);
    const metrics = fixture('route-get-host-real-world-systems.txt').split('\n').slice(-3).join('\n');
    const routeGet = (destination: string): ScriptedCall => ({
      argv: ['route', '-n', 'get', '-inet', `${destination}/1`],
      stdout: [
        `   route to: ${destination === '0.0.0.0' ? 'default' : destination}`,
        `destination: ${destination === '0.0.0.0' ? 'default' : destination}`,
        '       mask: 128.0.0.0',
        '    gateway: 198.51.100.5',
        '  interface: bridge100',
        '      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING>',
        metrics,
      ].join('\n'),
    });
    await describeThenFailClosed(cut);
    const full = await phase(
      [
        ...SPLITS_THEN_READS,
        // verify: the whole table (the kill-switch-only Up's fingerprint checked), whose /1 rows
        // say `bridge1`: read back as readRoutes does, route -n get deciding
        { argv: ['netstat', '-rn'], stdout: cut(UP_TABLE) },
        { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '198.51.100.65'] },
        { argv: ['netstat', '-rn'], stdout: cut(UP_TABLE) },
        { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '198.51.100.65'] },
        routeGet('0.0.0.0'),
        routeGet('128.0.0.0'),
      ],
      () => engine.up(INTENT, {}, () => undefined),
    );
    expect(full.result).toMatchObject({ ok: true, error: '' });
    expect(store.load()).toEqual({ ...UP_JOURNAL(), updatedAtMs: Date.now() });
    expect(errors()).toEqual([]);
  });

  it('Down: DNS restored per service, split routes then the pin, anchor flushed, token released, the main ruleset only read', async () => {
    await firstUp();
    const steps: StepRecord[] = [];
    const { result } = await phase(
      [
        // restore-dns: "Empty" where nothing was set, the user's servers and domains elsewhere
        ...RESTORE_DNS,
        // remove-routes: split routes first, the pin last (never the default)
        { argv: [...ROUTE, 'delete', '-inet', '0.0.0.0/1', '198.51.100.5'], stdout: 'delete net 0.0.0.0: gateway 198.51.100.5\n' },
        { argv: [...ROUTE, 'delete', '-inet', '128.0.0.0/1', '198.51.100.5'], stdout: 'delete net 128.0.0.0: gateway 198.51.100.5\n' },
        { argv: [...ROUTE, 'delete', '-inet', '-host', '203.0.113.7', '192.0.2.1'], stdout: 'delete host 203.0.113.7: gateway 192.0.2.1\n' },
        // unload-kill-switch
        ...killSwitchInForce(),
        { argv: pfctl('-a', ANCHOR, '-F', 'all'), stderr: fixture('pfctl-F-all-and-f-warning-ettercap-pr641.txt').split('pfctl: Use')[0] },
        { argv: pfctl('-X', TOKEN), stderr: `${ALTQ}${PF_E['pfctl -X <valid, last reference>'].stderr}` },
        { argv: pfctl('-sr'), stdout: MAIN_STOCK, stderr: ALTQ }, // no older wgctl's reference: no -R
        { argv: ['rm', '-f', RULES_FILE] },
        // verify-clean: an emptied anchor lists nothing
        { argv: ['netstat', '-rn'], stdout: netstat(WIFI_A) },
        ...readKillSwitch(PF_INFO_DISABLED, MAIN_STOCK, { stdout: '', stderr: ALTQ }),
      ],
      () => engine.down({}, (s) => steps.push(s)),
    );
    expect(result).toMatchObject({ ok: true, failedStep: '' });
    expect(steps.filter((s) => s.state === 'done').map((s) => s.step)).toEqual(['restore-dns', 'remove-routes', 'unload-kill-switch', 'verify-clean']);
    expect(stopped).toBe(1); // the monitor is stopped before anything is removed
    expect(store.load()).toEqual(emptyJournal('darwin', Date.now()));
    expect(errors()).toEqual([]);
  });

  it('Down after a reboot: "pf not enabled" is released, "not in table" is removed, no reference to take out', async () => {
    await firstUp();
    await engine.close();
    engine = makeEngine(); // the agent after the reboot; the journal still says up
    expect(store.load()!.phase).toBe('up');
    const notInTable = (what: string, gateway: string) => ({ stdout: `delete ${what}: gateway ${gateway}: not in table\n`, stderr: NOT_IN_TABLE });
    const { result } = await phase(
      [
        ...RESTORE_DNS, // networksetup settings survive a reboot: they are put back all the same
        { argv: [...ROUTE, 'delete', '-inet', '0.0.0.0/1', '198.51.100.5'], ...notInTable('net 0.0.0.0', '198.51.100.5') },
        { argv: [...ROUTE, 'delete', '-inet', '128.0.0.0/1', '198.51.100.5'], ...notInTable('net 128.0.0.0', '198.51.100.5') },
        { argv: [...ROUTE, 'delete', '-inet', '-host', '203.0.113.7', '192.0.2.1'], ...notInTable('host 203.0.113.7', '192.0.2.1') },
        // PF off, /etc/pf.conf reloaded at boot, the anchor gone, our token stale
        ...readKillSwitch(PF_INFO_DISABLED, MAIN_STOCK, ANCHOR_MISSING, PF_REFERENCES_NONE),
        { argv: pfctl('-a', ANCHOR, '-F', 'all'), stderr: `${ALTQ}rules cleared\nnat cleared\ndummynet cleared\n0 tables deleted.\n0 states cleared\n` },
        { argv: pfctl('-X', TOKEN), exitCode: PF_E['pfctl -X <stale> while pf disabled'].code, stderr: `${ALTQ}${PF_E['pfctl -X <stale> while pf disabled'].stderr}` },
        { argv: pfctl('-sr'), stdout: MAIN_STOCK, stderr: ALTQ }, // no reference: no -R
        { argv: ['rm', '-f', RULES_FILE] },
        { argv: ['netstat', '-rn'], stdout: netstat(WIFI_A) },
        ...readKillSwitch(PF_INFO_DISABLED, MAIN_STOCK, { stdout: '', stderr: ALTQ }),
      ],
      () => engine.down({}, () => undefined),
    );
    expect(result).toMatchObject({ ok: true, failedStep: '', error: '' });
    expect(store.load()).toEqual(emptyJournal('darwin', Date.now()));
  });

  it('start after a reboot re-asserts the journaled Up: the stale token is replaced, nothing added to the main ruleset, DNS (persisted) left alone', async () => {
    await firstUp();
    await engine.close();
    jest.advanceTimersByTime(3_600_000);
    engine = makeEngine();
    const NEW_TOKEN = '15053025338191571182';
    const referencesNew = PF_REFERENCES_OURS.replace(TOKEN, NEW_TOKEN);
    await phase(
      [
        { argv: ['netstat', '-rn'], stdout: netstat(WIFI_A) }, // our routes went with the reboot
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        noLease('en0'),
        ...readKillSwitch(PF_INFO_DISABLED, MAIN_STOCK, ANCHOR_MISSING, PF_REFERENCES_NONE),
        ...loadAnchor,
        { argv: pfctl('-sr'), stdout: MAIN_STOCK, stderr: ALTQ }, // pf.conf reloaded at boot: com.apple/* still evaluates ours
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        { argv: pfctl('-s', 'References'), stdout: PF_REFERENCES_NONE, stderr: ALTQ }, // the journaled token is not held
        { argv: pfctl('-E'), stderr: `${ALTQ}pf enabled\nToken : ${NEW_TOKEN}\n` },
        ...FORGET_STATES,
        // the pin, then the /1s: discover's table says what is missing (no read of their own)
        { argv: [...ROUTE, 'add', '-inet', '-host', '203.0.113.7', '192.0.2.1'], stdout: 'add host 203.0.113.7: gateway 192.0.2.1\n' },
        { argv: [...ROUTE, 'add', '-inet', '0.0.0.0/1', '198.51.100.5'], stdout: 'add net 0.0.0.0: gateway 198.51.100.5\n' },
        { argv: [...ROUTE, 'add', '-inet', '128.0.0.0/1', '198.51.100.5'], stdout: 'add net 128.0.0.0: gateway 198.51.100.5\n' },
        // DNS and verify side by side with them
        DNS_OURS[0],
        ...readKillSwitch(PF_INFO_ENABLED, MAIN_STOCK, liveRules(), referencesNew),
        ...DNS_OURS.slice(1), // networksetup settings survive a reboot: still ours, nothing set
        { argv: ['netstat', '-rn'], stdout: UP_TABLE },
      ],
      () => engine.reconcile(),
    );
    const journal = UP_JOURNAL();
    journal.killSwitch!.handle = { pfAnchor: ANCHOR, pfToken: NEW_TOKEN };
    expect(store.load()).toEqual({ ...journal, updatedAtMs: Date.now() }); // an hour after the first Up and its re-check
    expect(spawned).toEqual([['route', '-n', 'monitor'], ['route', '-n', 'monitor']]);
    expect(errors()).toEqual([]);
  });

  it('Up after upgrading from a wgctl that appended `anchor "com.wgctl"` to the main ruleset: that reference is removed once, from the journal\'s word', async () => {
    // What the older version journaled while up: its token, and that it had added the reference.
    const older = UP_JOURNAL();
    older.killSwitch!.handle = { addedAnchorReference: true, pfToken: TOKEN };
    store.save(older);
    await engine.close();
    engine = makeEngine();
    const steps: StepRecord[] = [];
    const { result } = await phase(
      [
        { argv: ['netstat', '-rn'], stdout: UP_TABLE },
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        noLease('en0'),
        // Our anchor under com.apple/ is empty: the older rules live in com.wgctl.
        ...readKillSwitch(PF_INFO_ENABLED, MAIN_WITH_LEGACY, ANCHOR_MISSING, PF_REFERENCES_OURS),
        ...loadAnchor,
        { argv: pfctl('-sr'), stdout: MAIN_WITH_LEGACY, stderr: ALTQ },
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        { argv: pfctl('-s', 'References'), stdout: PF_REFERENCES_OURS, stderr: ALTQ },
        // The main ruleset re-loaded as it was read, less the older reference; its anchor flushed.
        { argv: pfctl('-R', '-f', '-'), input: MAIN_STOCK, stderr: ALTQ },
        { argv: pfctl('-a', 'com.wgctl', '-F', 'all'), stderr: `${ALTQ}rules cleared\n` },
        { argv: ['rm', '-f', `${STATE_DIR}/pf-com.wgctl.conf`] },
        ...FORGET_STATES,
        // the pin and the /1s in discover's table: nothing to add, nothing read for them
        DNS_OURS[0],
        ...killSwitchInForce(),
        ...DNS_OURS.slice(1),
        { argv: ['netstat', '-rn'], stdout: UP_TABLE }, // verify's
      ],
      () => engine.up(INTENT, {}, (s) => steps.push(s)),
    );
    expect(result).toMatchObject({ ok: true });
    // The journal now holds the new anchor and the same token; nothing says "remove it" any more.
    expect(store.load()!.killSwitch!.handle).toEqual({ pfAnchor: ANCHOR, pfToken: TOKEN });
    await phase(RECHECK_AFTER_UP, async () => jest.advanceTimersByTime(100));
    // A second Up finds everything in force: no main-ruleset edit again.
    await phase(
      [
        { argv: ['netstat', '-rn'], stdout: UP_TABLE },
        { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
        noLease('en0'),
        ...killSwitchInForce(),
        DNS_OURS[0],
        ...killSwitchInForce(),
        ...DNS_OURS.slice(1),
        { argv: ['netstat', '-rn'], stdout: UP_TABLE }, // verify's
      ],
      () => engine.up(INTENT, {}, () => undefined),
    );
    expect(errors()).toEqual([]);
  });

  describe('roaming', () => {
    const feed = (...messages: string[]) => {
      for (const line of messages.join('\n').split('\n')) monitorLine!(line);
    };

    it('ignores its own route echoes, scoped adds, misses and failed requests', async () => {
      await firstUp();
      await phase([], async () => {
        feed(
          rtm('RTM_ADD', 'Add Route', `pid: ${AGENT}, seq 1, errno 0, flags:<UP,GATEWAY,HOST,DONE,STATIC>`, 'DST,GATEWAY', '203.0.113.7 192.0.2.1'),
          rtm('RTM_ADD', 'Add Route', `pid: ${AGENT}, seq 2, errno 0, flags:<UP,GATEWAY,DONE,STATIC>`, 'DST,GATEWAY,NETMASK', 'default 198.51.100.5 128.0.0.0'),
          rtm('RTM_ADD', 'Add Route', `pid: ${AGENT}, seq 3, errno 0, flags:<UP,GATEWAY,DONE,STATIC>`, 'DST,GATEWAY,NETMASK', '128.0.0.0 198.51.100.5 128.0.0.0'),
          addDefault('192.0.2.1', '192.0.2.10', 11), // the scoped default every interface gets
          rtm('RTM_MISS', 'Lookup failed on this address', 'pid: 0, seq 0, errno 0, flags:', 'DST', '203.0.113.99'),
          // A delete that failed (errno 3, ESRCH): nothing changed.
          rtm('RTM_DELETE', 'Delete Route', `pid: ${CONFIGD}, seq 9, errno 3, ifscope 11, flags:<UP,GATEWAY,STATIC,IFSCOPE>`, ROUTE_SOCKADDRS, 'default 192.0.2.1 default  192.0.2.10'),
        );
        jest.advanceTimersByTime(1_000);
      });
      expect(engine.roams).toEqual([]);
    });

    it('Wi-Fi off: uplink lost, nothing removed (fail-closed); back on the same network: the pin is re-asserted', async () => {
      await firstUp();
      const NO_UPLINK = { defaults: [], links: [] };
      // The interfaces are read beside the table (one round when there is an uplink): unused without one.
      const WIFI_OFF = IFCONFIG_ALL.replace(IFCONFIG_EN0_A.trimEnd(), IFCONFIG_EN0_A.trimEnd().replace(/\n\tinet 192\.0\.2\.10 .*/, '').replace('status: active', 'status: inactive'));
      await phase([{ argv: ['netstat', '-rn'], stdout: netstat(NO_UPLINK, { pinGateway: '192.0.2.1', pinInterface: 'en0' }) }, { argv: ['ifconfig'], stdout: WIFI_OFF }, ...DNS_OURS], async () => {
        feed(deleteDefault('192.0.2.1', EN0, '192.0.2.10'), deleteDefault('192.0.2.1', EN0, '192.0.2.10', 11), address('RTM_DELADDR', '255.255.255.0', EN0, '192.0.2.10', '192.0.2.255'));
        jest.advanceTimersByTime(100);
      });
      expect(store.load()).toEqual({ ...UP_JOURNAL(), uplinkLost: true, updatedAtMs: Date.now() });

      jest.advanceTimersByTime(5_000);
      await phase(
        [
          { argv: ['netstat', '-rn'], stdout: UP_TABLE },
          { argv: ['ifconfig'], stdout: IFCONFIG_ALL },
          noLease('en0'),
          ...killSwitchInForce(),
          {
            argv: [...ROUTE, 'add', '-inet', '-host', '203.0.113.7', '192.0.2.1'],
            stdout: 'add host 203.0.113.7: gateway 192.0.2.1: File exists\n',
            stderr: 'route: writing to routing socket: File exists\n',
          },
          { argv: ['netstat', '-rn'], stdout: UP_TABLE }, // "File exists": ours, read back
          { argv: ['netstat', '-rn'], stdout: UP_TABLE },
          ...DNS_OURS, // after every burst: still ours
        ],
        async () => {
          feed(address('RTM_NEWADDR', '255.255.255.0', EN0, '192.0.2.10', '192.0.2.255'), addDefault('192.0.2.1', '192.0.2.10'), addDefault('192.0.2.1', '192.0.2.10', 11));
          jest.advanceTimersByTime(100);
        },
      );
      expect(store.load()).toEqual({ ...UP_JOURNAL(), updatedAtMs: Date.now(), lastRoamMs: Date.now() });
      expect(engine.roams).toMatchObject([{ fromInterface: 'en0', toInterface: 'en0', fromGateway: '192.0.2.1', toGateway: '192.0.2.1' }]);
      expect(errors()).toEqual([]);
    });

    it('Wi-Fi to another network: one re-read per burst, the pin moves to the new gateway; then Ethernet: the kill switch already holds on en1 (nothing reloaded)', async () => {
      await firstUp();
      const t0 = Date.now();

      // 1. Wi-Fi joins another network: the default goes, the address changes, a new default comes.
      const wifiRoam = await phase(
        [
          { argv: ['netstat', '-rn'], stdout: netstat(WIFI_B, { pinGateway: '192.0.2.1', pinInterface: 'en0' }) },
          { argv: ['ifconfig'], stdout: IFCONFIG_ALL_B },
          noLease('en0'),
          ...killSwitchInForce(), // same interface: the rules still match, nothing reloaded
          { argv: [...ROUTE, 'delete', '-inet', '-host', '203.0.113.7', '192.0.2.1'], stdout: 'delete host 203.0.113.7: gateway 192.0.2.1\n' },
          { argv: [...ROUTE, 'add', '-inet', '-host', '203.0.113.7', '192.0.2.129'], stdout: 'add host 203.0.113.7: gateway 192.0.2.129\n' },
          { argv: ['netstat', '-rn'], stdout: netstat(WIFI_B, { pinGateway: '192.0.2.129', pinInterface: 'en0' }) },
          ...DNS_OURS,
        ],
        async () => {
          feed(deleteDefault('192.0.2.1', EN0, '192.0.2.10'), deleteDefault('192.0.2.1', EN0, '192.0.2.10', 11), address('RTM_DELADDR', '255.255.255.0', EN0, '192.0.2.10', '192.0.2.255'));
          jest.advanceTimersByTime(60);
          expect(runner.script.calls).toEqual([]); // still within the debounce
          feed(address('RTM_NEWADDR', '255.255.255.128', EN0, '192.0.2.140', '192.0.2.255'), addDefault('192.0.2.129', '192.0.2.140'), addDefault('192.0.2.129', '192.0.2.140', 11));
          jest.advanceTimersByTime(99);
          expect(runner.script.calls).toEqual([]); // the debounce restarted with the last event
          jest.advanceTimersByTime(1);
        },
      );
      expect(wifiRoam.run.calls.some((c) => c.argv[0] === 'tee')).toBe(false);
      expect(engine.roams).toEqual([{ atMs: t0 + 160, fromInterface: 'en0', toInterface: 'en0', fromGateway: '192.0.2.1', toGateway: '192.0.2.129', tookMs: 160 }]);
      expect(store.load()).toMatchObject({
        uplink: { interface: 'en0', gateway: '192.0.2.129', address: '192.0.2.140' },
        routes: [
          { role: 'split', destination: '0.0.0.0/1' },
          { role: 'split', destination: '128.0.0.0/1' },
          { role: 'pin', destination: '203.0.113.7/32', gateway: '192.0.2.129', interface: 'en0' },
        ],
        killSwitch: { policy: { uplink: 'en0' }, handle: { pfToken: TOKEN, pfAnchor: ANCHOR } },
        lastRoamMs: t0 + 160,
      });

      // The echoes of those two route commands: the add is ours and ignored; the delete of a
      // journaled destination cannot be told from someone else's, so it costs a read-only re-check.
      jest.advanceTimersByTime(1_000);
      await phase(
        [
          { argv: ['netstat', '-rn'], stdout: netstat(WIFI_B, { pinGateway: '192.0.2.129', pinInterface: 'en0' }) },
          { argv: ['ifconfig'], stdout: IFCONFIG_ALL_B },
          { argv: ['netstat', '-rn'], stdout: netstat(WIFI_B, { pinGateway: '192.0.2.129', pinInterface: 'en0' }) },
          ...DNS_OURS,
        ],
        async () => {
          feed(
            rtm('RTM_DELETE', 'Delete Route', `pid: ${AGENT}, seq 4, errno 0, flags:<GATEWAY,HOST,DONE,STATIC>`, 'DST,GATEWAY', '203.0.113.7 192.0.2.1'),
            rtm('RTM_ADD', 'Add Route', `pid: ${AGENT}, seq 5, errno 0, flags:<UP,GATEWAY,HOST,DONE,STATIC>`, 'DST,GATEWAY', '203.0.113.7 192.0.2.129'),
          );
          jest.advanceTimersByTime(100);
        },
      );
      expect(engine.roams).toHaveLength(1);

      // 2. Ethernet plugged in and made primary: en1 gets the default, en0 keeps a scoped one.
      const t1 = Date.now();
      const ethernetRoam = await phase(
        [
          { argv: ['netstat', '-rn'], stdout: netstat(ETHERNET, { pinGateway: '192.0.2.129', pinInterface: 'en0' }) },
          { argv: ['ifconfig'], stdout: IFCONFIG_ALL_EN1 },
          noLease('en1'),
          ...killSwitchInForce(), // the rules hold on every interface: they match the en1 policy, nothing reloaded
          { argv: [...ROUTE, 'delete', '-inet', '-host', '203.0.113.7', '192.0.2.129'], stdout: 'delete host 203.0.113.7: gateway 192.0.2.129\n' },
          { argv: [...ROUTE, 'add', '-inet', '-host', '203.0.113.7', '203.0.113.129'], stdout: 'add host 203.0.113.7: gateway 203.0.113.129\n' },
          { argv: ['netstat', '-rn'], stdout: netstat(ETHERNET, { pinGateway: '203.0.113.129', pinInterface: 'en1' }) },
          ...DNS_OURS,
        ],
        async () => {
          feed(
            rtm('RTM_IFINFO', 'iface status change', 'if# 7, flags:<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST>', null),
            address('RTM_NEWADDR', '255.255.255.128', EN1, '203.0.113.130', '203.0.113.255'),
            deleteDefault('192.0.2.129', EN0, '192.0.2.140'),
            addDefault('203.0.113.129', '203.0.113.130'),
            addDefault('192.0.2.129', '192.0.2.140', 11),
            addDefault('203.0.113.129', '203.0.113.130', 7),
          );
          jest.advanceTimersByTime(100);
        },
      );
      // en1 was never unprotected: the rules loaded at Up already held on it (no reload, no tee).
      expect(ethernetRoam.run.calls.some((c) => c.argv[0] === 'tee' || c.argv.includes('-f'))).toBe(false);
      expect(engine.roams[1]).toEqual({ atMs: t1 + 100, fromInterface: 'en0', toInterface: 'en1', fromGateway: '192.0.2.129', toGateway: '203.0.113.129', tookMs: 100 });
      const journal = store.load()!;
      expect(journal).toMatchObject({
        phase: 'up',
        uplink: { interface: 'en1', gateway: '203.0.113.129', address: '203.0.113.130' },
        uplinkLost: false,
        killSwitch: { policy: { ...UP_JOURNAL().killSwitch!.policy, uplink: 'en1' }, handle: { pfToken: TOKEN, pfAnchor: ANCHOR } },
      });
      expect(journal.routes.filter((r) => r.role === 'pin')).toEqual([{ role: 'pin', destination: '203.0.113.7/32', gateway: '203.0.113.129', interface: 'en1' }]);

      // Down from there removes the pin via the new gateway and releases the same token.
      await phase(
        [
          ...RESTORE_DNS,
          { argv: [...ROUTE, 'delete', '-inet', '0.0.0.0/1', '198.51.100.5'], stdout: 'delete net 0.0.0.0: gateway 198.51.100.5\n' },
          { argv: [...ROUTE, 'delete', '-inet', '128.0.0.0/1', '198.51.100.5'], stdout: 'delete net 128.0.0.0: gateway 198.51.100.5\n' },
          { argv: [...ROUTE, 'delete', '-inet', '-host', '203.0.113.7', '203.0.113.129'], stdout: 'delete host 203.0.113.7: gateway 203.0.113.129\n' },
          ...killSwitchInForce(),
          { argv: pfctl('-a', ANCHOR, '-F', 'all'), stderr: `${ALTQ}rules cleared\n` },
          { argv: pfctl('-X', TOKEN), stderr: `${ALTQ}${PF_E['pfctl -X <valid, last reference>'].stderr}` },
          { argv: pfctl('-sr'), stdout: MAIN_STOCK, stderr: ALTQ },
          { argv: ['rm', '-f', RULES_FILE] },
          { argv: ['netstat', '-rn'], stdout: netstat(ETHERNET) },
          ...readKillSwitch(PF_INFO_DISABLED, MAIN_STOCK, { stdout: '', stderr: ALTQ }),
        ],
        async () => expect(await engine.down({}, () => undefined)).toMatchObject({ ok: true }),
      );
      expect(errors()).toEqual([]);
    });
  });
});
