/**
 * Property tests of the other linux parsers (ip -j addr/route, ip monitor, nft -j, resolv.conf,
 * resolvectl, tcpdump): random text, random JSON documents and mutated real outputs either
 * parse or throw ParseError — never a TypeError — each input within a time bound.
 * (iptables: iptables-properties.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ADVERSARIAL_INPUTS, mutated, parseOrParseError, randomText, type Parse } from '../../testing/fuzz';
import { parseIpAddrJson, primaryIpAddress } from '../ip-addr';
import { parseIpMonitorLines } from '../ip-monitor';
import { formatIpRouteLine, parseIpRouteJson, usableDefaultRoutes } from '../ip-route';
import { parseNftJson } from '../nft';
import { parseResolvConf } from '../resolv-conf';
import { parseResolvectlScopes } from '../resolvectl';
import { parseTcpdumpOutput } from '../tcpdump';

const fixture = (name: string): string => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

const RESOLV = 'nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch corp.example lab.example\noptions edns0 trust-ad\n';
const RESOLVECTL = 'Global\n  Protocols: +LLMNR +mDNS -DNSOverTLS\nresolv.conf mode: stub\n\nLink 2 (eth0)\n  Current Scopes: DNS\n  DNS Servers: 192.0.2.53 2001:db8::53\n  DNS Domain: corp.example\n';

const parsers: Record<string, { parse: Parse; inputs: string[]; json?: boolean }> = {
  parseIpAddrJson: {
    parse: (t) => parseIpAddrJson(t).map((l) => [primaryIpAddress(l, 'inet'), primaryIpAddress(l, 'inet6')]),
    inputs: [fixture('ip-addr.json')],
    json: true,
  },
  parseIpRouteJson: {
    parse: (t) => {
      const routes = parseIpRouteJson(t);
      usableDefaultRoutes(routes);
      return routes.map(formatIpRouteLine);
    },
    inputs: ['ip-route-main.json', 'ip-6-route-main.json', 'ip-route-get.json'].map(fixture),
    json: true,
  },
  parseNftJson: { parse: parseNftJson, inputs: [fixture('nft-list-table.json')], json: true },
  parseIpMonitorLines: { parse: parseIpMonitorLines, inputs: ['ip-monitor.txt', 'ip-monitor-oneline-label.txt'].map(fixture) },
  parseResolvConf: { parse: parseResolvConf, inputs: [RESOLV] },
  parseResolvectlScopes: { parse: parseResolvectlScopes, inputs: [RESOLVECTL] },
  parseTcpdumpOutput: { parse: parseTcpdumpOutput, inputs: ['tcpdump-any.txt', 'tcpdump-e.txt', 'tcpdump-plain.txt'].map(fixture) },
};

const TOKENS = ['nameserver ', 'search ', 'Link 2 (eth0)', 'DNS Servers:', 'Deleted ', 'default via ', ' dev ', ' proto ', 'IP ', 'IP6 ', ' > ', ': UDP, length ', '{', '}', '"dst":', '"dev":'];

/** A real JSON document with one value somewhere replaced by any JSON value. */
function mutatedJson(texts: string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...texts), fc.nat(), fc.jsonValue({ maxDepth: 2 })).map(([text, pick, replacement]) => {
    const doc = JSON.parse(text) as unknown;
    const slots: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach((v, i) => (slots.push({ parent: node, key: i }), walk(v)));
      else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) slots.push({ parent: node as Record<string, unknown>, key: k }), walk(v);
    };
    walk(doc);
    if (slots.length === 0) return JSON.stringify(replacement);
    const slot = slots[pick % slots.length];
    (slot.parent as Record<string | number, unknown>)[slot.key] = replacement;
    return JSON.stringify(doc);
  });
}

describe('linux parsers: random and mutated input', () => {
  for (const [name, { parse, inputs, json }] of Object.entries(parsers)) {
    it(`${name}: parses or throws ParseError, each input within the time bound`, () => {
      const sources = [randomText(TOKENS), mutated(inputs), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))];
      if (json) sources.push(mutatedJson(inputs));
      fc.assert(fc.property(fc.oneof(...sources), (text) => void parseOrParseError(parse, text)), { numRuns: 300 });
    });
  }

  it('long adversarial input is handled in bounded time', () => {
    for (const text of ADVERSARIAL_INPUTS) for (const { parse } of Object.values(parsers)) parseOrParseError(parse, text, 1_000);
  });
});
