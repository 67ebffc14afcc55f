// compat/accept.ts
// Does the client want JSON rather than image bytes? Only when Accept ranks application/json above every image type.

interface Range {
  type: string;
  q: number;
  order: number;
}

function ranges(accept: string): Range[] {
  return accept.split(',').flatMap((part, order) => {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    if (!type) return [];
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = q ? Number(q.slice(2)) : 1;
    return [{ type: type.trim(), q: Number.isFinite(value) ? value : 1, order }];
  });
}

export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const all = ranges(accept);
  const json = all.find((r) => r.type === 'application/json');
  if (!json || json.q <= 0) return false;
  const image = all.filter((r) => r.type.startsWith('image/') || r.type === '*/*' || r.type === 'application/zip');
  return image.every((r) => json.q > r.q || (json.q === r.q && json.order < r.order && r.type === '*/*'));
}
