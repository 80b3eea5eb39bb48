/**
 * The repository catalog against a throwaway node:http server: every `Link` page is followed with
 * n=1000, names are kept only under the prefix, the limit cuts the listing (and says so), and a
 * page that links back to itself is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isAirlockError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { type HttpFixture, serveHttp } from '../support/listen.js';

const PAGES: Record<string, { repositories: string[]; next?: string }> = {
  '': { repositories: ['a/x', 'm', 'm-other/y'], next: '/v2/_catalog?last=m-other%2Fy&n=1000' },
  'm-other/y': { repositories: ['m/one', 'm/two/deep'], next: '/v2/_catalog?last=m%2Ftwo%2Fdeep&n=1000' },
  'm/two/deep': { repositories: ['ma/z', 'm/three'] },
};

let server: HttpFixture | undefined;
let client: RegistryClient | undefined;
const asked: string[] = [];

async function serve(pages: typeof PAGES): Promise<RegistryClient> {
  server = await serveHttp((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v2/') return void res.writeHead(200).end('{}');
    asked.push(url.search);
    const page = pages[url.searchParams.get('last') ?? '']!;
    res.writeHead(200, { 'content-type': 'application/json', ...(page.next === undefined ? {} : { link: `<${page.next}>; rel="next"` }) });
    res.end(JSON.stringify({ repositories: page.repositories }));
  });
  client = new RegistryClient(server.host, { plainHttp: true, userAgent: 'airlock-test', authFiles: [], certsDirs: [], retry: { sleep: async () => {} } });
  return client;
}

afterEach(async () => {
  asked.length = 0;
  await client?.close();
  await server?.close();
  server = undefined;
});

describe('listRepositories', () => {
  it('follows every page and keeps the names under the prefix', async () => {
    const c = await serve(PAGES);
    expect(await c.listRepositories({ prefix: 'm' })).toEqual({ repositories: ['m', 'm/one', 'm/two/deep', 'm/three'], complete: true });
    expect(asked).toEqual(['?n=1000', '?last=m-other%2Fy&n=1000', '?last=m%2Ftwo%2Fdeep&n=1000']);
    expect((await c.listRepositories()).repositories).toHaveLength(7);
  });

  it('stops at the limit and says the listing is incomplete', async () => {
    const c = await serve(PAGES);
    expect(await c.listRepositories({ prefix: 'm', limit: 2 })).toEqual({ repositories: ['m', 'm/one'], complete: false });
  });

  it('refuses a registry that links a page to itself', async () => {
    const c = await serve({ '': { repositories: ['a'], next: '/v2/_catalog?n=1000' } });
    const err = await c.listRepositories().catch((e: unknown) => e);
    expect(isAirlockError(err, 'REGISTRY'), String(err)).toBe(true);
    expect((err as Error).message).toContain('paginates its catalog oddly');
  });
});
