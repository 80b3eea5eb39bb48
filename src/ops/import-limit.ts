/**
 * Running a list of jobs with at most N in flight, stopping at the first failure: the other jobs
 * get an aborted signal, are awaited (so their cleanup runs), and the first error is thrown.
 */
import { setMaxListeners } from 'node:events';

/**
 * Small requests in flight at once (manifests, tags, blobs under {@link LARGE_BLOB_BYTES}): 8.
 * They cost the registry a few milliseconds of work each and next to no bytes, so latency, not
 * bandwidth or the registry's ingest, limits them; measured on the 216-image benchmark bundle
 * against a loopback distribution registry, more in flight cut the per-image time (see bench/).
 */
export const SMALL_REQUESTS_IN_FLIGHT = 8;

/**
 * A blob this large or larger counts against the upload concurrency (`--concurrency`, default 2):
 * 1 MiB. Below it, the request's round trip costs more than its bytes.
 */
export const LARGE_BLOB_BYTES = 1 << 20;

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
