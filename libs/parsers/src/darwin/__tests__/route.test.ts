import { ParseError, classifyRouteChange, classifyRouteMonitorMessage, parseRouteGet, parseRouteMonitor, routeMonitorDestination } from '@wgctl/parsers';

const METRICS = ` recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
       0         0         0         0         0         0      1500         0 `;

describe('parseRouteGet', () => {
  it('sees our split route behind "destination: default" by its mask', () => {
    const text = `   route to: 8.8.8.8\ndestination: default\n       mask: 128.0.0.0\n    gateway: 10.211.55.5\n  interface: bridge100\n      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING>\n${METRICS}\n`;
    expect(parseRouteGet(text)).toMatchObject({ destination: '0.0.0.0/1', isDefault: false, isSplitRoute: true, gateway: '10.211.55.5', interface: 'bridge100' });
    const upper = text.replace('destination: default', 'destination: 128.0.0.0').replace('route to: 8.8.8.8', 'route to: 203.0.113.9');
    expect(parseRouteGet(upper)).toMatchObject({ destination: '128.0.0.0/1', isSplitRoute: true });
  });

  it('reads a host route (no mask line) and an on-link route (no gateway line)', () => {
    const pinned = `   route to: 203.0.113.10\ndestination: 203.0.113.10\n    gateway: 192.168.1.1\n  interface: en0\n      flags: <UP,GATEWAY,HOST,DONE,STATIC>\n${METRICS}\n`;
    expect(parseRouteGet(pinned)).toMatchObject({ destination: '203.0.113.10/32', gateway: '192.168.1.1', interface: 'en0', flags: ['UP', 'GATEWAY', 'HOST', 'DONE', 'STATIC'] });
    const onLink = `   route to: 10.211.55.5\ndestination: 10.211.55.5\n  interface: bridge100\n      flags: <UP,HOST,DONE,LLINFO,WASCLONED,IFSCOPE,IFREF>\n${METRICS}\n`;
    const result = parseRouteGet(onLink)!;
    expect(result.gateway).toBeUndefined();
    expect(result.interface).toBe('bridge100');
  });

  it('reads IPv6 answers', () => {
    const text = `   route to: 2001:db8::9\ndestination: ::\n       mask: 8000::\n    gateway: fe80::1%bridge100\n  interface: bridge100\n      flags: <UP,GATEWAY,DONE,STATIC>\n${METRICS}\n`;
    expect(parseRouteGet(text)).toMatchObject({ family: 'inet6', destination: '::/1', isSplitRoute: true, gateway: 'fe80::1%bridge100' });
    const def = `   route to: 2001:db8::9\ndestination: default\n       mask: default\n    gateway: fe80::1%en0\n  interface: en0\n      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>\n${METRICS}\n`;
    expect(parseRouteGet(def)).toMatchObject({ family: 'inet6', destination: '::/0', isDefault: true });
  });

  it('returns null for empty output (no route) and refuses garbage', () => {
    expect(parseRouteGet('')).toBeNull();
    expect(parseRouteGet('  \n')).toBeNull();
    expect(() => parseRouteGet('hello world\n')).toThrow(ParseError);
    expect(() => parseRouteGet('   route to: 1.2.3.4\n')).toThrow(/destination/);
  });
});

describe('classifyRouteChange', () => {
  it.each([
    ['add net 0.0.0.0: gateway 10.211.55.5\n', '', 'ok', ''],
    ['add host 203.0.113.10: gateway 192.168.1.1\n', '', 'ok', ''],
    ['add net 0.0.0.0: gateway 10.211.55.5 (10.211.55.5)\n', '', 'ok', ''],
    ['add net ::: gateway fe80::1%bridge100\n', '', 'ok', ''],
    ['add net 0.0.0.0: gateway 10.211.55.5: File exists\n', 'route: writing to routing socket: File exists\n', 'exists', 'File exists'],
    ['delete host 203.0.113.10: gateway 192.168.1.1: not in table\n', 'route: writing to routing socket: not in table\n', 'not-in-table', 'not in table'],
    ['add net 0.0.0.0: gateway 10.9.9.9: Network is unreachable\n', 'route: writing to routing socket: Network is unreachable\n', 'unreachable', 'Network is unreachable'],
    ['delete net 0.0.0.0: gateway 10.211.55.5: entry in use\n', '', 'entry-in-use', 'entry in use'],
    ['', 'route: must be root to alter routing table\n', 'other', 'must be root to alter routing table'],
    ['add net 0.0.0.0: gateway 10.211.55.5: routing table overflow\n', '', 'other', 'routing table overflow'],
    ['add net 2001:db8::: gateway fe80::1%en0: File exists\n', '', 'exists', 'File exists'],
  ])('%j / %j → %s', (stdout, stderr, outcome, message) => {
    expect(classifyRouteChange(stdout, stderr)).toEqual({ outcome, message });
  });
});

