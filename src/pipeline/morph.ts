// src/pipeline/morph.ts
// Grey-level dilation and erosion of an alpha mask with a square window, O(1) per pixel whatever the radius
// (van Herk / Gil-Werman). sharp's dilate/erode on one-channel input shrinks the mask at larger widths.

/** Running max (dilate) or min (erode) over a window of 2·radius+1, rows then columns. */
export function morphAlpha(alpha: Uint8Array, width: number, height: number, radius: number, op: 'dilate' | 'erode'): Uint8Array {
  if (radius <= 0) return alpha;
  const pick = op === 'dilate' ? Math.max : Math.min;
  const pad = op === 'dilate' ? 0 : 255;
  const tmp = new Uint8Array(alpha.length);
  const out = new Uint8Array(alpha.length);
  const longest = Math.max(width, height);
  const line = new Uint8Array(longest);
  const res = new Uint8Array(longest);
  const k = 2 * radius + 1;
  const padded = longest + 2 * radius + k;
  const src = new Uint8Array(padded);
  const g = new Uint8Array(padded);
  const h = new Uint8Array(padded);

  const filterLine = (n: number) => {
    const total = n + 2 * radius;
    const blocks = Math.ceil(total / k) * k;
    src.fill(pad, 0, blocks);
    src.set(line.subarray(0, n), radius);
    for (let start = 0; start < blocks; start += k) {
      g[start] = src[start]!;
      for (let i = start + 1; i < start + k; i++) g[i] = pick(g[i - 1]!, src[i]!);
      h[start + k - 1] = src[start + k - 1]!;
      for (let i = start + k - 2; i >= start; i--) h[i] = pick(h[i + 1]!, src[i]!);
    }
    // Window [x, x + k - 1] in padded coordinates is centred on output pixel x.
    for (let x = 0; x < n; x++) res[x] = pick(h[x]!, g[x + k - 1]!);
  };

  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) line[x] = alpha[row + x]!;
    filterLine(width);
    tmp.set(res.subarray(0, width), row);
  }
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) line[y] = tmp[y * width + x]!;
    filterLine(height);
    for (let y = 0; y < height; y++) out[y * width + x] = res[y]!;
  }
  return out;
}
