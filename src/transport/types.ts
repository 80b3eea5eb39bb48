/**
 * The endpoints of the one copy engine.
 *
 * A registry, an OCI layout directory and a bundle archive are each a {@link Source} and/or a
 * {@link Sink} of manifests and blobs, in the spirit of containers/image's ImageSource /
 * ImageDestination. `bundle create` is registry → archive; `bundle import` is archive → registry.
 *
 * Contract (as containers/image's): a sink receives blobs, then the manifests that reference them,
 * children before indexes, then tags; a blob whose stream fails must not become readable by digest.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
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
   * Open a blob for reading. The stream is NOT verified: the copy engine verifies size and digest.
   * Sources that can should resume a broken download internally (HTTP Range).
   */
  openBlob(repository: string, desc: Descriptor, opts?: OpenBlobOptions): Promise<Readable>;
  /** All tags of a repository (every page). */
  listTags(repository: string, opts?: CallOptions): Promise<string[]>;
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
}


/**
 * Optional capability of a {@link Sink} whose blobs belong to repositories (a registry): link a
 * blob that already sits in another repository of the same sink without sending it again
 * (distribution's cross-repository mount). Sinks without it store each blob once for all names.
 */
export interface MountingSink extends Sink {
  /** Resolves false when the sink declined (then the blob must be uploaded). */
  mountBlob(repository: string, desc: Descriptor, fromRepository: string, opts?: CallOptions): Promise<boolean>;
}

/** True when `sink` can mount blobs across repositories (and so keeps blobs per repository). */
export function canMount(sink: Sink): sink is MountingSink {
  return typeof (sink as Partial<MountingSink>).mountBlob === 'function';
}

/** One name to set at the end of an import: `reference` is a tag, or a digest for a layout's name. */
export interface TagJob {
  repository: string;
  manifest: RawManifest;
  reference: string;
}

/**
 * Optional capability of a {@link Sink} that can set many names in one atomic step (an OCI layout:
 * one `index.json` write), so that a failure leaves none of them set.
 */
export interface BatchTaggingSink extends Sink {
  putTags(tags: readonly TagJob[], opts?: CallOptions): Promise<void>;
}

/** True when `sink` sets all its names at once. */
export function canTagAtOnce(sink: Sink): sink is BatchTaggingSink {
  return typeof (sink as Partial<BatchTaggingSink>).putTags === 'function';
}
