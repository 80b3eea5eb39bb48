/** How many requests and uploads the copy engine keeps in flight. */

/**
 * Existence checks (HEAD) and mounts in flight during the checking phase: 8. They carry no body,
 * so more than the upload limit costs the registry little and hides round trips to a remote one.
 */
export const CHECK_CONCURRENCY = 8;

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
 * Two uploads in flight by default. The target registry is CPU-bound on ingest (distribution 2.8
 * spends ~3.4 s of CPU per GB it receives): on the 2-core reference machine one upload stream
 * topped out near 240 MB/s, two concurrent PUTs brought 1 GB from ~4.2 s down to ~3.3 s, and a
 * third did not help; each upload also costs this process a decompression and a sha256 on one core.
 */
export const DEFAULT_IMPORT_CONCURRENCY = 2;
