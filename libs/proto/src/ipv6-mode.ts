/**
 * The Mac's IPv6 mode is wgctl.v1.Ipv6Mode (mac_agent.proto) wherever a type is needed. Where
 * it is written as a word — the controller's config file, its JSON output, MacStatus.ipv6, the
 * mac-agent's engine and journal (which see no proto) — this table is the one place the two meet.
 */
import { Ipv6Mode } from './gen/wgctl/v1/mac_agent';

export const IPV6_MODE_BY_WORD = {
  auto: Ipv6Mode.IPV6_MODE_UNSPECIFIED,
  route: Ipv6Mode.IPV6_MODE_ROUTE,
  block: Ipv6Mode.IPV6_MODE_BLOCK,
} as const;

export type Ipv6ModeWord = keyof typeof IPV6_MODE_BY_WORD;

/** What auto comes to once the pieces are known: the mode in effect. */
export type AppliedIpv6Mode = Ipv6Mode.IPV6_MODE_ROUTE | Ipv6Mode.IPV6_MODE_BLOCK;

/** `value` if it is a mode this build knows (not UNRECOGNIZED, not a newer one); else undefined. */
export function knownIpv6Mode(value: unknown): Ipv6Mode | undefined {
  return (Object.values(IPV6_MODE_BY_WORD) as unknown[]).includes(value) ? (value as Ipv6Mode) : undefined;
}

export function ipv6ModeWord(mode: Ipv6Mode): Ipv6ModeWord {
  const word = (Object.keys(IPV6_MODE_BY_WORD) as Ipv6ModeWord[]).find((w) => IPV6_MODE_BY_WORD[w] === mode);
  if (word === undefined) throw new Error(`not an Ipv6Mode: ${String(mode)}`);
  return word;
}
