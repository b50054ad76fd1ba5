import fc from 'fast-check';
import {
  durationMsSchema,
  formatListenAddress,
  formatZodError,
  ipSchema,
  ipv6Schema,
  isIPv4,
  isInterfaceName,
  isIpAddressOrZoned,
  isLoopbackHost,
  parseAddress,
  parseCidr,
  parseListenAddress,
  portSchema,
  targetAddressSchema,
} from '../index';
import { z } from 'zod';

const ok = (schema: z.ZodType, value: unknown) => schema.safeParse(value).success;

describe('IP and CIDR validators', () => {
  it('accepts and rejects IPv4/IPv6 addresses', () => {
    expect(isIPv4('192.0.2.1')).toBe(true);
    expect(isIPv4('256.0.0.1')).toBe(false);
    expect(isIPv4('192.0.2')).toBe(false);
    expect(isIPv4('2001:db8::1')).toBe(false);
    expect(ok(ipv6Schema, '2001:db8::1')).toBe(true);
    expect(ok(ipv6Schema, '::ffff:192.0.2.1')).toBe(true);
    expect(ok(ipv6Schema, 'fe80::1%en0')).toBe(false);
    expect(ok(ipv6Schema, '[2001:db8::1]')).toBe(false);
    expect(ok(ipSchema, '198.51.100.7')).toBe(true);
    expect(ok(ipSchema, '2001:db8::7')).toBe(true);
    expect(ok(ipSchema, 'example.com')).toBe(false);
    expect(ok(ipSchema, 42)).toBe(false);
  });

  it('accepts a zone id on IPv6 only where asked, letters and digits only', () => {
    for (const value of ['192.0.2.1', '2001:db8::1', 'fe80::1%en0', 'fe80::1%bridge100', 'fe80::%1', '::ffff:192.0.2.1%en0']) {
      expect({ value, ok: isIpAddressOrZoned(value) }).toEqual({ value, ok: true });
    }
    for (const value of ['192.0.2.1%en0', 'fe80::1%', 'fe80::1%en-0', 'fe80::1%en0%x', 'fe80::1%en0 ', 'fe80::1%en0;x', 'example.com', '']) {
      expect({ value, ok: isIpAddressOrZoned(value) }).toEqual({ value, ok: false });
    }
  });

  it('parses CIDRs of both families with prefix bounds', () => {
    expect(parseCidr('192.0.2.0/24')).toEqual({ address: '192.0.2.0', prefix: 24, family: 4 });
    expect(parseCidr('2001:db8::/32')).toEqual({ address: '2001:db8::', prefix: 32, family: 6 });
    expect(parseCidr('10.0.0.2/32')?.prefix).toBe(32);
    for (const bad of ['192.0.2.0/33', '192.0.2.0/', '192.0.2.0', '2001:db8::/129', '192.0.2.0/024', '192.0.2.0/2/4', 'x/8']) {
      expect({ bad, parsed: parseCidr(bad) }).toEqual({ bad, parsed: undefined });
    }
    expect(parseCidr('0.0.0.0/1')?.family).toBe(4);
    expect(parseCidr('::/1')?.family).toBe(6);
    expect(parseCidr('128.0.0.0/1')?.family).toBe(4);
  });

  it('round-trips every generated IPv4 CIDR', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
        expect(parseCidr(`${ip}/${prefix}`)).toEqual({ address: ip, prefix, family: 4 });
      }),
      { numRuns: 200 },
    );
  });
});

