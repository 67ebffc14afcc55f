// src/pipeline/slice.ts
// Full-resolution passes in JS run in pieces with the event loop let in between, so a 12 MP image (tens to
// hundreds of ms per pass, more when inference holds both cores) never stalls health probes or other uploads.
// A pass is written once as a generator that yields at natural break points (every band of rows, every chunk
// of a sweep); `runToEnd` drives it synchronously (tests, benches), `runSliced` lets the event loop in between.

/** Work between two pauses: well under the 50 ms event-loop budget even when the CPU is shared. */
const BUDGET_MS = 8;
/** Yield points are placed about this many pixel-operations apart, so the clock is read rarely. */
export const PIXELS_PER_STEP = 1 << 16;

export type Steps<T> = Generator<void, T, void>;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function runToEnd<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs the steps, pausing for the event loop whenever BUDGET_MS of work has run since the last pause. */
export async function runSliced<T>(steps: Steps<T>): Promise<T> {
  let since = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - since > BUDGET_MS) {
      await nextTurn();
      since = performance.now();
    }
  }
}

/** Rows of `rowWidth` pixels that make about PIXELS_PER_STEP pixels (at least one). */
export const rowsPerStep = (rowWidth: number) => Math.max(1, Math.floor(PIXELS_PER_STEP / Math.max(1, rowWidth)));

/** Calls `band(y0, y1)` over [0, rows) in bands of about PIXELS_PER_STEP pixels, yielding after each. */
export function* bands(rows: number, rowWidth: number, band: (y0: number, y1: number) => void): Steps<void> {
  const step = rowsPerStep(rowWidth);
  for (let y = 0; y < rows; y += step) {
    band(y, Math.min(rows, y + step));
    yield;
  }
}

/** `bands`, run with the event loop let in between (for callers with a single pass). */
export function inBands(rows: number, rowWidth: number, band: (y0: number, y1: number) => void): Promise<void> {
  return runSliced(bands(rows, rowWidth, band));
}
