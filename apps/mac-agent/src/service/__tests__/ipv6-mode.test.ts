/** The Mac's IPv6 mode crosses into the engine once, at the gRPC layer: wgctl.v1.Ipv6Mode to the engine's word. */
import { Ipv6Mode, MacUpRequest } from '@wgctl/proto';
import { intentFromRequest } from '../server';

describe('Up request → engine intent: the IPv6 mode', () => {
  it.each([
    [Ipv6Mode.IPV6_MODE_UNSPECIFIED, 'auto'],
    [Ipv6Mode.IPV6_MODE_ROUTE, 'route'],
    [Ipv6Mode.IPV6_MODE_BLOCK, 'block'],
  ])('Ipv6Mode %s reaches the engine as %s', (mode, word) => {
    expect(intentFromRequest(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', ipv6: mode })).ipv6).toBe(word);
  });

  it('a mode this agent does not know (a newer controller) is refused, not read as auto', () => {
    expect(() => intentFromRequest(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', ipv6: Ipv6Mode.UNRECOGNIZED }))).toThrow(/^ipv6: unknown mode -1/);
  });
});

describe('Up request → engine intent: kill_switch_only', () => {
  it('reaches the engine only when set (a full Up carries no such word into the journal)', () => {
    expect(intentFromRequest(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', killSwitchOnly: true })).killSwitchOnly).toBe(true);
    expect(intentFromRequest(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130' }))).not.toHaveProperty('killSwitchOnly');
  });
});
