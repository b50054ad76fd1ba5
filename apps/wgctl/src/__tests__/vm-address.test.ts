/** config vm.address as the IP the Mac's routes need (a literal is kept; a name is looked up, node:dns loaded only then). */
import type { WgctlConfig } from '@wgctl/config';
import { vmAddressIp } from '../commands/context';

const withAddress = (address: string) => ({ vm: { address } }) as unknown as WgctlConfig;

describe('vmAddressIp', () => {
  it('keeps an IP literal as it is', async () => {
    expect(await vmAddressIp(withAddress('192.0.2.10'))).toBe('192.0.2.10');
    expect(await vmAddressIp(withAddress('2001:db8::10'))).toBe('2001:db8::10');
  });

  it('looks a name up (localhost: /etc/hosts, no query leaves the host)', async () => {
    expect(['127.0.0.1', '::1']).toContain(await vmAddressIp(withAddress('localhost')));
  });
});
