/**
 * A one-shot gRPC client for the vm-agent's end-to-end tests, bundled by the test and run
 * inside a network namespace (jest itself lives in the root namespace and cannot reach it).
 *
 *   node client.js TARGET CREDS COMMAND [JSON]
 *     CREDS:   TLS_DIR:ROLE (mTLS with TLS_DIR/ROLE.{crt,key}) or "insecure"
 *     COMMAND: health [SERVICE] | describe | status | up JSON | down JSON
 *
 * Prints one JSON object per line, as things happen: {"progress":…} for each streamed
 * message, then {"result":…} or {"error":{"code":N,"details":"…"}}. Exit code 0 either way
 * (the test reads the output); 2 on bad usage.
 */
import type * as grpc from '@grpc/grpc-js';
import { DescribeRequest, StatusRequest, VmAgentClient, VmDownRequest, VmUpRequest } from '@wgctl/proto';
import { connectAgent, healthCheck, loadTlsMaterial, readStream, unaryCall, type ConnectOptions } from '@wgctl/transport';
import type { Role } from '@wgctl/transport';

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main(): Promise<void> {
  const [target, creds, command, arg] = process.argv.slice(2);
  if (!target || !creds || !command) {
    process.stderr.write('usage: client TARGET TLS_DIR:ROLE|insecure COMMAND [JSON]\n');
    process.exit(2);
  }
  let options: ConnectOptions;
  if (creds === 'insecure') options = { insecure: true };
  else {
    const [dir, role] = creds.split(':');
    options = { tls: loadTlsMaterial(dir, role as Role) };
  }
  try {
    if (command === 'health') {
      print({ result: await healthCheck(target, { ...options, serverName: options.tls ? 'vm-agent' : undefined, timeoutMs: 5000 }, arg ?? '') });
      return;
    }
    const client = connectAgent(VmAgentClient, target, options);
    try {
      if (command === 'describe') {
        print({ result: await unaryCall(client.describe.bind(client), DescribeRequest.fromPartial({}), { timeoutMs: 10_000 }) });
      } else if (command === 'status') {
        print({ result: await unaryCall(client.status.bind(client), StatusRequest.fromPartial({}), { timeoutMs: 10_000 }) });
      } else if (command === 'up' || command === 'down') {
        const deadline = new Date(Date.now() + 60_000);
        const stream =
          command === 'up'
            ? client.up(VmUpRequest.fromPartial(JSON.parse(arg ?? '{}')), { deadline })
            : client.down(VmDownRequest.fromPartial(JSON.parse(arg ?? '{}')), { deadline });
        for await (const progress of readStream(stream)) print({ progress });
        print({ result: 'end' });
      } else {
        process.stderr.write(`unknown command ${command}\n`);
        process.exit(2);
      }
    } finally {
      client.close();
    }
  } catch (e) {
    const error = e as grpc.ServiceError;
    print({ error: { code: error.code ?? -1, details: error.details ?? error.message } });
  }
}

void main();
