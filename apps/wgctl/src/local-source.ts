/**
 * The address this host uses to reach the VM: the kernel's source-address choice for a
 * connected UDP socket. Connecting a UDP socket sends nothing. Only meaningful when the
 * controller runs on the same host as the mac-agent (unix socket or loopback target).
 */
import type * as Dgram from 'node:dgram';
import { isIPv4, isIPv6 } from '@wgctl/config';

export function sameHostTarget(target: string): boolean {
  if (target.startsWith('unix:')) return true;
  const host = target.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function localSourceAddress(destination: string, timeoutMs = 2000): Promise<string | undefined> {
  const type = isIPv4(destination) ? 'udp4' : isIPv6(destination) ? 'udp6' : undefined;
  if (type === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    // Loaded here: `up` imports this module, and node:dgram costs ~1.5 ms at start-up for a
    // fallback that runs only when the mac-agent reports no vnic address.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createSocket } = require('node:dgram') as typeof Dgram;
    const socket = createSocket(type);
    const finish = (value: string | undefined): void => {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve(value);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('error', () => finish(undefined));
    // Port 9 (discard): any port works, nothing is sent.
    socket.connect(9, destination, () => {
      const address = socket.address().address;
      finish(address && address !== '0.0.0.0' && address !== '::' ? address : undefined);
    });
  });
}
