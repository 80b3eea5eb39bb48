/**
 * A bundle archive as a {@link Source}: the images of a signed bundle, read through its index.
 *
 * It is made from what the caller has already established (import does it before anything is
 * written): the signed bundle manifest, whose signature was checked, an {@link ArchiveReader} whose
 * index was checked against it, and every manifest of the bundle read and verified against its
 * signed digest. So a manifest comes from memory, verified; a blob is found only if the signed
 * manifest lists it, at its signed size, and its entry stream yields exactly that many bytes or
 * fails. The bytes themselves are not hashed here: as from any source, the sink verifies them (a
 * registry refuses content that does not match on the final PUT; a layout hashes what it writes).
 *
 * Names: `repository` + `reference` is the recorded image name `repository:tag` or
 * `repository@digest` (`quay.io/coreos/etcd` + `v3.3`); any manifest of the bundle can be asked
 * for by digest. Blobs are the bundle's for every repository.
 */
import { Transform, type Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import { isDigest, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';
import { blobPath } from '../layout/paths.js';
import type { CallOptions, OpenBlobOptions, Source } from '../transport/types.js';
import { withByteCount } from '../transport/counting.js';
import type { ArchiveReader } from './archive-reader.js';
import type { BundleManifest } from './manifest.js';

export class ArchiveSource implements Source {
  readonly description: string;
  readonly #reader: ArchiveReader;
  readonly #manifests: ReadonlyMap<Digest, RawManifest>;
  /** Signed size of every carried blob. */
  readonly #sizes: ReadonlyMap<string, number>;
  /** Recorded image name → top manifest digest. */
  readonly #names: ReadonlyMap<string, Digest>;

  /**
   * @param reader the open archive (the caller closes it)
   * @param bundle its signed manifest
   * @param manifests every manifest and index it carries, verified, by digest
   */
  constructor(reader: ArchiveReader, bundle: BundleManifest, manifests: ReadonlyMap<Digest, RawManifest>) {
    this.description = reader.path;
    this.#reader = reader;
    this.#manifests = manifests;
    this.#sizes = new Map(bundle.blobs.map((b) => [b.digest as string, b.size]));
    this.#names = new Map(bundle.images.map((i) => [i.name, i.digest]));
  }

  async getManifest(repository: string, reference: string, _opts?: CallOptions): Promise<RawManifest> {
    const digest = isDigest(reference) ? reference : this.#names.get(`${repository}:${reference}`);
    const manifest = digest === undefined ? undefined : this.#manifests.get(digest);
    if (manifest === undefined) {
      const sep = isDigest(reference) ? '@' : ':';
      throw new AirlockError('NOT_FOUND', `${this.description}: the bundle holds no image ${repository}${sep}${reference}`, {
        subject: `${repository}${sep}${reference}`,
        hint: 'list what it holds with: airlock bundle inspect',
      });
    }
    return manifest;
  }

  async openBlob(_repository: string, desc: Descriptor, opts: OpenBlobOptions = {}): Promise<Readable> {
    opts.signal?.throwIfAborted();
    const size = this.#sizes.get(desc.digest);
    if (size === undefined || size !== desc.size) {
      throw new AirlockError('NOT_FOUND', `${this.description}: the bundle does not carry blob ${desc.digest} (${desc.size} bytes)`, {
        subject: desc.digest,
        hint:
          size === undefined
            ? 'a delta bundle carries only blobs its parents did not deliver: import the parent first'
            : `the bundle lists it as ${size} bytes`,
      });
    }
    const offset = opts.offset ?? 0;
    if (offset === 0) return this.#reader.openEntry(blobPath(desc.digest), { onBytes: opts.onBytes });
    // An entry is read from its start: the bytes before `offset` are decoded and dropped.
    return withByteCount(skipBytes(this.#reader.openEntry(blobPath(desc.digest)), offset), opts);
  }

  async listTags(repository: string, _opts?: CallOptions): Promise<string[]> {
    const prefix = `${repository}:`;
    return [...this.#names.keys()].filter((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('/')).map((n) => n.slice(prefix.length));
  }
}

/** Drop the first `offset` bytes of `from`; errors carry over, closing the result closes `from`. */
function skipBytes(from: Readable, offset: number): Readable {
  let skip = offset;
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const data = skip >= chunk.length ? undefined : chunk.subarray(skip);
      skip = Math.max(0, skip - chunk.length);
      done(null, data);
    },
  });
  from.on('error', (err) => out.destroy(err));
  out.on('close', () => from.destroy());
  return from.pipe(out);
}