describe('parseRouteMonitor', () => {
  const ours = `
got message of size 132 on Mon Mar  2 10:00:00 2026
RTM_ADD: Add Route: len 132, pid: 4242, seq 1, errno 0, flags:<UP,GATEWAY,DONE,STATIC>
locks:  inits: 
sockaddrs: <DST,GATEWAY,NETMASK>
 default 10.211.55.5 128.0.0.0
`;

  it('recognises the echo of our own `route add 0.0.0.0/1` and our pids', () => {
    const [message] = parseRouteMonitor(ours);
    expect(message.addresses).toEqual({ DST: 'default', GATEWAY: '10.211.55.5', NETMASK: '128.0.0.0' });
    expect(classifyRouteMonitorMessage(message)).toMatchObject({ kind: 'other', reason: 'one of our split routes (/1)' });
    const realDefault = parseRouteMonitor(ours.replace(' 128.0.0.0', ' default'))[0];
    expect(classifyRouteMonitorMessage(realDefault).kind).toBe('default-changed');
    expect(classifyRouteMonitorMessage(realDefault, { ownPids: [4242] }).kind).toBe('other');
  });

  it('reads network_cmds 705+ link addresses (`index: 6 en0:…`, spaces inside one value) and empty ones', () => {
    const text = `
got message of size 176 on Mon Mar  2 10:00:01 2026
RTM_ADD: Add Route: len 176, pid: 101, seq 9, errno 0, flags:<UP,GATEWAY,DONE,STATIC,GLOBAL>
locks:  inits: 
sockaddrs: <DST,GATEWAY,NETMASK,IFP,IFA>
 default 192.168.1.1 default index: 6 en0:a4.83.e7.12.34.56 192.168.1.20

got message of size 176 on Mon Mar  2 10:00:01 2026
RTM_DELETE: Delete Route: len 176, pid: 101, seq 10, errno 0, ifscope 6, ifref, flags:<GATEWAY,DONE,STATIC,IFSCOPE,CONDEMNED>
locks:  inits: 
sockaddrs: <DST,GATEWAY,NETMASK,IFP,IFA>
 default 192.168.1.1 default index: 6  192.168.1.20 
`;
    const [add, del] = parseRouteMonitor(text);
    expect(add.addresses.IFP).toBe('index: 6 en0:a4.83.e7.12.34.56');
    expect(add.ifp).toEqual({ index: 6, name: 'en0', linkAddress: 'a4.83.e7.12.34.56' });
    expect(add.addresses.IFA).toBe('192.168.1.20');
    expect(del).toMatchObject({ ifscope: 6, ifref: true, ifp: { index: 6 } });
    expect(del.addresses.IFA).toBe('192.168.1.20');
    expect(classifyRouteMonitorMessage(add).kind).toBe('default-changed');
    expect(classifyRouteMonitorMessage(del)).toMatchObject({ kind: 'default-changed', reason: 'scoped default route removed via 192.168.1.1' });
  });

  it('classifies address, interface, miss and unknown-family sockaddr messages', () => {
    const text = `
got message of size 160 on Mon Mar  2 10:00:02 2026
RTM_NEWADDR: address being added to iface: len 160, metric 0, flags:<UP>
sockaddrs: <NETMASK,IFP,IFA,BRD>
 255.255.255.0 en0:a4.83.e7.12.34.56 192.168.1.20 192.168.1.255

got message of size 148 on Mon Mar  2 10:00:02 2026
RTM_DELADDR: address being removed from iface: len 148, metric 0, flags:<UP>
sockaddrs: <NETMASK,IFP,IFA,BRD>
 (255) 0 ffff ff bridge100:6e.7e.67.eb.5b.64 192.168.64.1 192.168.64.255

got message of size 108 on Mon Mar  2 10:00:03 2026
RTM_MISS: Lookup failed on this address: len 108, pid: 0, seq 0, errno 0, flags:
locks:  inits: 
sockaddrs: <DST>
 203.0.113.99
`;
    const [added, removed, miss] = parseRouteMonitor(text);
    expect(added).toMatchObject({ type: 'RTM_NEWADDR', metric: 0, ifp: { name: 'en0' } });
    expect(classifyRouteMonitorMessage(added)).toMatchObject({ kind: 'link-changed', reason: 'address added to en0' });
    expect(removed.addresses.NETMASK).toBe('(255) 0 ffff ff');
    expect(classifyRouteMonitorMessage(removed, { ignoreInterfaces: ['bridge100'] }).kind).toBe('other');
    expect(miss.flags).toEqual([]);
    expect(classifyRouteMonitorMessage(miss).kind).toBe('other');
  });

  it('ignores defaults on ignored interfaces, non-default routes and IPv6 our halves', () => {
    const message = (values: string, flags = 'UP,GATEWAY,DONE,STATIC') =>
      parseRouteMonitor(`RTM_ADD: Add Route: len 176, pid: 7, seq 1, errno 0, flags:<${flags}>\nlocks:  inits: \nsockaddrs: <DST,GATEWAY,NETMASK,IFP,IFA>\n ${values}\n`)[0];
    expect(classifyRouteMonitorMessage(message('default 192.168.64.1 default bridge100:1.2.3.4.5.6 192.168.64.1'), { ignoreInterfaces: ['bridge100'] }).kind).toBe('other');
    expect(classifyRouteMonitorMessage(message('203.0.113.10 192.168.1.1 255.255.255.255 en0:1.2.3.4.5.6 192.168.1.20')).reason).toBe('not a default route');
    expect(classifyRouteMonitorMessage(message(':: fe80::1%bridge100 8000:: bridge100:1.2.3.4.5.6 fe80::2%bridge100')).kind).toBe('other');
    expect(classifyRouteMonitorMessage(message(':: fe80::1%en0 :: en0:1.2.3.4.5.6 fe80::2%en0'))).toMatchObject({ kind: 'default-changed', family: 'inet6' });
  });

  it('refuses text that is not monitor output', () => {
    expect(() => parseRouteMonitor('hello\n')).toThrow(ParseError);
    expect(() => parseRouteMonitor('got message of size 1 on now\n')).toThrow(/no RTM_/);
    expect(() => parseRouteMonitor('RTM_ADD: Add Route: len 1, pid: 1, seq 1, errno 0, flags:<UP>\nsockaddrs: <DST,GATEWAY>\n 1.2.3.4\n')).toThrow(/expected 2/);
    expect(() => parseRouteMonitor('RTM_ADD: Add Route: len 1, flags:<UP>\nsockaddrs: <DST,NOPE>\n')).toThrow(/unknown sockaddr/);
    expect(parseRouteMonitor('')).toEqual([]);
  });
});

