/**
 * Waiting between attempts: exponential backoff with jitter, and an abortable sleep. Shared by the
 * registry client (its requests) and the copy engine (whole-blob retries).
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface Backoff {
  baseDelayMs: number;
  maxDelayMs: number;
  /** A number in [0, 1): injected so that tests are reproducible. */
  random: () => number;
}

/**
 * The wait before retry number `attempt` (0-based): "equal jitter", half fixed and half random, so
 * clients that failed together do not retry together, yet every wait is at least half the backoff.
 */
export function backoffDelay(attempt: number, opts: Backoff): number {
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (opts.random() * ceiling) / 2);
}

/** Sleep `ms`, or reject with the signal's reason as soon as it aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal === undefined ? undefined : { signal });
}
