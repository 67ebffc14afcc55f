// src/main.ts
// Entry point: build the gateway, serve it, and shut down gracefully (finish in-flight work, then exit).
import { serve } from '@hono/node-server';
import { createApp } from './app.js';
import { createGateway } from './bootstrap.js';
import { ConfigError } from './config.js';
import { ModelSetupError } from './engine/engine.js';
import { keepIdleConnections } from './http/keep-alive.js';

async function main(): Promise<void> {
  const gw = await createGateway({ announceFirstKey: true });
  const app = createApp(gw);
  const server = serve({ fetch: app.fetch, port: gw.config.PORT, hostname: gw.config.HOST }, (info) => {
    gw.log.info({ port: info.port, host: gw.config.HOST, provider: gw.engine.provider, store: gw.stores.kind }, 'listening');
  });
  // Slow uploads on 30 MB images must not be cut by Node's 5-minute default, but idle sockets should go.
  server.setTimeout?.(0);
  keepIdleConnections(server);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    gw.state.shuttingDown = true;
    gw.log.info({ signal }, 'shutting down: refusing new work, finishing in-flight requests');
    const force = setTimeout(() => {
      gw.log.warn('shutdown timeout: exiting with work still in flight');
      process.exit(1);
    }, gw.config.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    // Closing resolves once every connection has ended, i.e. after the last accepted response was written.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await gw.queue.drain();
    const closeIdle = setInterval(() => (server as { closeIdleConnections?: () => void }).closeIdleConnections?.(), 100);
    await closed;
    clearInterval(closeIdle);
    await gw.engine.close();
    await gw.stores.close();
    gw.log.info('shutdown complete');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof ModelSetupError) {
    process.stderr.write(`bg-gateway: ${err.message}\n`);
  } else {
    process.stderr.write(`bg-gateway: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
