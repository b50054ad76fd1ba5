import { Ipv6Mode } from '../gen/wgctl/v1/mac_agent';
import { IPV6_MODE_BY_WORD, ipv6ModeWord, knownIpv6Mode } from '../ipv6-mode';

describe('Ipv6Mode and its words', () => {
  const modes = Object.values(Ipv6Mode).filter((m): m is Ipv6Mode => typeof m === 'number' && m !== Ipv6Mode.UNRECOGNIZED);

  it('every mode the proto defines has its word, and the word names it back', () => {
    expect(modes.map(ipv6ModeWord)).toEqual(['auto', 'route', 'block']);
    for (const mode of modes) {
      expect(IPV6_MODE_BY_WORD[ipv6ModeWord(mode)]).toBe(mode);
      expect(knownIpv6Mode(mode)).toBe(mode);
    }
  });

  it('anything else is not a mode: numbers this build does not know, other types', () => {
    for (const value of [7, Ipv6Mode.UNRECOGNIZED, '1', 'route', null, undefined]) expect(knownIpv6Mode(value)).toBeUndefined();
    expect(() => ipv6ModeWord(Ipv6Mode.UNRECOGNIZED)).toThrow(/not an Ipv6Mode: -1/);
  });
});
