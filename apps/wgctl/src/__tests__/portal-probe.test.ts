/**
 * Captive-portal probe: the verdict on each kind of answer (pure), then real probes against
 * loopback HTTP servers and a loopback DNS responder (nothing leaves 127.0.0.1).
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { classifyProbe, describePortal, probeCaptivePortal } from '../orchestrator/portal-probe';

const APPLE_SUCCESS = '<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n';
const URL_APPLE = 'http://captive.apple.com/hotspot-detect.html';

describe('classifyProbe', () => {
  const verdict = (status: number, body = '', location?: string) => classifyProbe(URL_APPLE, '192.0.2.9', { status, body, location });

  it("is free for Apple's success page and for an empty 204", () => {
    expect(verdict(200, APPLE_SUCCESS).kind).toBe('free');
    expect(verdict(204).kind).toBe('free');
  });

  it('names a redirect and where it points', () => {
    const v = verdict(302, '', 'http://192.0.2.1/login');
    expect(v).toMatchObject({ kind: 'portal', status: 302, location: 'http://192.0.2.1/login' });
    expect(v.kind === 'portal' && describePortal(v)).toBe(`a captive portal holds this network (${URL_APPLE} answered 302 → http://192.0.2.1/login)`);
  });

  it('calls 511, another 200 page and other statuses a portal', () => {
    expect(verdict(511)).toMatchObject({ kind: 'portal', detail: 'answered 511 Network Authentication Required' });
    expect(verdict(200, '<html><body>Welcome to Café Wi-Fi, please accept</body></html>')).toMatchObject({
      kind: 'portal',
      detail: 'answered 200 with another page: <html><body>Welcome to Café Wi-Fi, please accept</body></html>',
    });
    expect(verdict(200, '')).toMatchObject({ kind: 'portal' });
    expect(verdict(500)).toMatchObject({ kind: 'portal', detail: 'answered 500' });
  });
});

type Handler = (headers: IncomingHttpHeaders, url: string) => { status: number; body?: string; location?: string } | null;

async function httpServer(handler: Handler): Promise<{ server: Server; port: number; seen: { host?: string; url?: string }[] }> {
  const seen: { host?: string; url?: string }[] = [];
  const server = createServer((req, res) => {
    seen.push({ host: req.headers.host, url: req.url });
    const answer = handler(req.headers, req.url ?? '');
    if (!answer) return; // hold the request: a network that swallows it
    if (answer.location) res.setHeader('location', answer.location);
    res.statusCode = answer.status;
    res.end(answer.body ?? '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** Answers every A query with 127.0.0.1 (a minimal RFC 1035 responder). */
async function dnsServer(): Promise<{ socket: Socket; port: number; names: string[] }> {
  const names: string[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    let offset = 12;
    const labels: string[] = [];
    while (query[offset] !== 0) {
      labels.push(query.subarray(offset + 1, offset + 1 + query[offset]).toString());
      offset += query[offset] + 1;
    }
    names.push(labels.join('.'));
    const question = query.subarray(12, offset + 5);
    const header = Buffer.from([query[0], query[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    socket.send(Buffer.concat([header, question, answer]), peer.port, peer.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { socket, port: socket.address().port, names };
}

describe('probeCaptivePortal (loopback)', () => {
  const servers: (Server | TcpServer)[] = [];
  afterAll(async () => {
    for (const s of servers) {
      if ('closeAllConnections' in s) s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  const serve = async (handler: Handler) => {
    const s = await httpServer(handler);
    servers.push(s.server);
    return s;
  };

  it('resolves the host through the given resolver only, sends its Host header, and finds the network free', async () => {
    const web = await serve((_headers, url) => (url === '/hotspot-detect.html' ? { status: 200, body: APPLE_SUCCESS } : { status: 404 }));
    const dns = await dnsServer();
    try {
      const url = `http://captive.example.test:${web.port}/hotspot-detect.html`;
      const v = await probeCaptivePortal({ url, resolvers: [`127.0.0.1:${dns.port}`], timeoutMs: 2000 });
      expect(v).toEqual({ kind: 'free', url, address: '127.0.0.1' });
      expect(dns.names).toEqual(['captive.example.test']);
      expect(web.seen).toEqual([{ host: `captive.example.test:${web.port}`, url: '/hotspot-detect.html' }]);
    } finally {
      dns.socket.close();
    }
  });

  it('reports the redirect of a portal (host resolved by the system resolver: localhost)', async () => {
    const portal = await serve(() => ({ status: 302, location: 'http://192.0.2.1/login' }));
    const url = `http://localhost:${portal.port}/hotspot-detect.html`;
    expect(await probeCaptivePortal({ url })).toMatchObject({ kind: 'portal', address: '127.0.0.1', status: 302, location: 'http://192.0.2.1/login' });
  });

  it('gives up within its timeout when the request is swallowed, and when nothing listens', async () => {
    const silent = await serve(() => null);
    const started = Date.now();
    const v = await probeCaptivePortal({ url: `http://127.0.0.1:${silent.port}/`, resolvers: [], timeoutMs: 300 });
    expect(v).toMatchObject({ kind: 'unreachable', error: expect.stringContaining('no answer in time') });
    expect(Date.now() - started).toBeLessThan(1500);

    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await probeCaptivePortal({ url: `http://127.0.0.1:${port}/`, resolvers: [] })).toMatchObject({ kind: 'unreachable', error: expect.stringContaining('ECONNREFUSED') });
  });

  it('gives up within its timeout when the resolver does not answer', async () => {
    const mute = createSocket('udp4');
    await new Promise<void>((r) => mute.bind(0, '127.0.0.1', r));
    try {
      const started = Date.now();
      const v = await probeCaptivePortal({ url: 'http://captive.example.test/', resolvers: [`127.0.0.1:${mute.address().port}`], timeoutMs: 300 });
      expect(v).toMatchObject({ kind: 'unreachable', error: expect.stringContaining('resolving captive.example.test') });
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      mute.close();
    }
  });

  it('refuses an https URL (a portal cannot answer one) and a name without resolvers', async () => {
    expect(await probeCaptivePortal({ url: 'https://captive.example.test/', resolvers: [] })).toMatchObject({ kind: 'unreachable', error: expect.stringContaining('plain http://') });
    expect(await probeCaptivePortal({ url: 'http://captive.example.test/', resolvers: [] })).toMatchObject({ kind: 'unreachable', error: 'no resolver to ask for captive.example.test' });
  });
});
