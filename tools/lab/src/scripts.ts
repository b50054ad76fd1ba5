/**
 * Small Node programs the lab writes into `<dir>/bin` and runs inside namespaces with
 * `ip netns exec … node <file>` (plain CommonJS, no dependencies, so no bundling).
 */

/** What http://captive.apple.com/hotspot-detect.html answers when no portal is in the way. */
export const APPLE_SUCCESS_BODY = '<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n';

/**
 * The web host: answers every request with who asked (the source address it saw), so a test
 * can tell a leak (the coffee shop's address) from the tunnel (the server's address).
 * argv: <port> <ready-file>. One JSON line per request on stdout (the log file).
 */
export const WEB_SERVER_JS = `'use strict';
const http = require('node:http');
const fs = require('node:fs');
const [port, readyFile] = process.argv.slice(2);
const APPLE_SUCCESS = ${JSON.stringify(APPLE_SUCCESS_BODY)};
const server = http.createServer((req, res) => {
  const remote = String(req.socket.remoteAddress || '').replace(/^::ffff:/, '');
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), remote, method: req.method, url: req.url, host: req.headers.host }) + '\\n');
  // Connectivity checks answer as on a free network (Apple's success page, Android's empty 204).
  if (req.url === '/hotspot-detect.html') return res.end(APPLE_SUCCESS);
  if (req.url === '/generate_204') { res.statusCode = 204; return res.end(); }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ host: 'web', remote }) + '\\n');
});
server.keepAliveTimeout = 1000;
server.listen({ port: Number(port), host: '::', ipv6Only: false }, () => {
  fs.writeFileSync(readyFile, String(process.pid));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
`;

/**
 * A minimal HTTP client (curl is not among the installed packages).
 * argv: <url> [timeout-ms] [method]. Prints {"status":…,"body":…,"location":…} and exits 0
 * (redirects are not followed), or prints the error on stderr and exits 1. Host names resolve
 * through the namespace's resolv.conf.
 */
export const HTTP_GET_JS = `'use strict';
const http = require('node:http');
const [url, timeoutArg, method] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 3000);
const req = http.request(url, { method: method || 'GET', timeout: timeoutMs, agent: false }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => (body += d));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body, location: res.headers.location }) + '\\n'));
});
req.end();
req.on('timeout', () => req.destroy(new Error('timed out after ' + timeoutMs + ' ms')));
req.on('error', (e) => {
  process.stderr.write('http-get ' + url + ': ' + (e.code ? e.code + ' ' : '') + e.message + '\\n');
  process.exit(1);
});
`;

/**
 * Asks one DNS server directly (no resolv.conf), with a short timeout.
 * argv: <server> <name> [A|AAAA] [timeout-ms]. Prints the addresses as a JSON array and exits
 * 0, or prints the error on stderr and exits 1.
 */
export const DNS_QUERY_JS = `'use strict';
const { Resolver } = require('node:dns').promises;
const [server, name, type, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 1000);
const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
resolver.setServers([server]);
// c-ares may retry past its per-try timeout: hold the whole query to one deadline.
setTimeout(() => {
  process.stderr.write('dns-query ' + name + ' @' + server + ': ETIMEOUT no answer within ' + timeoutMs + ' ms\\n');
  process.exit(1);
}, timeoutMs).unref();
(type === 'AAAA' ? resolver.resolve6(name) : resolver.resolve4(name)).then(
  (addresses) => process.stdout.write(JSON.stringify(addresses) + '\\n'),
  (e) => {
    process.stderr.write('dns-query ' + name + ' @' + server + ': ' + (e.code || '') + ' ' + e.message + '\\n');
    process.exit(1);
  },
);
`;

/**
 * A chatty café neighbour (a printer, a TV): what every real LAN carries and a VPN check must
 * not count as the Mac's. Every `interval` ms it announces itself by mDNS (224.0.0.251 and
 * ff02::fb, port 5353) and SSDP (239.255.255.250:1900), leaves and rejoins its multicast groups
 * (so the kernel sends IGMP and MLD reports), and sends one UDP datagram to an unused LAN
 * address (an ARP request each time it is unresolved) and, if given, one to the Mac (unicast
 * the Mac did not ask for). Router solicitations come from the kernel (sysctls, see neighbour.ts).
 * argv: <iface> <own-ipv4> <interval-ms> <unused-ipv4> [mac-ipv4]. Runs until killed.
 */
