/**
 * For capture tests: a tcpdump stand-in (no process) that says "listening" (unless told not
 * to), prints `lines`, and either waits to be stopped or exits by itself after `exitAfterMs`;
 * and a way to call a Capture handler without a server.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CaptureRequest, CaptureResult } from '@wgctl/proto';
import type { StreamExit, StreamingOptions, StreamingProcess } from '@wgctl/runner';
import type { CaptureDeps } from '../capture';

export interface FakeTcpdumpOptions {
  lines?: string[];
  /** false: never prints "listening on …". */
  listen?: boolean;
  exitAfterMs?: number;
  exitCode?: number;
  stderr?: string[];
}

export interface FakeTcpdump {
  spawn: NonNullable<CaptureDeps['spawn']>;
  /** The argv of the last spawn (undefined: never spawned). */
  argv: () => readonly string[] | undefined;
  stopped: () => boolean;
}

export function fakeTcpdump(options: FakeTcpdumpOptions = {}): FakeTcpdump {
  let argv: readonly string[] | undefined;
  let stopped = false;
  const spawn = (a: readonly string[], o: StreamingOptions): StreamingProcess => {
    argv = a;
    let finish: (exit: StreamExit) => void = () => undefined;
    const exited = new Promise<StreamExit>((resolve) => (finish = resolve));
    const tail: string[] = [];
    const err = (line: string) => {
      tail.push(line);
      o.onStderrLine?.(line);
    };
    setTimeout(() => {
      for (const line of options.stderr ?? []) err(line);
      if (options.listen !== false) err(`listening on ${a[a.indexOf('-i') + 1]}, link-type RAW (Raw IP), snapshot length 262144 bytes`);
      for (const line of options.lines ?? []) o.onLine(line);
    }, 5);
    if (options.exitAfterMs !== undefined) setTimeout(() => finish({ code: options.exitCode ?? 1, signal: null }), options.exitAfterMs);
    return {
      argv: a,
      pid: 4242,
      exited,
      stderrTail: () => [...tail],
      stop: async () => {
        stopped = true;
        finish({ code: 0, signal: null });
        return exited;
      },
    };
  };
  return { spawn, argv: () => argv, stopped: () => stopped };
}

/** Calls a Capture handler as grpc-js would (no cancellation); rejects with the status error it reports or throws. */
export function invokeCapture(handler: grpc.handleUnaryCall<CaptureRequest, CaptureResult>, request: CaptureRequest): Promise<CaptureResult> {
  const call = { request, on: () => undefined, off: () => undefined } as unknown as grpc.ServerUnaryCall<CaptureRequest, CaptureResult>;
  return new Promise((resolve, reject) => {
    const result = handler(call, (err, value) => (err ? reject(err) : resolve(value!))) as unknown as Promise<void> | undefined;
    result?.catch(reject);
  });
}
