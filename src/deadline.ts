// src/deadline.ts
// A request deadline as an AbortSignal whose timer is held until cleared. On Node 20 a signal from
// AbortSignal.timeout() that is only combined through AbortSignal.any() is weakly held: once nothing else kept it
// alive it could be garbage-collected and never fire, and an async job then ran past REQUEST_TIMEOUT_MS.
export interface Deadline {
  signal: AbortSignal;
  clear(): void;
}

export function deadline(ms: number): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')), ms);
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
