/**
 * Looking for a blob across the repositories of a registry, to mount it from where it is.
 *
 * Distribution links blobs per repository (a blob HEAD answers 404 in a repository it was never
 * linked into, even when another repository of the same registry holds it). A delta bundle's
 * parent may have put a blob into a repository this import does not touch: an image dropped since,
 * or one whose name changed. So a blob found in none of the repositories that need it is looked for
 * in the other repositories this copy writes to, then in the registry's catalog under the target
 * prefix (the namespace an earlier `bundle import --to` wrote to).
 *
 * The catalog search is a fallback and is bounded: see {@link MAX_CATALOG_REPOSITORIES} and
 * {@link MAX_SEARCH_PROBES}. Repositories that already held a blob searched for are tried first (a
 * parent's blobs tend to sit together), then those sharing the most path components with the
 * repository that needs the blob.
 */
import { isAirlockError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { BlobSearch, BlobSearchOptions, RepositoryCatalog, SearchReport, Sink } from '../transport/types.js';

/**
 * Repositories read from the catalog at most: 10,000, ten pages of distribution's maximum of 1000.
 * A registry with more is searched only in the first 10,000 under the prefix (the error says so).
 */
export const MAX_CATALOG_REPOSITORIES = 10_000;

/**
 * HEAD requests spent, in all, looking for external blobs beyond the repositories that need them:
 * 2000. A HEAD costs ~1 ms on a LAN and a few tens on a remote link, so the search stays within
 * seconds to a minute even when a broken chain leaves many blobs missing (each missing blob would
 * otherwise cost one HEAD per repository in the registry).
 */
export const MAX_SEARCH_PROBES = 2_000;

/** Leading path components two repository names share. */
function kinship(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  return n;
}

/** Looks for blobs across the repositories of a registry; see the module comment. */
export class RegistryBlobSearch implements BlobSearch {
  readonly #sink: Pick<Sink, 'hasBlob'>;
  readonly #catalog: RepositoryCatalog | undefined;
  readonly #opts: BlobSearchOptions;
  readonly #maxProbes: number;
  readonly #hits = new Map<string, number>();
  #listing: Promise<string[]> | undefined;
  readonly report: SearchReport;

  constructor(sink: Pick<Sink, 'hasBlob'>, catalog: RepositoryCatalog | undefined, opts: BlobSearchOptions) {
    this.#sink = sink;
    this.#catalog = catalog;
    this.#opts = opts;
    this.#maxProbes = opts.maxProbes ?? MAX_SEARCH_PROBES;
    this.report = { known: 0, catalog: undefined, catalogComplete: true, probes: 0, exhausted: false };
  }

  /**
   * A repository of the registry holding `desc` (with its size), other than those in `checked`;
   * undefined when none was found within the bounds.
   */
  async locate(desc: Descriptor, checked: readonly string[], near: string): Promise<string | undefined> {
    const skip = new Set(checked);
    const known = this.#opts.known.filter((r) => !skip.has(r));
    this.report.known = Math.max(this.report.known, known.length);
    const found = await this.#probe(desc, known, near);
    if (found !== undefined) return found;
    const catalog = (await this.#listCatalog()).filter((r) => !skip.has(r) && !this.#opts.known.includes(r));
    return this.#probe(desc, catalog, near);
  }

  async #probe(desc: Descriptor, candidates: readonly string[], near: string): Promise<string | undefined> {
    const hits = (r: string): number => this.#hits.get(r) ?? 0;
    const ordered = [...candidates].sort((a, b) => hits(b) - hits(a) || kinship(b, near) - kinship(a, near) || (a < b ? -1 : a > b ? 1 : 0));
    for (const repository of ordered) {
      if (this.report.probes >= this.#maxProbes) {
        this.report.exhausted = true;
        return undefined;
      }
      this.report.probes++;
      if (await this.#sink.hasBlob(repository, desc, { ...(this.#opts.signal === undefined ? {} : { signal: this.#opts.signal }) })) {
        this.#hits.set(repository, hits(repository) + 1);
        return repository;
      }
    }
    return undefined;
  }

  /** The catalog under the prefix, read once; a registry that refuses it leaves nothing more to search. */
  #listCatalog(): Promise<string[]> {
    this.#listing ??= (async () => {
      if (this.#catalog === undefined) return [];
      try {
        const listing = await this.#catalog.listRepositories({
          prefix: this.#opts.prefix,
          limit: this.#opts.maxRepositories ?? MAX_CATALOG_REPOSITORIES,
          ...(this.#opts.signal === undefined ? {} : { signal: this.#opts.signal }),
        });
        this.report.catalog = listing.repositories.filter((r) => !this.#opts.known.includes(r)).length;
        this.report.catalogComplete = listing.complete;
        return listing.repositories;
      } catch (err) {
        // Refused (AUTH), not served (NOT_FOUND) or malformed: the search is narrower, not broken.
        if (!isAirlockError(err, 'AUTH', 'NOT_FOUND', 'REGISTRY', 'UNSUPPORTED')) throw err;
        this.report.catalogError = err.message;
        return [];
      }
    })();
    return this.#listing;
  }
}
