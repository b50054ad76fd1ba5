/**
 * wireguard-go's answer to a UAPI `get=1` on its control socket (/var/run/wireguard/IF.sock):
 * the cross-platform interface of wireguard.com/xplatform, which `wg show` itself reads for a
 * userspace interface. One `key=value` per line; each `public_key=` starts a peer; keys are
 * lowercase hex; the answer ends with `errno=N` and an empty line.
 *
 * Only what a handshake check needs is read: each peer's public key (as base64, the form `wg`
 * prints and configs use) and `last_handshake_time_sec`. The interface's `private_key` and the
 * peers' `preshared_key` are skipped, never kept, and no error message quotes a value.
 */
import { ParseError } from '../errors';

const KIND = 'wireguard UAPI get';

/** public key (base64) → unix seconds of the latest handshake (0 = never), as `wg show IF latest-handshakes`. */
export function parseWgUapiHandshakes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let peer: string | undefined;
  let errno: number | undefined;
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (row === '') continue;
    const eq = row.indexOf('=');
    if (eq <= 0) throw new ParseError(KIND, 'not a key=value line', i + 1);
    const name = row.slice(0, eq);
    const value = row.slice(eq + 1);
    if (errno !== undefined) throw new ParseError(KIND, 'a line after errno', i + 1);
    if (name === 'errno') {
      if (!/^\d+$/.test(value)) throw new ParseError(KIND, 'errno is not a number', i + 1);
      errno = Number(value);
    } else if (name === 'public_key') {
      if (!/^[0-9a-f]{64}$/.test(value)) throw new ParseError(KIND, 'public_key is not 32 bytes of hex', i + 1);
      peer = Buffer.from(value, 'hex').toString('base64');
      out.set(peer, 0);
    } else if (name === 'last_handshake_time_sec') {
      if (peer === undefined) throw new ParseError(KIND, 'last_handshake_time_sec before any public_key', i + 1);
      if (!/^\d+$/.test(value)) throw new ParseError(KIND, 'last_handshake_time_sec is not a number', i + 1);
      out.set(peer, Number(value));
    }
  }
  if (errno === undefined) throw new ParseError(KIND, 'no errno line: the answer is cut short');
  if (errno !== 0) throw new ParseError(KIND, `the daemon answered errno=${errno}`);
  return out;
}
