/**
 * The official test double of an endpoint: a registry kept in memory, a {@link Source} and a
 * {@link Sink} with the capabilities a real registry offers (mounting and the search across
 * repositories, a catalog, read-back, retry classification). It passes the same contract suite as
 * the real endpoints (test/unit/endpoint-contract.test.ts), so a test that drives the engine
 * through it exercises what a registry would.
 *
 * Like a registry, it keeps blobs per repository (a blob is visible only where it was pushed or
 * mounted), verifies every blob it receives against its digest and size before storing it, and
 * stores nothing of a body that fails. It records every write in `log`, and `fail` injects faults
 * by call: a lost connection part-way through a body, a lost answer after the blob was stored, a
 * refusal.
 */
import { Readable } from 'node:stream';
import { AirlockError } from '../../src/errors.js';
import { isDigest, sha256Digest } from '../../src/digest/digest.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import type { RawManifest } from '../../src/oci/manifest.js';
import { RegistryBlobSearch } from '../../src/registry/blob-search.js';
import type {
  BlobMounting,
  BlobSearch,
  BlobSearchOptions,
  Catalog,
  CatalogOptions,
  OpenBlobOptions,
  RepositoryCatalog,
  Sink,
  Source,
  UploadRetrying,
} from '../../src/transport/types.js';

/** A fault to inject into one `putBlob` call. */
export type BlobFault = 'network' | 'lost-response' | 'forbidden' | undefined;

export interface MemoryRegistryOptions {
  /** Decides a fault per `putBlob` call (`attempt` counts calls for that repository and digest). */
  fail?: (call: { repository: string; digest: string; attempt: number }) => BlobFault;
  /** `refused` makes the catalog answer like a registry that does not grant it. */
  catalog?: 'served' | 'refused';
}

export class MemoryRegistry implements Source, Sink, BlobMounting, RepositoryCatalog {
  readonly description = 'memory';
  readonly mounting: BlobMounting = this;
  readonly catalog: RepositoryCatalog = this;
  readonly readBack: Source = this;
  readonly retrying: UploadRetrying = {
    // As a registry client: a failure before the body flowed was retried inside the request already.
    isRetryable: (err, bodyStarted) => bodyStarted && err instanceof AirlockError && err.code === 'NETWORK',
    describe: (err) => (err instanceof Error ? err.message : String(err)),
  };
  /** Repository → digests linked there. */
  readonly blobs = new Map<string, Set<string>>();
  /** Repository → manifest digests stored there. */
  readonly manifests = new Map<string, Set<string>>();
  /** `repository:tag` → digest. */
  readonly tags = new Map<string, string>();
  /** Every write, in order: `blob R D`, `mount R D from F`, `manifest R D`, `tag R:T`. */
  readonly log: string[] = [];
  /** `putBlob` calls per `repository digest`. */
  readonly attempts = new Map<string, number>();
  catalogCalls = 0;
  readonly #content = new Map<string, Buffer>();
  readonly #manifestBytes = new Map<string, RawManifest>();
  readonly #opts: MemoryRegistryOptions;

  constructor(opts: MemoryRegistryOptions = {}) {
    this.#opts = opts;
  }

  async getManifest(repository: string, reference: string): Promise<RawManifest> {
    const digest = isDigest(reference) ? reference : this.tags.get(`${repository}:${reference}`);
    const m = digest === undefined || this.manifests.get(repository)?.has(digest) !== true ? undefined : this.#manifestBytes.get(digest);
    if (m === undefined) throw new AirlockError('NOT_FOUND', `memory: no manifest ${repository}${isDigest(reference) ? '@' : ':'}${reference}`);
    return m;
  }

  async openBlob(repository: string, desc: Descriptor, opts: OpenBlobOptions = {}): Promise<Readable> {
    const bytes = this.#has(repository, desc.digest) ? this.#content.get(desc.digest) : undefined;
    if (bytes === undefined) throw new AirlockError('NOT_FOUND', `memory: no blob ${desc.digest} in ${repository}`);
    const rest = bytes.subarray(opts.offset ?? 0);
    opts.onBytes?.(rest.length);
    return Readable.from([rest]);
  }

