'use strict';
/**
 * One scrape as Prometheus makes it (HTTPS, the pairing CA, a client certificate, the agent's
 * certificate name), run inside a lab namespace: the agents' addresses are reachable only there.
 * argv: <host:port> <server-name> <ca.crt> <client.crt> <client.key>
 * Prints {"status":…,"contentType":…,"body":…} and exits 0, or prints the error and exits 1.
 */
const https = require('node:https');
const fs = require('node:fs');

const [address, servername, caFile, certFile, keyFile] = process.argv.slice(2);
const colon = address.lastIndexOf(':');
const req = https.request(
  {
    host: address.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(address.slice(colon + 1)),
    path: '/metrics',
    servername,
    ca: fs.readFileSync(caFile),
    cert: fs.readFileSync(certFile),
    key: fs.readFileSync(keyFile),
    agent: false,
    timeout: 5000,
  },
  (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, contentType: res.headers['content-type'] || '', body }) + '\n'));
  },
);
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stderr.write(`scrape ${address}: ${e.code ? e.code + ' ' : ''}${e.message}\n`);
  process.exit(1);
});
req.end();
