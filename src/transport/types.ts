/**
 * The endpoints of the one copy engine.
 *
 * A registry, an OCI layout directory and a bundle archive are each a {@link Source} and/or a
 * {@link Sink} of manifests and blobs, in the spirit of containers/image's ImageSource /
 * ImageDestination and go-containerregistry's remote / layout. `bundle create` is
 * registry|layout → archive; `bundle import` is archive → registry|layout; `copy` is any other pair.
 *
 * Contract (as containers/image's): a sink receives blobs, then the manifests that reference them,
 * children before indexes, then tags; a blob whose stream fails must not become readable by digest.
 *
 * What only some endpoints can do is a capability: a small interface below, offered as an optional,
 * typed member of the endpoint (`sink.mounting`, `sink.catalog` …). Callers discover a capability
 * by looking at that member, never by probing for methods or by `instanceof`, and the compiler
 * checks that an endpoint offering one implements all of it.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';

export interface CallOptions {
  signal?: AbortSignal;
}

/** Options of {@link Source.openBlob}. */
export interface OpenBlobOptions extends CallOptions {
  /**
   * Start at this byte of the blob (0 by default): an interrupted create continues a blob it had
   * partly written. The stream then yields `desc.size - offset` bytes.
   */
  offset?: number;
  /**
   * Called with the size of every piece of the blob as it is read (progress), so that callers need
   * no counting stage of their own.
   */
  onBytes?: (n: number) => void;
}

export interface Source {
  /** Human-readable name for messages: `registry quay.io`, `oci:/srv/layout`. */
  readonly description: string;
  /**
   * Fetch a manifest or index by tag or digest.
   * @param repository repository path within the endpoint, e.g. `coreos/etcd`
   * @param reference a tag or a digest
   */
  getManifest(repository: string, reference: string, opts?: CallOptions): Promise<RawManifest>;
  /**
   * Open a blob for reading. The stream is NOT verified: the copy engine verifies size and digest
   * (or leaves it to a sink that verifies what it stores). Sources that can should resume a broken
   * download internally (HTTP Range).
   */
  openBlob(repository: string, desc: Descriptor, opts?: OpenBlobOptions): Promise<Readable>;
  /** All tags of a repository (every page). */
  listTags(repository: string, opts?: CallOptions): Promise<string[]>;

  /** Capability: list the endpoint's repositories. */
  readonly catalog?: RepositoryCatalog;
  /** Capability: check that the endpoint answers and accepts the credentials, writing nothing. */
  readonly reachability?: ReachabilityCheck;
}

export interface Sink {
  readonly description: string;
  /** True when the blob is already present (and, for registries, linked into `repository`). */
  hasBlob(repository: string, desc: Descriptor, opts?: CallOptions): Promise<boolean>;
  /**
   * Store a blob. `body` yields exactly the blob's bytes; the sink must verify or rely on the
   * remote to verify the digest, and must not publish anything if the stream errors.
   */
  putBlob(repository: string, desc: Descriptor, body: Readable, opts?: CallOptions): Promise<void>;
  /** Store a manifest; `tag` undefined means by digest only. */
  putManifest(repository: string, manifest: RawManifest, tag: string | undefined, opts?: CallOptions): Promise<void>;

  /** Capability: blobs belong to repositories and can be linked across them. */
  readonly mounting?: BlobMounting;
  /** Capability: every name of a copy is set in one atomic step. */
  readonly naming?: AtomicNaming;
  /** Capability: list the endpoint's repositories. */
  readonly catalog?: RepositoryCatalog;
  /** Capability: check that the endpoint answers and accepts the credentials, writing nothing. */
  readonly reachability?: ReachabilityCheck;
  /** Capability: the sink needs a first write before content (and can undo it after a failure). */
  readonly preparation?: Preparation;
  /** Capability: a failed `putBlob` may succeed when tried again with a fresh stream. */
  readonly retrying?: UploadRetrying;
  /** Capability: what the sink stores can be read back (the same store as a {@link Source}). */
  readonly readBack?: Source;
  /** Capability (a constraint, really): content only in one fixed order, one piece at a time. */
  readonly inOrder?: InOrderWriting;
}

/**
 * A sink whose blobs belong to repositories (a registry): a blob that already sits in another
 * repository of the same sink is linked without sending it again (distribution's cross-repository
 * mount), and can be searched for across the sink. Sinks without it store each blob once for all
 * names.
 */