describe('ports, durations, interface names', () => {
  it('accepts ports 1–65535 only', () => {
    expect(ok(portSchema, 1)).toBe(true);
    expect(ok(portSchema, 65535)).toBe(true);
    expect(ok(portSchema, 0)).toBe(false);
    expect(ok(portSchema, 65536)).toBe(false);
    expect(ok(portSchema, 80.5)).toBe(false);
    expect(ok(portSchema, '80')).toBe(false);
  });

  it('accepts positive whole-millisecond durations up to a day', () => {
    expect(ok(durationMsSchema, 15000)).toBe(true);
    expect(ok(durationMsSchema, 0)).toBe(false);
    expect(ok(durationMsSchema, -5)).toBe(false);
    expect(ok(durationMsSchema, 1.5)).toBe(false);
    expect(ok(durationMsSchema, 86_400_001)).toBe(false);
  });

  it('accepts interface names the kernel accepts', () => {
    for (const name of ['wg0', 'utun7', 'en0', 'veth-a.1', 'a', 'x'.repeat(15), 'br=+_']) expect({ name, ok: isInterfaceName(name) }).toEqual({ name, ok: true });
    for (const name of ['', '.', '..', 'x'.repeat(16), 'wg 0', 'wg/0', 'wg0;rm', 'wg:0', '-wg0']) expect({ name, ok: isInterfaceName(name) }).toEqual({ name, ok: false });
  });
});

describe('listen and target addresses', () => {
  it('parses ADDR:PORT, [V6]:PORT, host names and unix:/path', () => {
    expect(parseListenAddress('192.0.2.1:7443')).toEqual({ kind: 'tcp', host: '192.0.2.1', port: 7443, family: 4 });
    expect(parseListenAddress('[2001:db8::1]:7443')).toEqual({ kind: 'tcp', host: '2001:db8::1', port: 7443, family: 6 });
    expect(parseListenAddress('localhost:0')).toEqual({ kind: 'tcp', host: 'localhost', port: 0, family: 'name' });
    expect(parseListenAddress('unix:/run/wgctl/mac-agent.sock')).toEqual({ kind: 'unix', path: '/run/wgctl/mac-agent.sock' });
  });

  it('explains what is wrong with a bad address', () => {
    const reason = (value: string) => {
      const result = parseAddress(value);
      return result.ok ? 'ok' : result.reason;
    };
    expect(reason('2001:db8::1:7443')).toMatch(/needs brackets/);
    expect(reason('unix:relative.sock')).toMatch(/absolute/);
    expect(reason('192.0.2.1')).toMatch(/expected ADDR:PORT/);
    expect(reason('192.0.2.1:99999')).toMatch(/out of range/);
    expect(reason('192.0.2.1:0')).toMatch(/out of range \(1–65535\)/);
    expect(reason('[192.0.2.1]:80')).toMatch(/not an IPv6 address/);
    expect(reason('bad_host:80')).toMatch(/not an IPv4 address or host name/);
    expect(reason(`unix:/${'x'.repeat(120)}`)).toMatch(/longer than 107/);
    expect(() => parseListenAddress('nope')).toThrow('invalid address "nope": expected ADDR:PORT, [IPV6]:PORT or unix:/path');
  });

  it('allows port 0 only for listening', () => {
    expect(parseAddress('127.0.0.1:0', { allowPortZero: true }).ok).toBe(true);
    expect(ok(targetAddressSchema, '127.0.0.1:0')).toBe(false);
    expect(ok(targetAddressSchema, '[::1]:7443')).toBe(true);
  });

  it('formats addresses back to their canonical text', () => {
    for (const text of ['192.0.2.1:80', '[2001:db8::1]:80', 'unix:/tmp/a.sock', 'vm.local:7443']) {
      expect(formatListenAddress(parseListenAddress(text))).toBe(text);
    }
  });

  it('knows the loopback hosts', () => {
    expect(['127.0.0.1', '::1', 'localhost', 'LOCALHOST'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '192.0.2.1', '127.0.0.1.example'].some(isLoopbackHost)).toBe(false);
  });
});

describe('formatZodError', () => {
  it('lists each issue with its JSON path', () => {
    const schema = z.object({ vm: z.object({ port: portSchema }), dns: z.array(ipSchema) });
    const result = schema.safeParse({ vm: { port: 0 }, dns: ['192.0.2.53', 'nope'] });
    expect(result.success).toBe(false);
    const text = formatZodError(result.error!);
    expect(text.split('\n')).toEqual(['vm.port: port must be 1–65535', 'dns[1]: expected an IPv4 or IPv6 address']);
  });
});
