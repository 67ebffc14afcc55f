// src/log.ts
// Structured JSON logs (pino). Secrets are redacted by path so a stray header dump cannot leak a key.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'bg-gateway' },
    redact: {
      paths: ['req.headers["x-api-key"]', 'req.headers.authorization', 'req.headers["x-picsart-api-key"]', 'req.headers["api-key"]', 'apiKey', 'secret', 'key'],
      censor: '[redacted]',
    },
  });
}
