import { MemoryTransport, createLogger, redactAllKeys, redactText, REDACTED } from '@wgctl/logging';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const wgKey = () => randomBytes(32).toString('base64'); // 44 chars ending in '='
const pemKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();

describe('redaction', () => {
  it('removes labelled WireGuard private and preshared keys (wg-quick config syntax)', () => {
    const priv = wgKey();
    const psk = wgKey();
    const pub = wgKey();
    const text = `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub}\nPresharedKey = ${psk}\n`;
    const out = redactText(text);
    expect(out).not.toContain(priv);
    expect(out).not.toContain(psk);
    expect(out).toContain(pub); // public keys are not secrets
  });

  it('removes every key from raw wg show dump output', () => {
    const priv = wgKey();
    const psk = wgKey();
    const dump = `wg0\t${priv}\t${wgKey()}\t51820\toff\nwg0\t${wgKey()}\t${psk}\t203.0.113.5:51820\t0.0.0.0/0\t0\t0\t0\t25\n`;
    const out = redactAllKeys(dump);
    expect(out).not.toContain(priv);
    expect(out).not.toContain(psk);
    expect(out.match(new RegExp(REDACTED.replace(/[[\]]/g, '\\$&'), 'g'))).toHaveLength(4);
  });

  it('removes PEM private keys (PKCS#8 and PKCS#1)', () => {
    for (const pem of [pemKey, rsaPem]) {
      const body = pem.split('\n')[1];
      const out = redactText(`loaded key:\n${pem}\nthen continued`);
      expect(out).not.toContain(body);
      expect(out).toContain('then continued');
    }
  });

  it('removes tokens', () => {
    expect(redactText('Authorization: Bearer abcdef123456')).not.toContain('abcdef123456');
    expect(redactText('pf token=18446744073709551615')).not.toContain('18446744073709551615');
  });
});

describe('logger', () => {
  it('writes JSON lines with secrets redacted from message and metadata', () => {
    const mem = new MemoryTransport();
    const log = createLogger({ service: 'test', level: 'debug', transports: [mem] });
    const priv = wgKey();
    log.info(`PrivateKey = ${priv}`, { privateKey: priv, nested: { preshared_key: wgKey(), publicKey: 'visible' }, pem: pemKey });
    log.error('failed', { error: new Error(`PresharedKey=${priv}`) });
    expect(mem.lines).toHaveLength(2);
    for (const line of mem.lines) {
      const parsed = JSON.parse(line); // one JSON object per line
      expect(parsed.service).toBe('test');
      expect(line).not.toContain(priv);
      expect(line).not.toContain(pemKey.split('\n')[1]);
    }
    expect(JSON.parse(mem.lines[0]).nested.publicKey).toBe('visible');
  });

  it('honours the level and refuses an unknown one', () => {
    const mem = new MemoryTransport();
    const log = createLogger({ service: 't', level: 'warn', transports: [mem] });
    log.info('hidden');
    log.warn('shown');
    expect(mem.lines.map((l) => JSON.parse(l).message)).toEqual(['shown']);
    expect(() => createLogger({ service: 't', level: 'loud' as never })).toThrow(/invalid log level/);
  });
});
