'use strict';
/**
 * One unary gRPC call with chosen credentials, for the security tests: run inside a lab
 * namespace (`ip netns exec <ns> node grpc-probe.cjs '<json>'`). The request is the empty
 * message (valid for Describe and for a health check of the whole server).
 *
 * argv[2]: {"target": "198.51.100.2:7443" | "unix:/path", "method": "/pkg.Service/Method",
 *           "credentials": "plaintext" | "tls", "ca"?: file, "cert"?: file, "key"?: file,
 *           "serverName"?: string}
 * stdout: {"ok": true} or {"ok": false, "code": <grpc status>, "details": "…"}
 */
const { readFileSync } = require('node:fs');
const grpc = require('@grpc/grpc-js');

const options = JSON.parse(process.argv[2]);
const read = (file) => (file ? readFileSync(file) : null);
const credentials =
  options.credentials === 'plaintext'
    ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(read(options.ca), read(options.key), read(options.cert));
const channelOptions = options.serverName
  ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName }
  : {};
const client = new grpc.Client(options.target, credentials, channelOptions);
const identity = (x) => x;
client.makeUnaryRequest(options.method, identity, identity, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (error) => {
  process.stdout.write(JSON.stringify(error ? { ok: false, code: error.code, details: error.details } : { ok: true }) + '\n');
  client.close();
});