export const CHATTY_NEIGHBOUR_JS = `'use strict';
const dgram = require('node:dgram');
const [iface, ownIp, intervalArg, unusedIp, macIp] = process.argv.slice(2);
const interval = Number(intervalArg || 250);
function name(labels) { return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]); }
// An mDNS response: printer.local A <own-ipv4> (RFC 6762 §8.3 announcement), TTL 120, cache flush.
const rdata = Buffer.from(ownIp.split('.').map(Number));
const answer = Buffer.concat([name(['printer', 'local']), Buffer.from([0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]), rdata]);
const mdns = Buffer.concat([Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]), answer]);
const ssdp = Buffer.from('NOTIFY * HTTP/1.1\\r\\nHOST: 239.255.255.250:1900\\r\\nNT: upnp:rootdevice\\r\\nNTS: ssdp:alive\\r\\n' +
  'LOCATION: http://' + ownIp + ':80/desc.xml\\r\\nUSN: uuid:lab-printer::upnp:rootdevice\\r\\nCACHE-CONTROL: max-age=1800\\r\\n\\r\\n');
const v4 = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const v6 = dgram.createSocket({ type: 'udp6', reuseAddr: true });
const plain = dgram.createSocket('udp4');
let joined = false;
function rejoin() {
  // Leaving and joining again makes the kernel send IGMP and MLD reports each round.
  if (joined) { try { v4.dropMembership('224.0.0.251', ownIp); v6.dropMembership('ff02::fb', '::%' + iface); } catch {} }
  v4.addMembership('224.0.0.251', ownIp);
  v6.addMembership('ff02::fb', '::%' + iface);
  joined = true;
}
function tick() {
  rejoin();
  v4.send(mdns, 5353, '224.0.0.251');
  v6.send(mdns, 5353, 'ff02::fb%' + iface);
  plain.send(ssdp, 1900, '239.255.255.250');
  plain.send(Buffer.from('ping'), 9, unusedIp);
  if (macIp) plain.send(Buffer.from('hello'), 9, macIp);
}
let bound = 0;
const ready = () => { if (++bound === 2) { v4.setMulticastInterface(ownIp); v4.setMulticastTTL(255); v6.setMulticastInterface('::%' + iface); v6.setMulticastTTL(255); tick(); setInterval(tick, interval); } };
v4.bind(5353, ready);
v6.bind(5353, ready);
plain.bind(0, () => plain.setMulticastInterface(ownIp));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
`;

/**
 * A café's captive portal on the router's LAN address (./portal.ts DNATs the LAN's HTTP here).
 * POST /login signs the asking address in (adds it to the nft set the router's forward chain
 * lets through); GET /login shows the login page; any other request is redirected there, as
 * real portals answer connectivity probes. argv: <listen-ip> <port> <nft-table> <ready-file>.
 * One JSON line per request on stdout.
 */
export const PORTAL_SERVER_JS = `'use strict';
const http = require('node:http');
const fs = require('node:fs');
const { execFile } = require('node:child_process');
const [listenIp, port, table, readyFile] = process.argv.slice(2);
const loginUrl = 'http://' + listenIp + (port === '80' ? '' : ':' + port) + '/login';
function signIn(remote, done) {
  const set = remote.includes(':') ? 'signed_in6' : 'signed_in4';
  execFile('nft', ['add', 'element', 'inet', table, set, '{ ' + remote + ' }'], done);
}
const server = http.createServer((req, res) => {
  const remote = String(req.socket.remoteAddress || '').replace(/^::ffff:/, '');
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), remote, method: req.method, url: req.url, host: req.headers.host }) + '\\n');
  req.resume();
  const path = String(req.url || '/').split('?')[0];
  if (path === '/login' && req.method === 'POST') {
    return signIn(remote, (error) => {
      res.statusCode = error ? 500 : 200;
      res.end(error ? 'sign-in failed: ' + error.message + '\\n' : 'signed in: ' + remote + '\\n');
    });
  }
  if (path === '/login') {
    res.setHeader('content-type', 'text/html');
    return res.end('<html><body><form method="post" action="/login"><button>Accept the terms</button></form></body></html>\\n');
  }
  res.statusCode = 302;
  res.setHeader('location', loginUrl);
  res.end();
});
server.keepAliveTimeout = 1000;
server.listen({ port: Number(port), host: listenIp }, () => fs.writeFileSync(readyFile, String(process.pid)));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
`;
