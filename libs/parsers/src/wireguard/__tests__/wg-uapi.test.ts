/**
 * wireguard-go's UAPI `get=1` answer (wireguard.com/xplatform). The sample has the layout
 * wireguard-go 0.0.20230223 (Debian 12) printed in the lab, keys replaced by documentation values.
 */
import { ParseError, parseWgUapiHandshakes } from '../..';

const PEER1_HEX = 'd79ed5fdc6907e80e945ba403d3c8b1022fa0112e9606199da0bf35db729532c';
const PEER2_HEX = '11'.repeat(32);
const SECRET_HEX = 'ab'.repeat(32);

const ANSWER = [
  `private_key=${SECRET_HEX}`,
  'listen_port=58965',
  'fwmark=51820',
  `public_key=${PEER1_HEX}`,
  `preshared_key=${SECRET_HEX}`,
  'protocol_version=1',
  'endpoint=203.0.113.50:51820',
  'last_handshake_time_sec=1796333185',
  'last_handshake_time_nsec=625981045',
  'tx_bytes=388',
  'rx_bytes=220',
  'persistent_keepalive_interval=25',
  'allowed_ip=0.0.0.0/0',
  'allowed_ip=::/0',
  `public_key=${PEER2_HEX}`,
  'protocol_version=1',
  'last_handshake_time_sec=0',
  'last_handshake_time_nsec=0',
  'errno=0',
  '',
  '',
].join('\n');

describe('parseWgUapiHandshakes', () => {
  it("gives each peer's latest handshake by its base64 public key, as `wg show IF latest-handshakes` does", () => {
    const handshakes = parseWgUapiHandshakes(ANSWER);
    expect([...handshakes]).toEqual([
      [Buffer.from(PEER1_HEX, 'hex').toString('base64'), 1796333185],
      [Buffer.from(PEER2_HEX, 'hex').toString('base64'), 0],
    ]);
    expect(Buffer.from(PEER1_HEX, 'hex').toString('base64')).toBe('157V/caQfoDpRbpAPTyLECL6ARLpYGGZ2gvzXbcpUyw=');
  });

  it('an interface without peers: an empty map', () => {
    expect(parseWgUapiHandshakes(`private_key=${SECRET_HEX}\nlisten_port=1\nerrno=0\n\n`).size).toBe(0);
  });

  it('refuses a cut or failed answer, and never quotes a value (the private key is in it)', () => {
    const cut = ANSWER.slice(0, ANSWER.indexOf('errno='));
    expect(() => parseWgUapiHandshakes(cut)).toThrow(/cut short/);
    expect(() => parseWgUapiHandshakes(ANSWER.replace('errno=0', 'errno=19'))).toThrow(/errno=19/);
    expect(() => parseWgUapiHandshakes(ANSWER.replace(`public_key=${PEER1_HEX}`, 'public_key=zz'))).toThrow(ParseError);
    expect(() => parseWgUapiHandshakes(ANSWER.replace('last_handshake_time_sec=0', 'last_handshake_time_sec=-1'))).toThrow(/not a number/);
    expect(() => parseWgUapiHandshakes(`last_handshake_time_sec=1\nerrno=0\n\n`)).toThrow(/before any public_key/);
    expect(() => parseWgUapiHandshakes(`${ANSWER.trimEnd()}\nlisten_port=1\n`)).toThrow(/after errno/);
    for (const bad of [cut, ANSWER.replace('errno=0', 'errno=19'), `${SECRET_HEX}\nerrno=0\n`]) {
      try {
        parseWgUapiHandshakes(bad);
      } catch (e) {
        expect((e as Error).message).not.toContain(SECRET_HEX);
      }
    }
  });
});
