/**
 * ping's argv for a capture's probe, per system: pure builders, so each agent picks its own and
 * tests assert the exact command. Both exit 0 iff a reply came; the target is always an IP
 * literal already checked by planCapture.
 */
import { isIPv6 } from '@wgctl/config';

/** The probe of a capture, as planCapture checked it: an IP literal, count and spacing in bounds. */
export interface ProbePlan {
  target: string;
  count: number;
  intervalS: number;
}

/** iputils ping (Linux): IPv4 and IPv6 literals alike; -W in seconds. */
export function iputilsPingArgv(probe: ProbePlan): string[] {
  return ['ping', '-n', isIPv6(probe.target) ? '-6' : '-4', '-c', String(probe.count), '-i', String(probe.intervalS), '-W', '1', probe.target];
}

/** macOS: ping6 for IPv6 (it has no reply-wait flag); ping's -W is in milliseconds. */
export function darwinPingArgv(probe: ProbePlan): string[] {
  const count = ['-c', String(probe.count), '-i', String(probe.intervalS)];
  return isIPv6(probe.target) ? ['ping6', '-n', ...count, probe.target] : ['ping', '-n', ...count, '-W', '1000', probe.target];
}

/** The builder for a host driver's system ('darwin' or anything Linux). */
export function pingArgvFor(system: string): (probe: ProbePlan) => string[] {
  return system === 'darwin' ? darwinPingArgv : iputilsPingArgv;
}
