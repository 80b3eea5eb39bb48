/**
 * Running a list of jobs with at most N in flight, stopping at the first failure: the other jobs
 * get an aborted signal, are awaited (so their cleanup runs), and the first error is thrown.
 */
import { setMaxListeners } from 'node:events';

/**
 * Run `fn` over `items` with at most `limit` calls at once, in list order.
 *
 * @param signal the caller's signal; the jobs receive one that also aborts on the first failure
 * @throws the first error any job threw (later ones are only the fallout of the abort)
 * @example
 * await runLimited(blobs, 2, signal, async (blob, jobSignal) => upload(blob, jobSignal));
 */
export async function runLimited<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  const jobSignal = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
  // Every request in flight listens on it; their number is bounded by `limit` and the clients'
  // own limits, not by Node's default warning threshold of 10.
  setMaxListeners(0, jobSignal);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        jobSignal.throwIfAborted();
        await fn(item, jobSignal);
      } catch (err) {
        if (failure === undefined) {
          failure = { err };
          stop.abort(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.err;
}
