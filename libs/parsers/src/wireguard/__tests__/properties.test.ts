/**
 * Property tests of the WireGuard parsers (`wg show … dump`, latest-handshakes, transfer, and
 * wg-quick configs): random text and mutated real outputs either parse or throw ParseError,
 * each within a time bound; generated valid inputs parse back to what was generated; and no
 * error message ever carries a private or preshared key of its input.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ADVERSARIAL_INPUTS, mutated, parseOrParseError, randomText, type Parse } from '../../testing/fuzz';
import { parseWgDump, parseWgDumpAll, parseWgLatestHandshakes, parseWgTransfer } from '../wg-dump';
import { parseWgQuickConfig } from '../wg-quick-config';

const fixture = (name: string): string => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');

const DUMPS = ['wg-show-dump-client.txt', 'wg-show-dump-server.txt', 'wg-show-dump-linklocal.txt'].map(fixture);
const ALL_DUMP = fixture('wg-show-all-dump.txt');
const CONFIG = fixture('wg-quick-client.conf');

const RUNS = { numRuns: 300 };

/** A WireGuard key: 32 random bytes in base64. */
const wgKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));

const TOKENS = ['(none)', 'off', '\t', '\t\t', '51820', '[2001:db8::1]:51820', '203.0.113.1:51820', '0.0.0.0/0', 'PrivateKey = ', '[Peer]', '[Interface]'];

function keysIn(text: string): string[] {
  return text.match(/[A-Za-z0-9+/]{43}=/g) ?? [];
}

