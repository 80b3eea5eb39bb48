/**
 * {@link RegistryClient}: one registry (OCI distribution API v2) as a {@link Source} and a
 * {@link Sink}, over one keep-alive undici Agent.
 */
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';
import type {
  BlobMounting,
  BlobSearch,
  BlobSearchOptions,
  CallOptions,
  OpenBlobOptions,
  ReachabilityCheck,
  RepositoryCatalog,
  Sink,
  Source,
  UploadRetrying,
} from '../transport/types.js';
import { isAirlockError } from '../errors.js';
import { Authenticator } from './auth.js';
import { hasBlob, openBlob } from './blobs.js';
import { listRepositories, type Catalog, type CatalogOptions } from './catalog.js';
import type { HelperRunner } from './credential-helper.js';
import { resolveCredentials, type Credentials } from './credentials.js';
import { apiHostFor, RegistryHttp } from './http.js';
import { getManifest, headManifest, putManifest } from './manifests.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_MONOLITHIC_LIMIT, initiateUpload, cancelUpload, uploadBlob, type UploadSettings } from './push.js';
import { failureReason, type RegistryListener } from './events.js';
import { DEFAULT_RETRY, isExpiredSession, isRetryableUpload, type RetryOptions } from './retry.js';
import { RegistryBlobSearch } from './blob-search.js';
import { Semaphore } from '../sync/semaphore.js';
import { DEFAULT_MAX_CONCURRENT_BLOBS } from './limits.js';
import { DEFAULT_TIMEOUTS, type Timeouts } from './timeouts.js';
import { listTags } from './tags.js';
import { loadTlsOptions, type TlsSettings } from './tls.js';
import { proxyFor, proxySettings } from './proxy.js';
import { registerCredentials } from '../redact.js';

export { DEFAULT_MAX_CONCURRENT_BLOBS } from './limits.js';

/** Options of {@link RegistryClient}; only `userAgent` is required. */
export interface RegistryOptions extends TlsSettings {
  /** Talk HTTP instead of HTTPS (`--plain-http`). */
  plainHttp?: boolean;
  /** From `--creds`; wins over auth files and helpers. */
  credentials?: { username: string; password: string };
  /** Replaces the default auth files (see `defaultAuthFiles`). */
  authFiles?: string[];
  /** Environment for credential lookup and helpers. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Home directory for `~/.docker/config.json`. Default `os.homedir()`. */
  homeDir?: string;
  /** Runs `docker-credential-NAME get`; injectable for tests. */
  runCredentialHelper?: HelperRunner;
  /**
   * `--proxy URL`: the proxy for every registry, replacing `HTTPS_PROXY` / `HTTP_PROXY`; `''` for
   * none whatever the environment says. Unset: the environment (`env`) decides (see proxy.ts).
   */
  proxy?: string;
  /** Use this dispatcher instead of an own Agent; the TLS and proxy settings are then the dispatcher's business. */
  dispatcher?: Dispatcher;
  /** `User-Agent` of every request, e.g. `airlock/0.1.0`. */
  userAgent: string;
  /** Blob downloads (and, separately, uploads) in flight at once. Default {@link DEFAULT_MAX_CONCURRENT_BLOBS}. */
  maxConcurrentBlobs?: number;
  /** Retry settings; see `DEFAULT_RETRY`. */
  retry?: Partial<RetryOptions>;
  /** Connect, response-head and idle-body timeouts; see `DEFAULT_TIMEOUTS` (`--timeout`). */
  timeouts?: Partial<Timeouts>;
  /** Hears of each retry and, for `--debug`, each HTTP exchange (the library prints nothing). */
  onEvent?: RegistryListener;
  /** Upload thresholds; see `DEFAULT_MONOLITHIC_LIMIT` and `DEFAULT_CHUNK_SIZE`. */
  upload?: Partial<UploadSettings>;
  /** Aborts everything this client does. */
  signal?: AbortSignal;
  /**
   * Receives notes worth showing with `--debug` (a token realm on another host). The library never
   * prints; the caller decides where the lines go.
   */
  debug?: (line: string) => void;
}

/**
 * A registry as a source and sink of manifests and blobs.
 *
 * @example
 * const quay = new RegistryClient('quay.io', { userAgent: 'airlock/0.1.0' });
 * const m = await quay.getManifest('coreos/etcd', 'v3.5.0');
 * await quay.close();
 */
