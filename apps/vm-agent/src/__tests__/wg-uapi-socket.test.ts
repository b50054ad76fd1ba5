/**
 * uapiLatestHandshakes against a real unix socket: the answer may come in any number of
 * chunks (a daemon with many peers writes it piecemeal), and a daemon that never finishes its
 * answer, or closes early, gives undefined (the caller then runs `wg show`), never a hang.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uapiLatestHandshakes } from '../host/wireguard';

const IFNAME = 'wtu0';

describe("uapiLatestHandshakes (wireguard-go's control socket)", () => {
  let dir: string;
  let server: Server | undefined;
  const open: Socket[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtu-'));
  });
  afterEach(async () => {
    for (const conn of open.splice(0)) conn.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A daemon that answers a get with `chunks`, written one per event-loop turn, then (unless `hang`) closes. */
  async function daemon(chunks: string[], options: { hang?: boolean } = {}): Promise<void> {
    server = createServer((conn) => {
      open.push(conn);
      conn.once('data', async () => {
        for (const chunk of chunks) {
          conn.write(chunk);
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (!options.hang) conn.end();
      });
    });
    await new Promise<void>((resolve) => server!.listen(join(dir, `${IFNAME}.sock`), resolve));
  }

  const peer = (i: number, seconds: number) => `public_key=${i.toString(16).padStart(64, '0')}\nendpoint=203.0.113.1:${1000 + i}\nlast_handshake_time_sec=${seconds}\nlast_handshake_time_nsec=0\n`;

  it('reads an answer of 2,000 peers written in small chunks, the end split across two of them', async () => {
    const whole = `private_key=${'ab'.repeat(32)}\nlisten_port=51820\n${Array.from({ length: 2000 }, (_, i) => peer(i, i === 0 ? 0 : 1_700_000_000 + i)).join('')}errno=0\n\n`;
    const chunks: string[] = [];
    for (let at = 0; at < whole.length - 1; at += 4096) chunks.push(whole.slice(at, Math.min(at + 4096, whole.length - 1)));
    chunks.push('\n'); // the answer's last newline alone
    await daemon(chunks);
    const handshakes = await uapiLatestHandshakes(dir, IFNAME);
    expect(handshakes?.size).toBe(2000);
    expect(handshakes?.get(Buffer.from((1999).toString(16).padStart(64, '0'), 'hex').toString('base64'))).toBe(1_700_000_000 + 1999);
    expect(handshakes?.get(Buffer.alloc(32).toString('base64'))).toBe(0);
  });

  it('gives undefined for an error answer, an answer cut short, and a daemon that never ends its answer', async () => {
    await daemon(['errno=19\n\n']);
    expect(await uapiLatestHandshakes(dir, IFNAME)).toBeUndefined();
    await new Promise<void>((resolve) => server!.close(() => resolve()));

    await daemon([`listen_port=51820\n${peer(1, 5)}`]); // closed before errno=
    expect(await uapiLatestHandshakes(dir, IFNAME)).toBeUndefined();
    await new Promise<void>((resolve) => server!.close(() => resolve()));

    await daemon([`listen_port=51820\n${peer(1, 5)}errno=0\n`], { hang: true }); // one newline short, left open
    const started = Date.now();
    expect(await uapiLatestHandshakes(dir, IFNAME)).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('gives undefined when nothing listens there (the kernel module has no socket)', async () => {
    expect(await uapiLatestHandshakes(dir, IFNAME)).toBeUndefined();
  });
});
