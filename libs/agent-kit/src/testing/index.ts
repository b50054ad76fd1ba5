/**
 * Test helpers for both agents' Up/Down streams: how long after its last message (the outcome)
 * a server-streaming call's status reaches a client that has an event loop of its own (a
 * worker thread), so that work the agent does after the reply cannot hide its cost.
 */
import { Worker } from 'node:worker_threads';

export interface StreamEnd {
  code: number;
  /** The call's messages, as bytes. */
  messages: Uint8Array[];
  /** From the last message to the status, in ms (the client's clock). */
  gapMs: number;
}

const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
const grpc = require(workerData.grpcPath);
const client = new grpc.Client(workerData.target, grpc.credentials.createInsecure());
const call = client.makeServerStreamRequest(workerData.method, (b) => b, (b) => b, Buffer.from(workerData.request), new grpc.Metadata(), {});
const messages = [];
let lastAt = 0;
call.on('data', (m) => { lastAt = performance.now(); messages.push(new Uint8Array(m)); });
call.on('error', () => undefined);
call.on('status', (s) => { parentPort.postMessage({ code: s.code, messages, gapMs: performance.now() - lastAt }); client.close(); });
`;

/**
 * One plaintext server-streaming call (`method`: '/wgctl.v1.VmAgent/Down'), made from a worker
 * thread. `grpcPath`: require.resolve('@grpc/grpc-js') of the caller (this library imports no gRPC).
 */
export async function timeStreamEnd(options: { grpcPath: string; target: string; method: string; request: Uint8Array }): Promise<StreamEnd> {
  const worker = new Worker(CLIENT, { eval: true, workerData: options });
  try {
    return await new Promise<StreamEnd>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}

/** Holds the event loop, as many synchronous spawns (fork/exec) would. */
export function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy on purpose
  }
}
