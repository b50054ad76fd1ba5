/**
 * The Capture RPC of the vm-agent (the shared core is @wgctl/capture): by default on the
 * WireGuard interface, with iputils ping. `wgctl verify` uses it to see the probe leave the
 * tunnel with the tunnel's source address.
 */
import type * as grpc from '@grpc/grpc-js';
import { captureHandler, iputilsPingArgv, type CaptureDeps } from '@wgctl/capture';
import type { CaptureRequest, CaptureResult } from '@wgctl/proto';
import { ExecRunner } from '@wgctl/runner';

/** The vm-agent's Capture: the default interface is the tunnel's (from the wg-quick config). */
export function vmCaptureHandler(
  engine: { describe(): Promise<{ interface: string }> },
  options: Partial<Omit<CaptureDeps, 'defaultInterface'>> = {},
): grpc.handleUnaryCall<CaptureRequest, CaptureResult> {
  return captureHandler({
    runner: options.runner ?? new ExecRunner(),
    pingArgv: iputilsPingArgv,
    ...options,
    defaultInterface: async () => (await engine.describe()).interface || undefined,
  });
}
