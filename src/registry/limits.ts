/** How many blobs one registry client moves at once (no imports: the CLI reads it without loading undici). */

/**
 * 4 blobs in flight per direction: enough to hide a remote registry's latency, while on a
 * 2-core machine more only adds contention (a third concurrent PUT did not help, measured).
 * Downloads and uploads have separate limits, so copying between two repositories of the same
 * registry cannot deadlock on its own permits.
 *
 * How the client keeps the blob at the head of the line moving with these slots: see client.ts.
 */
export const DEFAULT_MAX_CONCURRENT_BLOBS = 4;