export class RegistryClient implements Source, Sink, BlobMounting, RepositoryCatalog, ReachabilityCheck {
  readonly description: string;
  readonly host: string;
  // Capabilities (see transport/types.ts): a registry has them all but naming and preparation.
  readonly mounting: BlobMounting = this;
  readonly catalog: RepositoryCatalog = this;
  readonly reachability: ReachabilityCheck = this;
  readonly readBack: Source = this;
  readonly retrying: UploadRetrying = {
    // Before the body flowed, the failure was in a request the client already retried (the POST),
    // unless the registry dropped the upload session, which only a new one fixes.
    isRetryable: (err, bodyStarted) => (bodyStarted || isExpiredSession(err) || triedOnce(err)) && isRetryableUpload(err),
    describe: (err) => failureReason(err, this.#timeouts),
  };
  readonly #http: RegistryHttp;
  readonly #upload: UploadSettings;
  /**
   * Slots and the head of the line. A reader such as `bundle create` opens blobs ahead of the one it
   * reads (copy/blob-feed.ts); their responses wait unread in their sockets. None of that may ever
   * stop the blob at the head of the line, so, by construction:
   * 1. A download slot is taken once per blob, when it is opened, and kept until its stream closes.
   *    Resuming it (Range), retrying one of its requests and fetching a token for it take no slot,
   *    so a blob that holds one can always make progress.
   * 2. Slots are granted first come, first served, and a reader opens blobs in the order it reads
   *    them, so the head of the line always holds a slot before any blob behind it waits for one.
   * 3. Connections are not capped per origin (undici's default; never set `connections` on the
   *    Agent): requests in flight are bounded by these slots and the callers' own limits, so a
   *    response paused in its socket never keeps a connection from the head.
   * 4. A response left unread is never a silent failure: undici does not time out a body we paused,
   *    and one that broke while unread is found and resumed when it is read (blobs.ts).
   */
  readonly #downloads: Semaphore;
  readonly #uploads: Semaphore;
  readonly #credentials = new Map<string, Promise<Credentials | undefined>>();
  readonly #timeouts: Timeouts;
  #dispatcher: Promise<Dispatcher> | undefined;
  #ownAgent: Agent | undefined;

  /** @param host registry as named in references: `quay.io`, `127.0.0.1:5000`, `docker.io` */
  constructor(host: string, options: RegistryOptions) {
    this.host = host;
    this.description = `registry ${host}`;
    const retry: RetryOptions = { ...DEFAULT_RETRY, ...options.retry };
    const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#timeouts = timeouts;
    const slots = options.maxConcurrentBlobs ?? DEFAULT_MAX_CONCURRENT_BLOBS;
    this.#downloads = new Semaphore(slots);
    this.#uploads = new Semaphore(slots);
    this.#upload = {
      monolithicLimit: options.upload?.monolithicLimit ?? DEFAULT_MONOLITHIC_LIMIT,
      chunkSize: options.upload?.chunkSize ?? DEFAULT_CHUNK_SIZE,
    };
    const dispatcher = (): Promise<Dispatcher> => (this.#dispatcher ??= this.#makeDispatcher(options));
    const credentials = (repository: string | undefined): Promise<Credentials | undefined> => {
      const key = repository ?? '';
      let found = this.#credentials.get(key);
      if (found === undefined) {
        found = resolveCredentials(host, repository, {
          ...(options.credentials === undefined ? {} : { creds: options.credentials }),
          ...(options.authFiles === undefined ? {} : { authFiles: options.authFiles }),
          ...(options.env === undefined ? {} : { env: options.env }),
          ...(options.homeDir === undefined ? {} : { homeDir: options.homeDir }),
          ...(options.runCredentialHelper === undefined ? {} : { runHelper: options.runCredentialHelper }),
        });
        found.catch(() => this.#credentials.delete(key));
        this.#credentials.set(key, found);
      }
      return found;
    };
    const auth = new Authenticator({
      host,
      origin: `${options.plainHttp === true ? 'http' : 'https'}://${apiHostFor(host)}`,
      dispatcher,
      credentials,
      userAgent: options.userAgent,
      now: retry.now,
      timeouts,
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.debug === undefined ? {} : { debug: options.debug }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    this.#http = new RegistryHttp({
      host,
      apiHost: apiHostFor(host),
      plainHttp: options.plainHttp === true,
      dispatcher,
      userAgent: options.userAgent,
      retry,
      timeouts,
      auth,
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  async #makeDispatcher(options: RegistryOptions): Promise<Dispatcher> {
    if (options.dispatcher !== undefined) return options.dispatcher;
    const tls = options.plainHttp === true ? {} : await loadTlsOptions(this.host, options);
    const proxies = proxySettings(options.proxy, options.env ?? process.env);
    if (proxies.http !== undefined || proxies.https !== undefined) {
      for (const p of [proxies.http, proxies.https]) registerCredentials({ ...p });
      const { proxyDispatcher } = await import('./proxy-dispatcher.js');
      const via = proxyFor(proxies, new URL(`${options.plainHttp === true ? 'http' : 'https'}://${apiHostFor(this.host)}`));
      options.debug?.(`registry ${this.host}: ${via === undefined ? 'direct (NO_PROXY or no proxy for this scheme)' : `through proxy ${via.display}`}`);
      // An https:// proxy is checked against the --ca-file CAs, even for a plain-HTTP registry.
      const proxyCa = options.plainHttp === true ? (await loadTlsOptions(this.host, { ...options, certsDirs: [] })).ca : tls.ca;
      this.#ownAgent = proxyDispatcher({ settings: proxies, tls, ...(proxyCa === undefined ? {} : { proxyCa }), ...this.#timeouts });
      return this.#ownAgent;
    }
    // Every request also sets its own head and body timeouts (http.ts, token.ts); these cover any other.
    this.#ownAgent = new Agent({
      connect: { ...tls, timeout: this.#timeouts.connectMs },
      headersTimeout: this.#timeouts.headersMs,
      bodyTimeout: this.#timeouts.bodyMs,
    });
    return this.#ownAgent;
  }

  /** Check that the registry speaks API v2 and learn how it wants to be authenticated. */
  async ping(opts: CallOptions = {}): Promise<void> {
    await this.#http.ping(opts.signal);
  }

  getManifest(repository: string, reference: string, opts: CallOptions = {}): Promise<RawManifest> {
    return getManifest(this.#http, repository, reference, opts.signal);
  }

  /** The descriptor of a manifest if the registry has it, else undefined (HEAD). */
  headManifest(repository: string, reference: string, opts: CallOptions = {}): Promise<Descriptor | undefined> {
    return headManifest(this.#http, repository, reference, opts.signal);
  }

  putManifest(repository: string, manifest: RawManifest, tag: string | undefined, opts: CallOptions = {}): Promise<void> {
    return putManifest(this.#http, repository, manifest, tag, opts.signal);
  }

  /** Open a blob; the stream resumes broken downloads and holds a download slot until it closes. */
  async openBlob(repository: string, desc: Descriptor, opts: OpenBlobOptions = {}): Promise<Readable> {
    const release = await this.#downloads.acquire(this.#http.signal(opts.signal));
    try {
      const stream = await openBlob(this.#http, repository, desc, opts.signal, opts.offset ?? 0, opts.onBytes);
      stream.once('close', release);
      return stream;
    } catch (err) {
      release();
      throw err;
    }
  }

  listTags(repository: string, opts: CallOptions = {}): Promise<string[]> {
    return listTags(this.#http, repository, opts.signal);
  }

  /** Repositories of the catalog (every page), optionally only those under a prefix, up to a limit. */
  listRepositories(opts: CatalogOptions = {}): Promise<Catalog> {
    return listRepositories(this.#http, opts);
  }

  hasBlob(repository: string, desc: Descriptor, opts: CallOptions = {}): Promise<boolean> {
    return hasBlob(this.#http, repository, desc, true, opts.signal);
  }

  /**
   * Link a blob from `fromRepository` of the same registry into `repository` without sending it.
   * Resolves false when the registry declined (it then opened an upload session, which is deleted).
   */
  async mountBlob(repository: string, desc: Descriptor, fromRepository: string, opts: CallOptions = {}): Promise<boolean> {
    const initiated = await initiateUpload(this.#http, repository, desc, fromRepository, opts.signal);
    if (initiated.mounted) return true;
    await cancelUpload(this.#http, repository, desc, initiated.location, opts.signal);
    return false;
  }

  /** A bounded search of this registry's other repositories for a blob (registry/blob-search.ts). */
  searchFor(opts: BlobSearchOptions): BlobSearch {
    return new RegistryBlobSearch(this, this, opts);
  }

  /** Upload a blob; holds an upload slot meanwhile. The registry verifies the digest on commit. */
  async putBlob(repository: string, desc: Descriptor, body: Readable, opts: CallOptions = {}): Promise<void> {
    const release = await this.#uploads.acquire(this.#http.signal(opts.signal));
    try {
      await uploadBlob(this.#http, repository, desc, body, this.#upload, opts.signal);
    } finally {
      release();
    }
  }

  /** Close the connections this client opened (an injected dispatcher is left alone). */
  async close(): Promise<void> {
    const agent = this.#ownAgent;
    this.#ownAgent = undefined;
    this.#dispatcher = undefined;
    await agent?.close();
  }
}

/**
 * A connection lost in a request the client did not retry itself (the PUT carrying the body, reset
 * before it read a byte): only a whole new attempt with a fresh stream can retry it.
 */
function triedOnce(err: unknown): boolean {
  return isAirlockError(err, 'NETWORK') && ((err.details?.attempts as number | undefined) ?? 1) <= 1;
}
