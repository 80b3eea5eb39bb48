/**
 * The receiving side of a delta bundle: finding in the target the blobs a delta does not carry
 * (its `external` list), and, when some are nowhere, the one error that names every one of them
 * with the earlier bundle (or the stale inventory) it came from.
 *
 * Where a blob is looked for. The check phase (push-blobs.ts) HEADs it in every repository of this
 * import that needs it. Distribution links blobs per repository (FACTS: HEAD is 404 unless linked
 * there), and a parent may have put a blob into a repository this delta does not touch: an image
 * dropped since, or one whose name changed. So an external blob found in none of them is looked for
 * in the other repositories this import maps to, then in the registry's catalog under the target
 * prefix (the same namespace an earlier `bundle import --to` wrote to), and mounted from where it
 * is found. An OCI layout keeps one blob store for all names: a file of the right size is enough.
 *
 * The catalog search is a fallback and is bounded: see {@link MAX_CATALOG_REPOSITORIES} and
 * {@link MAX_SEARCH_PROBES}. Repositories that already held an external blob are tried first (a
 * parent's blobs tend to sit together), then those sharing the most path components with the
 * repository that needs the blob.
 */
import { AirlockError, isAirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { BundleManifest, BundleParent } from '../bundle/manifest.js';
import { canMount, type Sink } from '../transport/types.js';

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

/** What the search did, for the error and `--json`. */
export interface SearchReport {
  /** Repositories of this import beyond those that needed the blob. */
  known: number;
  /** Repositories listed from the catalog (under the prefix, not of this import); undefined when not listed. */
  catalog: number | undefined;
  /** False when the catalog was cut at {@link MAX_CATALOG_REPOSITORIES}. */
  catalogComplete: boolean;
  /** Why the catalog could not be read (refused, not served), when it could not. */
  catalogError?: string;
  /** HEAD requests spent searching. */
  probes: number;
  /** True when the probe budget ran out before every candidate was tried. */
  exhausted: boolean;
}

/** Optional capability of a sink: its repository catalog (a registry's `/v2/_catalog`). */
interface CatalogSink {
  listRepositories(opts: { prefix?: string; limit?: number; signal?: AbortSignal }): Promise<{ repositories: string[]; complete: boolean }>;
}

function hasCatalog(sink: Sink): sink is Sink & CatalogSink {
  return typeof (sink as Partial<CatalogSink>).listRepositories === 'function';
}

/** Leading path components two repository names share. */
function kinship(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  return n;
}

export interface TargetSearchOptions {
  /** Catalog names outside this prefix are not the target's (`--to HOST/PREFIX`). */
  prefix: string;
  /** Every repository this import writes to. */
  known: readonly string[];
  signal?: AbortSignal;
  /** Tests shorten the bounds. */
  maxProbes?: number;
  maxRepositories?: number;
}

/** Looks for blobs across the repositories of a registry target; see the module comment. */
export class TargetSearch {
  readonly #sink: Sink;
  readonly #opts: TargetSearchOptions;
  readonly #maxProbes: number;
  readonly #hits = new Map<string, number>();
  #catalog: Promise<string[]> | undefined;
  readonly report: SearchReport;

  constructor(sink: Sink, opts: TargetSearchOptions) {
    this.#sink = sink;
    this.#opts = opts;
    this.#maxProbes = opts.maxProbes ?? MAX_SEARCH_PROBES;
    this.report = { known: 0, catalog: undefined, catalogComplete: true, probes: 0, exhausted: false };
  }

  /**
   * A repository of the target holding `desc` (with its size), other than those in `checked`;
   * undefined when none was found within the bounds. A sink without repositories (a layout) has
   * nowhere else to look.
   */
  async locate(desc: Descriptor, checked: readonly string[], near: string): Promise<string | undefined> {
    if (!canMount(this.#sink)) return undefined;
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
    this.#catalog ??= (async () => {
      if (!hasCatalog(this.#sink)) return [];
      try {
        const listing = await this.#sink.listRepositories({
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
    return this.#catalog;
  }
}

/** An external blob that neither the bundle nor the target holds. */
export interface MissingBlob {
  desc: Descriptor;
  /** The first image that needs it. */
  image: string;
  /** Target repositories that need it. */
  repositories: string[];
  /** The parent the bundle says delivered it (`external[].bundle`). */
  parent: Digest | undefined;
}

/** Everything {@link missingContentError} says. */
export interface MissingContext {
  path: string;
  /** `HOST/PREFIX` or `oci:DIR`. */
  target: string;
  bundle: BundleManifest;
  missing: readonly MissingBlob[];
  search: SearchReport | undefined;
  /** How to list the target from the secure side: `--registry HOST/PREFIX` or `--layout DIR`. */
  inventoryArgs: string;
}

function describeBlob(m: MissingBlob): string {
  return `blob ${m.desc.digest} (${m.desc.size} bytes, needed by ${m.image})`;
}

function describeParent(p: BundleParent): string {
  return `${p.id} (created ${p.created}${p.keyId === undefined ? '' : `, signed by key ${p.keyId}`})`;
}

/** One line per missing blob, naming where it should have come from. */
function problemFor(m: MissingBlob, parents: ReadonlyMap<string, BundleParent>): { message: string; subject: string } {
  const parent = m.parent === undefined ? undefined : parents.get(m.parent);
  let message: string;
  if (parent?.kind === 'inventory') {
    message = `the inventory ${parent.id} is stale: the target no longer holds ${describeBlob(m)}`;
  } else if (parent !== undefined) {
    message = `${describeBlob(m)} is carried by bundle ${parent.id}, not imported here`;
  } else {
    message = `${describeBlob(m)} is carried by ${m.parent ?? 'an unnamed bundle'}, which the bundle does not list as a parent`;
  }
  return { message, subject: m.desc.digest };
}

/** The next step: the parent bundles to import first (oldest first), or a fresh inventory. */
function nextSteps(ctx: MissingContext, parents: readonly BundleParent[]): string {
  const steps: string[] = [];
  const bundles = parents.filter((p) => p.kind === 'bundle');
  const inventories = parents.filter((p) => p.kind === 'inventory');
  if (bundles.length === 1) steps.push(`import bundle ${describeParent(bundles[0]!)} into ${ctx.target} first, then this one again`);
  if (bundles.length > 1) steps.push(`import bundles ${bundles.map(describeParent).join(', ')} into ${ctx.target} first, in that order, then this one again`);
  for (const inv of inventories) {
    steps.push(
      `the target changed since inventory ${inv.id} was made (${inv.created}): make a new one (airlock inventory ${ctx.inventoryArgs} > have.json), create the delta again with --since have.json, or import a full bundle`,
    );
  }
  if (steps.length === 0) steps.push(`import the bundle that carries ${parents.length === 0 ? 'them' : 'it'} into ${ctx.target} first, or import a full bundle`);
  const s = ctx.search;
  if (s !== undefined && (s.exhausted || !s.catalogComplete)) {
    steps.push(`the search stopped after ${s.probes} checks${s.catalogComplete ? '' : ` in the first ${s.catalog ?? 0} repositories of the catalog`}: a blob may sit in a repository not searched`);
  } else if (s?.catalogError !== undefined) {
    steps.push(`the catalog could not be searched (${s.catalogError})`);
  }
  return `${steps.join('; ')}. Nothing was written`;
}

/**
 * The NOT_FOUND error for external blobs found nowhere in the target: the message names the
 * first, `details.problems` every one (the CLI prints them), `details.missing` them as data.
 */
export function missingContentError(ctx: MissingContext): AirlockError {
  const parents = new Map((ctx.bundle.parents ?? []).map((p) => [p.id as string, p]));
  const problems = ctx.missing.map((m) => problemFor(m, parents));
  const needed = [...new Set(ctx.missing.map((m) => m.parent))];
  // The parents to act on, in the bundle's order (oldest first); unknown ids only in the problems.
  const involved = (ctx.bundle.parents ?? []).filter((p) => needed.includes(p.id));
  const n = ctx.missing.length;
  const more = n > 1 ? ` (and ${n - 1} more)` : '';
  return new AirlockError('NOT_FOUND', `${ctx.path} is a delta bundle; ${ctx.target} lacks ${n} blob${n === 1 ? '' : 's'} it does not carry: ${problems[0]!.message}${more}`, {
    subject: ctx.missing[0]!.desc.digest,
    hint: nextSteps(ctx, involved),
    details: {
      problems,
      missing: ctx.missing.map((m) => ({ ...m.desc, image: m.image, repositories: m.repositories, parent: m.parent })),
      parents: involved,
      ...(ctx.search === undefined ? {} : { search: ctx.search }),
    },
  });
}
