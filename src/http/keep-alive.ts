// src/http/keep-alive.ts
// Idle keep-alive connections outlive the client's own idle timer.
import type { ServerType } from '@hono/node-server';

/**
 * Node closes idle sockets after 5 s; clients (undici, load balancers with 60 s idle timers) may send the next
 * request on a socket at the instant the server closes it, and that request fails with ECONNRESET/EPIPE.
 * Waiting longer than any client leaves the close to the client, which never races its own send. Node closes
 * idle sockets itself on server.close(), so shutdown is not held up.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export function keepIdleConnections(server: ServerType): void {
  if (!('keepAliveTimeout' in server)) return;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // headersTimeout must exceed keepAliveTimeout, or a slow next request on a reused socket is cut.
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
}