describe('wg dump parsers: random and mutated input', () => {
  const parsers: Record<string, { parse: Parse; inputs: string[] }> = {
    parseWgDump: { parse: parseWgDump, inputs: DUMPS },
    parseWgDumpAll: { parse: parseWgDumpAll, inputs: [ALL_DUMP] },
    parseWgLatestHandshakes: { parse: parseWgLatestHandshakes, inputs: DUMPS.map((d) => d.split('\n').slice(1).map((l) => l.split('\t').slice(0, 1).concat(l.split('\t')[4] ?? '').join('\t')).join('\n')) },
    parseWgTransfer: { parse: parseWgTransfer, inputs: DUMPS.map((d) => d.split('\n').slice(1).map((l) => { const f = l.split('\t'); return [f[0], f[5], f[6]].join('\t'); }).join('\n')) },
  };
  for (const [name, { parse, inputs }] of Object.entries(parsers)) {
    it(`${name}: parses or throws ParseError, each input within the time bound`, () => {
      fc.assert(fc.property(fc.oneof(randomText(TOKENS), mutated(inputs)), (text) => void parseOrParseError(parse, text)), RUNS);
    });
  }

  it('errors of a mutated dump never quote its private key or a preshared key', () => {
    const secrets = DUMPS.flatMap((d) => {
      const rows = d.trim().split('\n').map((l) => l.split('\t'));
      return [rows[0][0], ...rows.slice(1).map((r) => r[1])].filter((k) => k !== '(none)');
    });
    expect(secrets.length).toBeGreaterThan(1);
    let failures = 0;
    fc.assert(
      fc.property(mutated(DUMPS), (text) => {
        const verdict = parseOrParseError(parseWgDump, text);
        if (verdict.error) {
          failures++;
          for (const secret of secrets) expect(verdict.error.message).not.toContain(secret);
        }
      }),
      RUNS,
    );
    expect(failures).toBeGreaterThan(0); // the property did see errors
  });

  it('a generated dump parses back to what was generated', () => {
    const peer = fc.record({
      publicKey: wgKey,
      psk: fc.option(wgKey, { nil: undefined }),
      endpoint: fc.option(
        fc.oneof(
          fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => ({ text: `${h}:${p}`, host: h, port: p, family: 4 as const })),
          fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => ({ text: `[${h}]:${p}`, host: h, port: p, family: 6 as const })),
        ),
        { nil: undefined },
      ),
      allowed: fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`), { maxLength: 4 }),
      handshake: fc.integer({ min: 0, max: 2 ** 32 }),
      rx: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      tx: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      keepalive: fc.integer({ min: 0, max: 65535 }),
    });
    fc.assert(
      fc.property(wgKey, wgKey, fc.integer({ min: 0, max: 65535 }), fc.array(peer, { maxLength: 6 }), (priv, pub, port, peers) => {
        const rows = [`${priv}\t${pub}\t${port}\toff`];
        for (const p of peers) {
          rows.push(
            [p.publicKey, p.psk ?? '(none)', p.endpoint?.text ?? '(none)', p.allowed.join(',') || '(none)', p.handshake, p.rx, p.tx, p.keepalive || 'off'].join('\t'),
          );
        }
        const text = `${rows.join('\n')}\n`;
        const dump = parseWgDump(text);
        expect(dump).toMatchObject({ publicKey: pub, hasPrivateKey: true, listenPort: port, fwmark: 0 });
        expect(dump.peers).toEqual(
          peers.map((p) => ({
            publicKey: p.publicKey,
            hasPresharedKey: p.psk !== undefined,
            endpointText: p.endpoint?.text ?? null,
            endpoint: p.endpoint ? { host: p.endpoint.host, port: p.endpoint.port, family: p.endpoint.family } : null,
            allowedIps: p.allowed,
            latestHandshake: p.handshake,
            rxBytes: String(p.rx),
            txBytes: String(p.tx),
            persistentKeepalive: p.keepalive,
          })),
        );
        // The parsed value carries no secret of the dump.
        const serialized = JSON.stringify(dump);
        expect(serialized).not.toContain(priv);
        for (const p of peers) if (p.psk) expect(serialized).not.toContain(p.psk);
      }),
      { numRuns: 200 },
    );
  });
});

describe('wg-quick config parser: random and mutated input', () => {
  it('parses or throws ParseError, each input within the time bound', () => {
    fc.assert(fc.property(fc.oneof(randomText(TOKENS), mutated([CONFIG])), (text) => void parseOrParseError(parseWgQuickConfig, text)), RUNS);
  });

  it('never quotes a PrivateKey or PresharedKey in an error, even when its line is mangled', () => {
    // Keys are generated so the mutations below act on a fresh secret each time.
    const mangle = fc.constantFrom(
      (k: string) => `PrivateKey ${k}`,
      (k: string) => `PrivateKey = ${k.slice(0, 40)}`,
      (k: string) => `PresharedKey: ${k}`,
      (k: string) => k,
      (k: string) => `Address = ${k}`,
      (k: string) => `Endpoint = ${k}`,
      (k: string) => `DNS = 1.2.3.4, ${k}:1`,
      (k: string) => `ListenPort = ${k}`,
      (k: string) => `${k} = 1`,
      (k: string) => `PersistentKeepalive = ${k}`,
      (k: string) => `MTU = ${k.slice(0, 30)}`,
    );
    let failures = 0;
    fc.assert(
      fc.property(wgKey, wgKey, mangle, fc.boolean(), fc.nat(), (priv, psk, how, inPeer, editAt) => {
        const lines = ['[Interface]', `PrivateKey = ${priv}`, 'Address = 192.0.2.2/24', '[Peer]', 'PublicKey = UGxKOxF223C/8EIeGfLP/tjfq7dQwkHIgmIijtS3yQw=', `PresharedKey = ${psk}`, 'AllowedIPs = 0.0.0.0/0'];
        const at = inPeer ? 5 : 1;
        lines[at] = how(inPeer ? psk : priv);
        const text = lines.join('\n');
        const verdict = parseOrParseError(parseWgQuickConfig, text);
        if (verdict.error) {
          failures++;
          const message = verdict.error.message;
          for (const secret of [priv, psk]) {
            expect(message).not.toContain(secret);
            expect(message).not.toContain(secret.slice(0, 30));
          }
        }
        // A mutation elsewhere must not make the parser print the untouched key either.
        const other = parseOrParseError(parseWgQuickConfig, `${text.slice(0, editAt % (text.length + 1))}\u0000${text.slice(editAt % (text.length + 1))}`);
        if (other.error) for (const secret of [priv, psk]) expect(other.error.message).not.toContain(secret);
      }),
      RUNS,
    );
    expect(failures).toBeGreaterThan(0);
  });

  it('a generated config parses back to what was generated (keys as secrets)', () => {
    const peer = fc.record({
      publicKey: wgKey,
      psk: fc.option(wgKey, { nil: undefined }),
      endpoint: fc.option(fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })), { nil: undefined }),
      allowed: fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`), { minLength: 1, maxLength: 4 }),
      keepalive: fc.integer({ min: 0, max: 65535 }),
    });
    fc.assert(
      fc.property(
        wgKey,
        fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`), { minLength: 1, maxLength: 3 }),
        fc.array(fc.ipV4(), { maxLength: 3 }),
        fc.option(fc.integer({ min: 576, max: 9000 }), { nil: undefined }),
        fc.uniqueArray(peer, { selector: (p) => p.publicKey, maxLength: 4 }),
        (priv, addresses, dns, mtu, peers) => {
          const text = [
            '[Interface]',
            `PrivateKey = ${priv}`,
            `Address = ${addresses.join(', ')}`,
            ...(dns.length ? [`DNS = ${dns.join(', ')}`] : []),
            ...(mtu ? [`MTU = ${mtu}`] : []),
            ...peers.flatMap((p) => [
              '',
              '[Peer]',
              `PublicKey = ${p.publicKey}`,
              ...(p.psk ? [`PresharedKey = ${p.psk}`] : []),
              ...(p.endpoint ? [`Endpoint = ${p.endpoint[0]}:${p.endpoint[1]}`] : []),
              `AllowedIPs = ${p.allowed.join(',')}`,
              ...(p.keepalive ? [`PersistentKeepalive = ${p.keepalive}`] : []),
            ]),
          ].join('\n');
          const config = parseWgQuickConfig(text);
          expect(config.interface.privateKey?.reveal()).toBe(priv);
          expect(config.interface.addresses).toEqual(addresses);
          expect(config.interface.dns).toEqual(dns);
          expect(config.interface.mtu).toBe(mtu);
          expect(
            config.peers.map((p) => ({ publicKey: p.publicKey, psk: p.presharedKey?.reveal(), endpoint: p.endpoint, allowed: p.allowedIps, keepalive: p.persistentKeepalive })),
          ).toEqual(
            peers.map((p) => ({
              publicKey: p.publicKey,
              psk: p.psk,
              endpoint: p.endpoint ? { host: p.endpoint[0], port: p.endpoint[1], family: 4 } : undefined,
              allowed: p.allowed,
              keepalive: p.keepalive,
            })),
          );
          // Serialized, the parsed config shows no secret.
          const serialized = JSON.stringify(config);
          expect(keysIn(serialized)).not.toContain(priv);
          for (const p of peers) if (p.psk) expect(serialized).not.toContain(p.psk);
        },
      ),
      { numRuns: 200 },
    );
  });
});

it('every WireGuard parser handles long adversarial input in bounded time', () => {
  for (const text of ADVERSARIAL_INPUTS) {
    for (const parse of [parseWgDump, parseWgDumpAll, parseWgLatestHandshakes, parseWgTransfer, parseWgQuickConfig]) {
      parseOrParseError(parse, text, 1_000);
    }
  }
});
