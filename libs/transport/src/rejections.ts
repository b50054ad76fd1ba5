/**
 * Rejected TLS handshakes, logged: the agents are root daemons on a network, and a client
 * without a certificate, with one from another CA, or speaking plaintext is refused by TLS
 * before grpc-js sees a call — grpc-js only traces it. Here each rejection becomes a log line
 * with the peer and the reason (through a RateLimitedLog, so a flood cannot fill the disk).
 */
import type { Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { cutText } from '@wgctl/logging';

/** OpenSSL / Node codes of a refused handshake, as an operator reads them. */
const HANDSHAKE_REASONS: Readonly<Record<string, string>> = {
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'no client certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'client certificate not issued by this CA',
  UNABLE_TO_GET_ISSUER_CERT: 'client certificate not issued by this CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'client certificate not issued by this CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'client certificate chain ends in another CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed client certificate',
  CERT_SIGNATURE_FAILURE: 'client certificate signature does not verify',
  CERT_HAS_EXPIRED: 'client certificate expired',
  CERT_NOT_YET_VALID: 'client certificate not yet valid',
  CERT_REVOKED: 'client certificate revoked',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not TLS (plaintext gRPC or another protocol)',
  ERR_SSL_HTTP_REQUEST: 'plain HTTP, not TLS',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'TLS version below the minimum',
  ERR_SSL_NO_SHARED_CIPHER: 'no cipher in common',
  ECONNRESET: 'connection closed during the TLS handshake',
};

export interface HandshakeRejection {
  /** 'ADDR:PORT' ('[V6]:PORT'), or 'unknown' when the socket never had a peer address. */
  peer: string;
  /** The peer's address alone (what a summary counts by). */
  peerAddress: string;
  /** OpenSSL verify code or Node/OpenSSL error code. */
  code: string;
  reason: string;
}

/**
 * Why a handshake was refused. A certificate that does not verify ends the handshake without
 * a TLS error: Node destroys the socket and reports a bare ECONNRESET, the verify result
 * staying in `authorizationError` — which is the real reason.
 */
export function describeHandshakeError(error: Error & { code?: string }, authorizationError?: string | Error | null): { code: string; reason: string } {
  const verifyCode = authorizationError instanceof Error ? (authorizationError as { code?: string }).code : authorizationError;
  const code = verifyCode || error.code || 'UNKNOWN';
  return { code, reason: HANDSHAKE_REASONS[code] ?? cutText(error.message, 256) };
}

function formatPeer(address: string | undefined, port: number | undefined): string {
  if (!address) return 'unknown';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Calls `onRejected` for each refused handshake of a TLS server (grpc-js's http2 one, the
 * agents' HTTPS metrics one). The peer is read when the connection arrives: by the time a
 * certificate is refused the socket is closed and no longer knows it.
 */
export function watchHandshakes(tlsServer: TlsServer, onRejected: (rejection: HandshakeRejection) => void): void {
  const peers = new WeakMap<Socket, { peer: string; peerAddress: string }>();
  tlsServer.prependListener('connection', (socket: Socket) => {
    peers.set(socket, { peer: formatPeer(socket.remoteAddress, socket.remotePort), peerAddress: socket.remoteAddress ?? 'unknown' });
  });
  tlsServer.on('tlsClientError', (error: Error & { code?: string }, tlsSocket: TLSSocket) => {
    // The TLSSocket wraps the accepted TCP socket as `_parent` (node:_tls_wrap).
    const raw = (tlsSocket as TLSSocket & { _parent?: Socket })._parent;
    const known = raw ? peers.get(raw) : undefined;
    const peer = known ?? { peer: formatPeer(tlsSocket.remoteAddress, tlsSocket.remotePort), peerAddress: tlsSocket.remoteAddress ?? 'unknown' };
    onRejected({ ...peer, ...describeHandshakeError(error, tlsSocket.authorizationError) });
  });
}

/**
 * Makes every TLS listener of `server` report refused handshakes. grpc-js builds its
 * http2.createSecureServer in Server#createHttp2Server and offers no hook: the method is
 * wrapped on this instance, so each listener is watched from its first connection. Throws if a
 * grpc-js upgrade removed the method (rejections would silently go unlogged).
 */
export function reportRejectedHandshakes(server: grpc.Server, onRejected: (rejection: HandshakeRejection) => void): void {
  const internals = server as unknown as { createHttp2Server?: (credentials: grpc.ServerCredentials) => Http2SecureServer };
  const create = internals.createHttp2Server;
  if (typeof create !== 'function') {
    throw new Error('@grpc/grpc-js has no Server#createHttp2Server: rejected TLS handshakes cannot be logged (check the grpc-js upgrade)');
  }
  internals.createHttp2Server = function createWatchedHttp2Server(this: grpc.Server, credentials: grpc.ServerCredentials) {
    const http2Server = create.call(this, credentials);
    if (credentials._isSecure()) watchHandshakes(http2Server, onRejected);
    return http2Server;
  };
}
