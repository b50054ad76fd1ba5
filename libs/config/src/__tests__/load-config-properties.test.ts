/**
 * Property tests of the config loader: a valid config file with random edits (of its text, or
 * of its JSON values) either loads — and then every field satisfies its validator — or fails
 * with a ConfigError that names the file and, for a bad value, the field's JSON path. Never
 * another error, never slow.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError, isHostname, isIpAddress, isPort, loadConfig, parseAddress, parseWgctlConfig, type WgctlConfig } from '../index';

const PER_INPUT_LIMIT_MS = 250;

const VALID = {
  version: 1,
  vm: { address: '192.0.2.10', port: 7443, tlsServerName: 'vm-agent' },
  mac: { agent: 'unix:/var/run/wgctl/mac-agent.sock' },
  tlsDir: 'tls',
  dns: ['192.0.2.53', '2001:db8::53'],
  handshakeTimeoutMs: 15000,
  ipv6: 'auto',
};
const VALID_TEXT = `${JSON.stringify(VALID, null, 2)}\n`;

let dir: string;
let n = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wth-config-props-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` to a fresh 0600 file and loads it; returns the config or the ConfigError. */
function load(text: string): { config?: WgctlConfig; error?: ConfigError; path: string } {
  const path = join(dir, `c${n++}.json`);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  const started = performance.now();
  try {
    return { config: loadConfig(path), path };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { error: e, path };
  } finally {
    const ms = performance.now() - started;
    if (ms > PER_INPUT_LIMIT_MS) throw new Error(`loadConfig took ${ms.toFixed(1)} ms`);
  }
}

/** What a loaded config must satisfy, whatever the input was. */
function expectValid(config: WgctlConfig): void {
  expect(config.version).toBe(1);
  expect(isIpAddress(config.vm.address) || isHostname(config.vm.address)).toBe(true);
  expect(isPort(config.vm.port)).toBe(true);
  expect(parseAddress(config.mac.agent, { allowPortZero: false }).ok).toBe(true);
  expect(config.tlsDir.startsWith('/')).toBe(true);
  for (const server of config.dns ?? []) expect(isIpAddress(server)).toBe(true);
  if (config.handshakeTimeoutMs !== undefined) expect(Number.isInteger(config.handshakeTimeoutMs) && config.handshakeTimeoutMs > 0).toBe(true);
  if (config.ipv6 !== undefined) expect(['auto', 'route', 'block']).toContain(config.ipv6);
}

const textEdit = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 10 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 6, unit: fc.constantFrom('"', ':', ',', '{', '}', '[', ']', '0', '9', '-', '.', 'e', 'x', ' ', '\n', '\\', '/') }) }),
);

/** A JSON value of any kind, for replacing a field. */
const anyJson = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 65536, 1e309 as number, '', ' ', 'unix:', 'unix:relative', '[::1]:0', '::1', '192.0.2.1:99999', '999.1.1.1', 'a'.repeat(300)),
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.ipV4(),
  fc.ipV6(),
  fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.ipV4()), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
);

/** Every field path of the valid config, plus a few that do not exist. */
const FIELD_PATHS = [
  ['version'],
  ['vm'],
  ['vm', 'address'],
  ['vm', 'port'],
  ['vm', 'tlsServerName'],
  ['mac'],
  ['mac', 'agent'],
  ['tlsDir'],
  ['dns'],
  ['dns', 0],
  ['dns', 1],
  ['handshakeTimeoutMs'],
  ['ipv6'],
  ['unknownKey'],
  ['vm', 'extra'],
] as const;

function withValue(path: readonly (string | number)[], value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(VALID)) as Record<string, unknown>;
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]] = value;
  return copy;
}

/** 'dns[1]' / 'vm.port' as ConfigError prints JSON paths. */
function pathText(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

describe('loadConfig on mutated valid config files', () => {
  it('the unmutated file loads (the control)', () => {
    const { config, error } = load(VALID_TEXT);
    expect(error).toBeUndefined();
    expectValid(config!);
  });

  it('random edits of the text: a valid config or a ConfigError naming the file', () => {
    fc.assert(
      fc.property(fc.array(textEdit, { minLength: 1, maxLength: 5 }), (edits) => {
        let text = VALID_TEXT;
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = e.kind === 'delete' ? text.slice(0, at) + text.slice(at + e.length) : text.slice(0, at) + e.text + text.slice(at);
        }
        const { config, error, path } = load(text);
        if (config) expectValid(config);
        else expect(error!.message.startsWith(`${path}: `)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('any value in any field: a valid config, or a ConfigError naming that field', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELD_PATHS), anyJson, (path, value) => {
        const { config, error } = load(JSON.stringify(withValue(path, value)));
        if (config) {
          expectValid(config);
          return;
        }
        const named = error!.problems.map((p) => p.path);
        // An unknown key is reported on its parent object (zod: unrecognized keys).
        const expected = path[path.length - 1] === 'unknownKey' || path[path.length - 1] === 'extra' ? pathText(path.slice(0, -1)) || '(root)' : pathText(path);
        expect(named.some((p) => p === expected || p.startsWith(`${expected}.`) || p.startsWith(`${expected}[`))).toBe(true);
        for (const p of named) expect(error!.message).toContain(p);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses a config file others can write, whatever its content', () => {
    const path = join(dir, 'loose.json');
    writeFileSync(path, VALID_TEXT);
    chmodSync(path, 0o666);
    expect(() => loadConfig(path)).toThrow(/writable by group and others .*chmod go-w/);
  });

  it('whatever parseWgctlConfig accepts, loadConfig loads unchanged from a file', () => {
    const config = fc.record({
      version: fc.constant(1 as const),
      vm: fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()), port: fc.integer({ min: 1, max: 65535 }) }),
      mac: fc.record({
        agent: fc.oneof(
          fc.stringMatching(/^\/[a-z0-9_.-]{1,30}(\/[a-z0-9_.-]{1,30}){0,3}$/).filter((p) => !p.endsWith('/')).map((p) => `unix:${p}`),
          fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
        ),
      }),
      tlsDir: fc.constantFrom('/etc/wgctl/tls', 'tls'),
      dns: fc.option(fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }), { nil: undefined }),
      ipv6: fc.option(fc.constantFrom('auto' as const, 'route' as const, 'block' as const), { nil: undefined }),
    });
    let loadedCount = 0;
    fc.assert(
      fc.property(config, (c) => {
        const clean = JSON.parse(JSON.stringify(c)) as WgctlConfig;
        const path = join(dir, `w${n++}.json`);
        let written = true;
        try {
          writeFileSync(path, `${JSON.stringify(parseWgctlConfig(clean, path), null, 2)}\n`, { mode: 0o644 });
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          written = false; // e.g. fc.domain() names that isHostname refuses (all-numeric labels)
        }
        if (!written) return;
        const loaded = loadConfig(path);
        expect(loaded.tlsDir).toBe(clean.tlsDir.startsWith('/') ? clean.tlsDir : join(dir, clean.tlsDir));
        expect({ ...loaded, tlsDir: clean.tlsDir }).toEqual(clean);
        loadedCount++;
      }),
      { numRuns: 200 },
    );
    expect(loadedCount).toBeGreaterThan(100);
  });
});
