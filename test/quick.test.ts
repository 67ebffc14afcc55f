import { afterAll, beforeAll, expect, it } from 'vitest';
import { alphaOf, decodeRgba, iou, subjectFixture } from './helpers/fixtures.js';
import { form, imageBlob, startServer, TEST_KEY, type TestServer } from './helpers/server.js';

let s: TestServer;
beforeAll(async () => { s = await startServer(); });
afterAll(async () => { await s?.close(); });

it('cuts out the subject', async () => {
  for (const background of ['plain', 'textured'] as const) {
    const fx = await subjectFixture({ background });
    const res = await fetch(`${s.url}/v2`, { method: 'POST', headers: { 'x-api-key': TEST_KEY }, body: form({ image_file: imageBlob(fx.bytes) }) });
    expect(res.status).toBe(200);
    const out = await decodeRgba(new Uint8Array(await res.arrayBuffer()));
    console.log(background, iou(alphaOf(out.data), fx.mask));
  }
});