describe('routeMonitorDestination', () => {
  const route = (sockaddrs: string, values: string) =>
    parseRouteMonitor(`RTM_DELETE: Delete Route: len 1, pid: 0, seq 1, errno 0, flags:<GATEWAY,DONE>\nlocks:  inits: \nsockaddrs: <${sockaddrs}>\n ${values}\n`)[0];

  it.each([
    ['DST,GATEWAY,NETMASK', 'default 10.211.55.5 128.0.0.0', '0.0.0.0/1'],
    ['DST,GATEWAY,NETMASK', '128.0.0.0 10.211.55.5 128.0.0.0', '128.0.0.0/1'],
    ['DST,GATEWAY,NETMASK', 'default 192.168.1.1 default', '0.0.0.0/0'],
    ['DST,GATEWAY', '203.0.113.10 192.168.1.1', '203.0.113.10/32'],
    ['DST,GATEWAY,NETMASK', ':: fe80::1%bridge100 8000::', '::/1'],
    ['DST,GATEWAY,NETMASK', '8000:: fe80::1%bridge100 8000::', '8000::/1'],
    ['DST,GATEWAY', '2001:DB8::10 fe80::1%en0', '2001:db8::10/128'],
    ['DST,GATEWAY,NETMASK', '10.0.0.0 192.168.1.1 (255) 0 ffff ff', undefined],
    ['GATEWAY', '192.168.1.1', undefined],
  ])('<%s> %s → %s', (sockaddrs, values, expected) => {
    expect(routeMonitorDestination(route(sockaddrs, values))).toBe(expected);
  });
});
