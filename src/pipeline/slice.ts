// src/pipeline/slice.ts
// Full-resolution passes in JS run in bands of rows with the event loop let in between, so a 12 MP image
// (tens of ms per pass, more when inference holds both cores) never stalls health probes or other uploads.

/** Work between two yields; well under the 50 ms event-loop budget even when the CPU is shared. */
const BUDGET_MS = 8;
/** Rows are grouped so the clock is read about once per ~64 K pixels. */
const PIXELS_PER_CHECK = 1 << 16;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Calls `band(y0, y1)` over [0, rows) in order, in bands of about 64 K pixels, yielding to the event loop
 * whenever BUDGET_MS of work has run since the last yield. Small images run in one go without yielding.
 */
export async function inBands(rows: number, rowWidth: number, band: (y0: number, y1: number) => void): Promise<void> {
  const step = Math.max(1, Math.floor(PIXELS_PER_CHECK / Math.max(1, rowWidth)));
  let since = performance.now();
  for (let y = 0; y < rows; y += step) {
    band(y, Math.min(rows, y + step));
    if (performance.now() - since > BUDGET_MS) {
      await nextTurn();
      since = performance.now();
    }
  }
}
