// src/pipeline/mask-cleanup.ts
// Removes specks and pinholes from the model's low-resolution mask before it is stretched: tiny isolated blobs
// (texture the model half-believed) and tiny enclosed gaps. Measured on grabcut/coco_mval (bench/RESULTS.md):
// each speck or pinhole adds a whole boundary that matches nothing, so removing them lifts boundary F.
// Components are taken over everything the model gave any weight (not the 0.5 threshold): a thin strand that the
// coarse grid breaks into dashes above 0.5 is still one faint connected piece, and survives.

export interface CleanupParams {
  /** Foreground blobs smaller than this share of the mask's area are removed. */
  speck: number;
  /** Enclosed background gaps smaller than this share of the mask's area are filled. */
  pinhole: number;
  /** Mask values above this count as the subject's support; below 255 minus it, as the background's. */
  faint: number;
}

/** 0.05 % of the frame: at 320² that is ≤ 51 mask pixels (a 7×7 blob), at 1024² ≤ 524. */
export const CLEANUP: CleanupParams = { speck: 0.0005, pinhole: 0.0005, faint: 26 };

interface Runs {
  /** Per run: row, first column, one past the last column. */
  row: Int32Array;
  start: Int32Array;
  end: Int32Array;
  count: number;
}

/** Horizontal runs of support pixels: v > faint (foreground) or v < 255 − faint (background). */
function findRuns(mask: Uint8Array, width: number, height: number, foreground: boolean, faint: number): Runs {
  const inside = foreground ? (v: number) => v > faint : (v: number) => v < 255 - faint;
  let cap = 1024;
  let row = new Int32Array(cap), start = new Int32Array(cap), end = new Int32Array(cap);
  let count = 0;
  for (let y = 0; y < height; y++) {
    const o = y * width;
    let x = 0;
    while (x < width) {
      while (x < width && !inside(mask[o + x]!)) x++;
      if (x >= width) break;
      const s = x;
      while (x < width && inside(mask[o + x]!)) x++;
      if (count === cap) {
        cap *= 2;
        const grow = (a: Int32Array) => {
          const b = new Int32Array(cap);
          b.set(a);
          return b;
        };
        row = grow(row);
        start = grow(start);
        end = grow(end);
      }
      row[count] = y;
      start[count] = s;
      end[count] = x;
      count++;
    }
  }
  return { row, start, end, count };
}

/**
 * 8-connected components of runs (union-find over runs, so the cost follows the number of runs, not pixels).
 * Returns each run's root, and per root the area and whether the component touches the frame.
 */
function label(runs: Runs, width: number, height: number) {
  const parent = new Int32Array(runs.count);
  for (let i = 0; i < runs.count; i++) parent[i] = i;
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const slack = 1;
  // Two pointers over the previous row's runs and this row's runs (both sorted by start).
  let prevFirst = 0;
  let i = 0;
  while (i < runs.count) {
    const y = runs.row[i]!;
    let rowEnd = i;
    while (rowEnd < runs.count && runs.row[rowEnd] === y) rowEnd++;
    if (prevFirst < i && runs.row[prevFirst] === y - 1) {
      let p = prevFirst;
      for (let r = i; r < rowEnd; r++) {
        while (p < i && runs.end[p]! + slack <= runs.start[r]!) p++;
        for (let q = p; q < i && runs.start[q]! < runs.end[r]! + slack; q++) {
          const a = find(q), b = find(r);
          if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
        }
      }
    }
    prevFirst = i;
    i = rowEnd;
  }
  const area = new Float64Array(runs.count);
  const border = new Uint8Array(runs.count);
  const root = new Int32Array(runs.count);
  for (let r = 0; r < runs.count; r++) {
    const k = find(r);
    root[r] = k;
    area[k] = area[k]! + runs.end[r]! - runs.start[r]!;
    if (runs.row[r] === 0 || runs.row[r] === height - 1 || runs.start[r] === 0 || runs.end[r] === width) border[k] = 1;
  }
  return { root, area, border };
}

/**
 * Returns a cleaned copy of `mask` (0..255, width×height), or `mask` itself when nothing changes: a foreground
 * support component smaller than `speck` of the area is cleared, an enclosed background support component smaller
 * than `pinhole` is filled.
 */
export function cleanMask(mask: Uint8Array, width: number, height: number, params: CleanupParams = CLEANUP): Uint8Array {
  const frame = width * height;
  let out: Uint8Array | undefined;
  const fg = findRuns(mask, width, height, true, params.faint);
  const fgLabels = label(fg, width, height);
  for (let r = 0; r < fg.count; r++) {
    if (fgLabels.area[fgLabels.root[r]!]! >= params.speck * frame) continue;
    out ??= Uint8Array.from(mask);
    out.fill(0, fg.row[r]! * width + fg.start[r]!, fg.row[r]! * width + fg.end[r]!);
  }
  const bg = findRuns(mask, width, height, false, params.faint);
  const bgLabels = label(bg, width, height);
  for (let r = 0; r < bg.count; r++) {
    const k = bgLabels.root[r]!;
    if (bgLabels.border[k] || bgLabels.area[k]! >= params.pinhole * frame) continue;
    out ??= Uint8Array.from(mask);
    out.fill(255, bg.row[r]! * width + bg.start[r]!, bg.row[r]! * width + bg.end[r]!);
  }
  return out ?? mask;
}
