/**
 * The repository catalog: `GET /v2/_catalog?n=1000`, then every `Link: <…>; rel="next"` page.
 *
 * The catalog is optional in the distribution spec: Docker Hub refuses it, token servers often do
 * not grant `registry:catalog:*`, some registries answer 404. Callers decide whether that is fatal
 * (`airlock inventory`) or only narrows a search (`bundle import` of a delta).
 */
import { AirlockError } from '../errors.js';
import { BodyTooLargeError, readCapped } from './body.js';
import type { Subject } from './errors.js';
import type { RegistryHttp } from './http.js';
import { parseLinkNext, parseNamesPage, TAGS_PAGE_SIZE } from './tags.js';
import type { Catalog, CatalogOptions } from '../transport/types.js';

export type { Catalog, CatalogOptions } from '../transport/types.js';

/** The token scope the catalog needs (distribution's `registry:catalog:*`). */
export const CATALOG_SCOPE = 'registry:catalog:*';

/** Page size asked for: distribution refuses `n` above 1000 on the catalog, as on tag lists. */
export const CATALOG_PAGE_SIZE = TAGS_PAGE_SIZE;

/** One page is read up to 16 MiB: 1000 names of at most 255 characters need ~260 KiB. */
export const MAX_CATALOG_PAGE_BYTES = 16 * 1024 * 1024;

/** Pages followed at most (10 million repositories at 1000 a page): ends a registry that links in a loop. */
export const MAX_CATALOG_PAGES = 10_000;

/** True when `repository` is `prefix` or lies under it. */
export function underPrefix(repository: string, prefix: string): boolean {
  return prefix === '' || repository === prefix || repository.startsWith(`${prefix}/`);
}

/**
 * Repositories of the registry's catalog, in the registry's order, without duplicates.
 *
 * @throws AUTH when the registry or token server refuses the catalog, NOT_FOUND when the registry
 *   does not serve one, REGISTRY for a malformed answer or pagination
 */
export async function listRepositories(http: RegistryHttp, opts: CatalogOptions = {}): Promise<Catalog> {
  const prefix = opts.prefix ?? '';
  const limit = opts.limit ?? Infinity;
  const subject: Subject = {
    host: http.host,
    what: 'the repository catalog (/v2/_catalog)',
    notFoundHint: 'this registry does not serve a catalog',
  };
  const found = new Set<string>();
  const seen = new Set<string>();
  let url: URL | undefined = new URL(`/v2/_catalog?n=${CATALOG_PAGE_SIZE}`, http.origin);
  while (url !== undefined) {
    if (seen.has(url.href) || seen.size >= MAX_CATALOG_PAGES || url.origin !== http.origin) {
      throw new AirlockError('REGISTRY', `registry ${http.host} paginates its catalog oddly (loop, foreign host or over ${MAX_CATALOG_PAGES} pages)`, {
        subject: http.host,
      });
    }
    seen.add(url.href);
    const pageUrl: URL = url;
    const page = await http.call(
      { method: 'GET', url: pageUrl, headers: { accept: 'application/json' }, scopes: [CATALOG_SCOPE], subject, expect: [200], signal: opts.signal },
      async (res) => {
        let body: Buffer;
        try {
          body = await readCapped(res.body, MAX_CATALOG_PAGE_BYTES, 'throw', http.timeouts.bodyMs);
        } catch (err) {
          if (!(err instanceof BodyTooLargeError)) throw err;
          throw new AirlockError('UNSUPPORTED', `registry ${http.host} sent a catalog page over ${MAX_CATALOG_PAGE_BYTES} bytes`, { subject: http.host });
        }
        const next = parseLinkNext(res.headers.link);
        return {
          names: parseNamesPage(
            body,
            'repositories',
            () => new AirlockError('REGISTRY', `registry ${http.host} sent an invalid repository catalog`, { subject: http.host }),
          ),
          next: next === undefined ? undefined : new URL(next, pageUrl),
        };
      },
    );
    for (const name of page.names) {
      if (!underPrefix(name, prefix)) continue;
      if (found.size >= limit) return { repositories: [...found], complete: false };
      found.add(name);
    }
    url = page.next;
  }
  return { repositories: [...found], complete: true };
}
