/** The kernel's source address towards the VM (connected UDP socket, nothing sent), and which targets are this host. */
import { localSourceAddress, sameHostTarget } from '../local-source';

describe('local-source', () => {
  it('finds the source address the kernel picks for a destination (loopback here), undefined for a non-IP', async () => {
    expect(await localSourceAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(await localSourceAddress('vm.example')).toBeUndefined();
  });

  it('treats unix sockets, localhost and 127/8 as this host', () => {
    expect(sameHostTarget('unix:/var/run/wgctl/mac-agent.sock')).toBe(true);
    expect(sameHostTarget('127.0.0.1:7444')).toBe(true);
    expect(sameHostTarget('[::1]:7444')).toBe(true);
    expect(sameHostTarget('localhost:7444')).toBe(true);
    expect(sameHostTarget('198.51.100.1:7444')).toBe(false);
  });
});
