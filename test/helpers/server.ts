// test/helpers/server.ts
// A real gateway on 127.0.0.1 with a real model, one per test file.
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { createApp } from '../../src/app.js';
import { createGateway } from '../../src/bootstrap.js';
import type { Gateway } from '../../src/gateway.js';
import { keepIdleConnections } from '../../src/http/keep-alive.js';
import type { Logger } from '../../src/log.js';

export const TEST_KEY = 'bge_live_test_key_0123456789abcdefghij';

export interface TestServer {
  url: string;
  gw: Gateway;
  close(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}, options: { log?: Logger } = {}): Promise<TestServer> {
  const gw = await createGateway({
    ...options,
    env: {
      LOG_LEVEL: 'silent',
      API_KEYS: TEST_KEY,
      INFERENCE_THREADS: '2',
      ...(process.env.MODELS_DIR ? { MODELS_DIR: process.env.MODELS_DIR } : {}),
      ...env,
    },
  });
  const app = createApp(gw);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  keepIdleConnections(server);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    gw,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gw.engine.close();
      await gw.stores.close();
    },
  };
}

export function form(fields: Record<string, string | Blob>): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  return fd;
}

export function imageBlob(bytes: Uint8Array, type = 'image/jpeg'): Blob {
  return new Blob([bytes], { type });
}
