/**
 * Tag listing: `GET /v2/NAME/tags/list?n=1000`, then every `Link: <…>; rel="next"` page.
 */
import { AirlockError } from '../errors.js';
import { repositoryScope } from './auth.js';
import { BodyTooLargeError, readCapped } from './body.js';
import type { Subject } from './errors.js';
import type { RegistryHttp } from './http.js';

/**
 * Page size asked for: distribution refuses `n` above 1000 on its paginated endpoints, and 1000 is
 * the most registries generally serve per page anyway (go-containerregistry uses the same).
 */
export const TAGS_PAGE_SIZE = 1000;

/**
 * One page is read up to 16 MiB: a registry that ignores `n` (distribution 2.8 does) sends every
 * tag at once, and 16 MiB is ~100,000 long tags; more than that is refused, not buffered.
 */
export const MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024;

/** Pages followed at most (10 million tags at 1000 a page): ends a registry that links in a loop. */
export const MAX_TAGS_PAGES = 10_000;

/**
 * The target of the `rel="next"` link in `Link` header values (RFC 8288), or undefined.
 *
 * @example
 * parseLinkNext('</v2/a/tags/list?last=x&n=1000>; rel="next"') // → '/v2/a/tags/list?last=x&n=1000'
 */
export function parseLinkNext(value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.join(', ');
  const link = /<([^>]*)>((?:\s*;\s*[^;,]*)*)/g;
  for (let m = link.exec(text); m !== null; m = link.exec(text)) {
    const params = (m[2] ?? '').split(';').map((p) => p.trim());
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'rel') continue;
      const rels = param
        .slice(eq + 1)
        .trim()
        .replace(/^"|"$/g, '')
        .toLowerCase()
        .split(/\s+/);
      if (rels.includes('next')) return m[1];
    }
  }
  return undefined;
}

/**
 * The string array `field` of a JSON page (`tags` of a tag list, `repositories` of the catalog);
 * `null` or absent is empty (distribution lists an empty repository as `null`).
 * @throws the error `invalid()` makes, for anything else
 */
export function parseNamesPage(body: Buffer, field: string, invalid: () => AirlockError): string[] {
  let value: unknown;
  try {
    value = (JSON.parse(body.toString('utf8')) as Record<string, unknown>)[field];
  } catch {
    throw invalid();
  }
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string')) throw invalid();
  return value as string[];
}

/** Every tag of `repository`, in the registry's order, without duplicates. */
export async function listTags(http: RegistryHttp, repository: string, signal?: AbortSignal): Promise<string[]> {
  const subject: Subject = {
    host: http.host,
    repository,
    what: `repository ${repository}`,
    notFoundHint: `check the repository name (e.g. library/alpine on docker.io)`,
  };
  const tags = new Set<string>();
  const seen = new Set<string>();
  let url: URL | undefined = new URL(`/v2/${repository}/tags/list?n=${TAGS_PAGE_SIZE}`, http.origin);
  while (url !== undefined) {
    if (seen.has(url.href) || seen.size >= MAX_TAGS_PAGES || url.origin !== http.origin) {
      throw new AirlockError(
        'REGISTRY',
        `registry ${http.host} paginates the tags of ${repository} oddly (loop, foreign host or over ${MAX_TAGS_PAGES} pages)`,
        {
          subject: subject.what,
        },
      );
    }
    seen.add(url.href);
    const pageUrl: URL = url;
    const page = await http.call(
      {
        method: 'GET',
        url: pageUrl,
        headers: { accept: 'application/json' },
        scopes: [repositoryScope(repository, false)],
        repository,
        subject,
        expect: [200],
        signal,
      },
      async (res) => {
        let body: Buffer;
        try {
          body = await readCapped(res.body, MAX_TAGS_PAGE_BYTES, 'throw', http.timeouts.bodyMs);
        } catch (err) {
          if (!(err instanceof BodyTooLargeError)) throw err;
          throw new AirlockError('UNSUPPORTED', `registry ${http.host} sent a tag list page over ${MAX_TAGS_PAGE_BYTES} bytes for ${repository}`, {
            subject: subject.what,
          });
        }
        const next = parseLinkNext(res.headers.link);
        return {
          tags: parseNamesPage(
            body,
            'tags',
            () => new AirlockError('REGISTRY', `registry ${subject.host} sent an invalid tag list for ${subject.repository}`, { subject: subject.what }),
          ),
          next: next === undefined ? undefined : new URL(next, pageUrl),
        };
      },
    );
    for (const tag of page.tags) tags.add(tag);
    url = page.next;
  }
  return [...tags];
}
