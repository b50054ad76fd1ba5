/**
 * Small Node programs the lab writes into `<dir>/bin` and runs inside namespaces with
 * `ip netns exec … node <file>` (plain CommonJS, no dependencies, so no bundling).
 */

/**
 * The web host: answers every request with who asked (the source address it saw), so a test
 * can tell a leak (the coffee shop's address) from the tunnel (the server's address).
 * argv: <port> <ready-file>. One JSON line per request on stdout (the log file).
 */
export const WEB_SERVER_JS = `'use strict';
const http = require('node:http');
const fs = require('node:fs');
const [port, readyFile] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  const remote = String(req.socket.remoteAddress || '').replace(/^::ffff:/, '');
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), remote, method: req.method, url: req.url, host: req.headers.host }) + '\\n');
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
 * argv: <url> [timeout-ms]. Prints {"status":…,"body":…} and exits 0, or prints the error
 * on stderr and exits 1. Host names resolve through the namespace's resolv.conf.
 */
export const HTTP_GET_JS = `'use strict';
const http = require('node:http');
const [url, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 3000);
const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => (body += d));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body }) + '\\n'));
});
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
