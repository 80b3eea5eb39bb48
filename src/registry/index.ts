/**
 * The registry transport: a container registry (OCI distribution API v2) as a Source and a Sink.
 *
 * `client.ts` is the entry point; the protocol steps live in `manifests.ts`, `blobs.ts` (read,
 * with redirects and Range resume), `push.ts` (POST/mount → PATCH → PUT), `tags.ts`; `http.ts`
 * runs every request through authentication (`auth.ts`, `token.ts`, `www-authenticate.ts`),
 * retries (`retry.ts`) and error mapping (`errors.ts`); `credentials.ts` and `tls.ts` read the
 * operator's docker/podman configuration.
 */
export { RegistryClient, DEFAULT_MAX_CONCURRENT_BLOBS, type RegistryOptions } from './client.js';
export { resolveCredentials, defaultAuthFiles, type Credentials, type CredentialOptions } from './credentials.js';
export { DEFAULT_CERTS_DIRS, loadTlsOptions, type TlsSettings } from './tls.js';
export { DEFAULT_RETRY, isTemporary, parseRetryAfter, backoffDelay, type RetryOptions } from './retry.js';
export { RegistryHttpError, type RegistryErrorEntry } from './errors.js';
export { parseWwwAuthenticate, type Challenge } from './www-authenticate.js';
export { parseLinkNext } from './tags.js';
export { listRepositories, underPrefix, type Catalog, type CatalogOptions } from './catalog.js';