  async listTags(repository: string): Promise<string[]> {
    const prefix = `${repository}:`;
    return [...this.tags.keys()].filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map((k) => k.slice(prefix.length));
  }

  /** A blob linked by a test without content (`blobs.get(r).add(d)`) counts as present at any size. */
  async hasBlob(repository: string, desc: Descriptor): Promise<boolean> {
    const bytes = this.#content.get(desc.digest);
    return this.#has(repository, desc.digest) && (bytes === undefined || bytes.length === desc.size);
  }

  async mountBlob(repository: string, desc: Descriptor, from: string): Promise<boolean> {
    if (!(await this.hasBlob(from, desc))) return false;
    this.log.push(`mount ${repository} ${desc.digest} from ${from}`);
    this.#link(this.blobs, repository, desc.digest);
    return true;
  }

  searchFor(opts: BlobSearchOptions): BlobSearch {
    return new RegistryBlobSearch(this, this, opts);
  }

  async putBlob(repository: string, desc: Descriptor, body: Readable): Promise<void> {
    const key = `${repository} ${desc.digest}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    const fault = this.#opts.fail?.({ repository, digest: desc.digest, attempt });
    if (fault === 'forbidden') throw new AirlockError('AUTH', `memory denied ${key}`);
    const chunks: Buffer[] = [];
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      if (fault === 'network') throw new AirlockError('NETWORK', `connection lost during ${key}`);
    }
    const data = Buffer.concat(chunks);
    // As a registry does on the final PUT (the Sink contract: the sink verifies).
    if (data.length !== desc.size || sha256Digest(data) !== desc.digest) {
      throw new AirlockError('INTEGRITY', `memory rejected ${key}: content does not match its digest`);
    }
    this.#content.set(desc.digest, data);
    this.#link(this.blobs, repository, desc.digest);
    this.log.push(`blob ${key}`);
    if (fault === 'lost-response') throw new AirlockError('NETWORK', `connection lost after ${key}`);
  }

  async putManifest(repository: string, m: RawManifest, tag: string | undefined): Promise<void> {
    this.log.push(tag === undefined ? `manifest ${repository} ${m.digest}` : `tag ${repository}:${tag}`);
    this.#manifestBytes.set(m.digest, m);
    this.#link(this.manifests, repository, m.digest);
    if (tag !== undefined) this.tags.set(`${repository}:${tag}`, m.digest);
  }

  async listRepositories(opts: CatalogOptions = {}): Promise<Catalog> {
    this.catalogCalls++;
    if (this.#opts.catalog === 'refused') throw new AirlockError('AUTH', 'registry memory denied access to the repository catalog (401)');
    const all = [...new Set([...this.blobs.keys(), ...this.manifests.keys()])].sort();
    const prefix = opts.prefix ?? '';
    const under = all.filter((r) => prefix === '' || r === prefix || r.startsWith(`${prefix}/`));
    const limit = opts.limit ?? Infinity;
    return { repositories: under.slice(0, limit), complete: under.length <= limit };
  }

  /** Blobs, manifests and tags of every repository, sorted: two registries in the same state compare equal. */
  snapshot(repositories?: readonly string[]): Record<string, { blobs: string[]; manifests: string[]; tags: Array<[string, string]> }> {
    const repos = repositories ?? [...new Set([...this.blobs.keys(), ...this.manifests.keys()])].sort();
    return Object.fromEntries(
      repos.map((r) => [
        r,
        {
          blobs: [...(this.blobs.get(r) ?? [])].sort(),
          manifests: [...(this.manifests.get(r) ?? [])].sort(),
          tags: [...this.tags].filter(([k]) => k.startsWith(`${r}:`)).sort(),
        },
      ]),
    );
  }

  #has(repository: string, digest: string): boolean {
    return this.blobs.get(repository)?.has(digest) === true;
  }

  #link(map: Map<string, Set<string>>, repository: string, digest: string): void {
    if (!map.has(repository)) map.set(repository, new Set());
    map.get(repository)!.add(digest);
  }
}