export interface BlobMounting {
  /** Resolves false when the sink declined (then the blob must be uploaded). */
  mountBlob(repository: string, desc: Descriptor, fromRepository: string, opts?: CallOptions): Promise<boolean>;
  /** A bounded search for blobs in repositories other than those checked (see {@link BlobSearch}). */
  searchFor(opts: BlobSearchOptions): BlobSearch;
}

export interface BlobSearchOptions {
  /** Repository names outside this prefix are not the copy's target (`--to HOST/PREFIX`). */
  prefix: string;
  /** Every repository the copy writes to: searched first. */
  known: readonly string[];
  signal?: AbortSignal;
  /** Bounds (tests shorten them). */
  maxProbes?: number;
  maxRepositories?: number;
}

/** Finds, within bounds, a repository of a sink that holds a blob (to mount it from there). */
export interface BlobSearch {
  /**
   * A repository holding `desc` (with its size), other than those in `checked`; undefined when
   * none was found within the bounds. `near` orders the candidates (closest names first).
   */
  locate(desc: Descriptor, checked: readonly string[], near: string): Promise<string | undefined>;
  /** What the search did so far, for errors and `--json`. */
  readonly report: SearchReport;
}

/** What a {@link BlobSearch} did. */
export interface SearchReport {
  /** Repositories of this copy beyond those that needed the blob. */
  known: number;
  /** Repositories listed from the catalog (under the prefix, not of this copy); undefined when not listed. */
  catalog: number | undefined;
  /** False when the catalog was cut at its bound. */
  catalogComplete: boolean;
  /** Why the catalog could not be read (refused, not served), when it could not. */
  catalogError?: string;
  /** Existence checks spent searching. */
  probes: number;
  /** True when the probe budget ran out before every candidate was tried. */
  exhausted: boolean;
}

/** One name to set at the end of a copy: `reference` is a tag, or a digest for a layout's name. */
export interface TagJob {
  repository: string;
  manifest: RawManifest;
  reference: string;
}

/**
 * A sink that sets many names in one atomic step (an OCI layout: one `index.json` write), so that
 * a failure leaves none of them set. It also names digest-only images (`repo@sha256:…`), since a
 * layout cannot find a manifest it does not name.
 */
export interface AtomicNaming {
  putTags(tags: readonly TagJob[], opts?: CallOptions): Promise<void>;
}

export interface CatalogOptions extends CallOptions {
  /** Only repositories under this path (`mirror` matches `mirror/…`, not `mirror2/…`); '' for all. */
  prefix?: string;
  /** Stop after this many repositories; `complete` then tells whether more exist. */
  limit?: number;
}

export interface Catalog {
  repositories: string[];
  /** False when the listing stopped at `limit`. */
  complete: boolean;
}

export interface RepositoryCatalog {
  listRepositories(opts?: CatalogOptions): Promise<Catalog>;
}

export interface ReachabilityCheck {
  /** Resolves when the endpoint answers and accepts the credentials; throws the reason otherwise. */
  ping(opts?: CallOptions): Promise<void>;
}

export interface Preparation {
  /** Make the skeleton (an OCI layout's `oci-layout` and `blobs/`): the copy's first write. */
  init(): Promise<void>;
  /** After a failed copy: remove what {@link init} created, nothing older. Never throws. */
  discard(): Promise<void>;
}

/**
 * A sink that takes its content in one fixed order, one blob or manifest at a time (a bundle
 * archive, a sequential stream whose bytes must not depend on timing). The engine copies into it
 * with `copyInOrder`, reading ahead from the sources instead of writing several at once.
 */
export interface InOrderWriting {
  /**
   * Bytes of `desc` the sink already holds from an interrupted run (the start of a blob that was
   * being written): the source is read from there on. 0 when it holds none.
   */
  heldBytes(desc: Descriptor): number;
}

export interface UploadRetrying {
  /**
   * True for a failure a fresh attempt may not meet again (a lost connection, 429, 5xx, an upload
   * session the registry dropped). The engine retries the whole blob with a new stream.
   *
   * @param bodyStarted whether any byte of the body had been read: a failure before that happened
   *   in a request the sink already retried on its own, unless the sink says otherwise
   */
  isRetryable(err: unknown, bodyStarted: boolean): boolean;
  /** A few words for the retry line: `503`, `connection reset`. */
  describe(err: unknown): string;
}
