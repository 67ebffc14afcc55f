// bench/peer/server.mjs
// The peer (@imgly/background-removal-node) behind the smallest HTTP server that serves it: raw image in, PNG out,
// with the library's own defaults except the model. Used only by bench/http.ts, on loopback.
import { createServer } from 'node:http';
import { removeBackground } from '@imgly/background-removal-node';

const model = process.env.PEER_MODEL ?? 'medium';

const server = createServer(async (req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${process.memoryUsage().rss}`);
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    const blob = new Blob([Buffer.concat(chunks)], { type: req.headers['content-type'] ?? 'image/jpeg' });
    const out = await removeBackground(blob, { model });
    const bytes = Buffer.from(await out.arrayBuffer());
    res.writeHead(200, { 'content-type': out.type || 'image/png', 'content-length': bytes.length }).end(bytes);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
