/**
 * The Capture RPC of the mac-agent (the shared core is @wgctl/capture): by default on the
 * uplink, where nothing but WireGuard UDP to the server may appear while up. ping differs by
 * driver: macOS's -W is in milliseconds and IPv6 needs ping6.
 */
import type * as grpc from '@grpc/grpc-js';
import { captureHandler, pingArgvFor, readInterfaceLink, type CaptureDeps } from '@wgctl/capture';
import type { CaptureRequest, CaptureResult } from '@wgctl/proto';
import { ExecRunner } from '@wgctl/runner';

/** The mac-agent's Capture: the default interface is the uplink the engine discovers. */
export function macCaptureHandler(
  engine: { readonly driverName: string; describe(): Promise<{ uplink: { interface: string } | null }> },
  options: Partial<Omit<CaptureDeps, 'defaultInterface'>> = {},
): grpc.handleUnaryCall<CaptureRequest, CaptureResult> {
  const runner = options.runner ?? new ExecRunner();
  return captureHandler({
    runner,
    pingArgv: pingArgvFor(engine.driverName),
    // The uplink's own MAC: verify judges what the Mac sent, not what its neighbours broadcast.
    interfaceLink: (iface) => readInterfaceLink(runner, engine.driverName, iface),
    ...options,
    defaultInterface: async () => (await engine.describe()).uplink?.interface || undefined,
  });
}
