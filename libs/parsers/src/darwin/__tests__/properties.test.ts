/**
 * Property tests: every darwin parser, fed random text or mutated real captures, either
 * answers or throws ParseError (never a TypeError/RangeError), and answers quickly.
 */
import fc from 'fast-check';
import {
  classifyPfRelease,
  classifyRouteChange,
  classifyRouteMonitorMessage,
  findDefaultGateway,
  normalizePfRule,
  normalizePfRuleset,
  parseAdditionalRoutes,
  parseDnsServers,
  parseIfconfig,
  parseNetstatRoutes,
  parseNetworkServices,
  parsePfAnchors,
  parsePfEnableOutput,
  parsePfInfo,
  parsePfReferences,
  parsePfRules,
  parsePfSyntaxErrors,
  parseRouteGet,
  parseRouteMonitor,
  parseScutilNwi,
  parseSearchDomains,
  routeMonitorDestination,
} from '@wgctl/parsers';
import { PER_INPUT_LIMIT_MS, parseOrParseError } from '../../testing/fuzz';
import { fixture, fixtureNames } from './fixture-helpers';

type Parser = (text: string) => unknown;

const parsers: Record<string, { parse: Parser; fixtures: RegExp }> = {
  parseNetstatRoutes: {
    parse: (t) => {
      const routes = parseNetstatRoutes(t);
      findDefaultGateway(routes, 'inet');
      return findDefaultGateway(routes, 'inet6');
    },
    fixtures: /^netstat-/,
  },
  parseRouteGet: { parse: parseRouteGet, fixtures: /^route-get-/ },
  classifyRouteChange: { parse: (t) => classifyRouteChange(t, t), fixtures: /^route-add-/ },
  parseRouteMonitor: { parse: (t) => parseRouteMonitor(t).map((m) => [classifyRouteMonitorMessage(m, { ownPids: [1] }), routeMonitorDestination(m)]), fixtures: /^route-monitor-/ },
  parsePfRules: { parse: parsePfRules, fixtures: /^pfctl-(a-|killswitch|mullvad|s-rules)/ },
  normalizePfRule: { parse: (t) => t.split('\n').map(normalizePfRule), fixtures: /^pfctl-(a-|killswitch|s-rules)/ },
  normalizePfRuleset: { parse: normalizePfRuleset, fixtures: /(\.conf$|^pf-conf)/ },
  parsePfInfo: { parse: (t) => parsePfInfo(t, new Date(0)), fixtures: /^pfctl-(s-info|si-)/ },
  parsePfReferences: { parse: parsePfReferences, fixtures: /^pfctl-s-references/ },
  parsePfEnableOutput: { parse: parsePfEnableOutput, fixtures: /^pfctl-E-X/ },
  classifyPfRelease: { parse: (t) => classifyPfRelease(t, t), fixtures: /^pfctl-(X|E-X)/ },
  parsePfSyntaxErrors: { parse: parsePfSyntaxErrors, fixtures: /^pfctl-(F-all|strings)/ },
  parsePfAnchors: { parse: parsePfAnchors, fixtures: /^pfctl-osx/ },
  parseNetworkServices: { parse: parseNetworkServices, fixtures: /^networksetup-list/ },
  parseDnsServers: { parse: parseDnsServers, fixtures: /^networksetup-(getdns|unknown)/ },
  parseSearchDomains: { parse: parseSearchDomains, fixtures: /^networksetup-(getdns|unknown)/ },
  parseAdditionalRoutes: { parse: parseAdditionalRoutes, fixtures: /^networksetup-getadditional/ },
  parseIfconfig: { parse: parseIfconfig, fixtures: /^ifconfig-/ },
  parseScutilNwi: { parse: parseScutilNwi, fixtures: /^scutil-/ },
};

/** Answers or throws ParseError, within the per-input time bound (see testing/fuzz.ts). */
function onlyParseErrors(parse: Parser, text: string, limitMs = PER_INPUT_LIMIT_MS): boolean {
  parseOrParseError(parse, text, limitMs);
  return true;
}

/** A real capture with random edits: characters deleted, inserted, lines duplicated or dropped. */
function mutatedFixture(names: string[]): fc.Arbitrary<string> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 6, unit: fc.constantFrom(' ', '\t', '\n', ':', '/', '%', '{', '}', '(', ')', '<', '>', '!', '#', '"', '0', '9', 'a', 'Z', '.', ',', '$') }) }),
    fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('drop-line' as const), at: fc.nat() }),
  );
  return fc.tuple(fc.constantFrom(...names), fc.array(edit, { minLength: 1, maxLength: 5 })).map(([name, edits]) => {
    let text = fixture(name);
    for (const e of edits) {
      if (e.kind === 'delete') {
        const at = e.at % (text.length + 1);
        text = text.slice(0, at) + text.slice(at + e.length);
      } else if (e.kind === 'insert') {
        const at = e.at % (text.length + 1);
        text = text.slice(0, at) + e.text + text.slice(at);
      } else {
        const lines = text.split('\n');
        const at = e.at % lines.length;
        if (e.kind === 'duplicate-line') lines.splice(at, 0, lines[at]);
        else lines.splice(at, 1);
        text = lines.join('\n');
      }
    }
    return text;
  });
}

const randomText = fc.oneof(
  fc.string({ maxLength: 400 }),
  fc.string({ maxLength: 400, unit: 'grapheme' }),
  fc.array(fc.string({ maxLength: 60, unit: fc.constantFrom(' ', ' ', 'a', 'U', 'G', 'S', '0', '1', '.', ':', '/', '%', '#', '<', '>', '{', '}', 'x', '\t', '!', 'default', 'link#4', 'en0', 'RTM_ADD: ', 'Status: ', 'Token : ') }), { maxLength: 12 }).map((lines) => lines.join('\n')),
);

describe('darwin parsers never crash with anything but ParseError', () => {
  for (const [name, { parse, fixtures }] of Object.entries(parsers)) {
    const names = fixtureNames().filter((n) => fixtures.test(n));

    it(`${name}: has real captures to mutate`, () => {
      expect(names.length).toBeGreaterThan(0);
    });

    it(`${name}: random text and mutated captures`, () => {
      const started = Date.now();
      fc.assert(fc.property(fc.oneof(randomText, mutatedFixture(names)), (text) => onlyParseErrors(parse, text)), { numRuns: 400 });
      expect(Date.now() - started).toBeLessThan(5000);
    });
  }

  it('long adversarial lines are handled in bounded time', () => {
    const long = [
      '1 '.repeat(20000),
      `${' '.repeat(50000)}x`,
      `${'\t'.repeat(40000)}x`,
      'RTM_ADD: '.repeat(5000),
      `default ${'a'.repeat(30000)} UGSc en0`,
      '{'.repeat(5000),
      `pass from ${'!'.repeat(5000)} 1.2.3.4`,
      `${' 1'.repeat(20000)} 0 days 00:00:00x`,
      `Status: ${' '.repeat(40000)}`,
      '  x  1'.repeat(10000),
      `  [ ${'Ab: 1 '.repeat(8000)}`,
      'x:1: '.repeat(10000),
      ' (1) 1'.repeat(10000),
      `media: ${' '.repeat(40000)}x`,
    ];
    const started = Date.now();
    for (const text of long) for (const { parse } of Object.values(parsers)) onlyParseErrors(parse, text, 1_000);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
