/**
 * Where the registry client sends credentials for a Bearer token: the registry's own origin, or
 * another origin over HTTPS (with a debug note), never another origin over plain HTTP (see
 * src/registry/realm.ts). Real node:http(s) servers on 127.0.0.1; the token servers record
 * whether an Authorization header reached them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { realmPlace } from '../../src/registry/realm.js';
import { serveHttp } from '../support/listen.js';
import { testPki } from '../support/registry.js';
import { hasTool } from '../support/tools.js';

interface Endpoint {
  url: string;
  host: string;
  /** The Authorization header of every request, in order (undefined: none sent). */
  authorizations: (string | undefined)[];
  close(): Promise<void>;
}

const open: Endpoint[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(open.splice(0).map((e) => e.close()));
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(tls: boolean, handler: Handler): Promise<Endpoint> {
  const authorizations: (string | undefined)[] = [];
  const server = await serveHttp(
    (req, res) => {
      authorizations.push(req.headers.authorization);
      handler(req, res);
    },
    { tls },
  );
  const e: Endpoint = { url: server.url, host: server.host, authorizations, close: server.close };
  open.push(e);
  return e;
}

const json = (res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(doc));
};

/** A token server handing out `tok`, and a registry accepting only `Bearer tok` with its realm at `realm(token server)`. */
async function setup(opts: { registryTls: boolean; tokenTls: boolean; realmHost?: string }) {
  const tokens = await listen(opts.tokenTls, (_req, res) => json(res, 200, { token: 'tok-abcdef-123456', expires_in: 300 }));
  const realm = `${tokens.url.replace('127.0.0.1', opts.realmHost ?? '127.0.0.1')}/token`;
  const registry = await listen(opts.registryTls, (req, res) => {
    if (req.headers.authorization !== 'Bearer tok-abcdef-123456') {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'auth' }] }, { 'www-authenticate': `Bearer realm="${realm}",service="s"` });
    }
    return json(res, 200, ['/v2/', '/v2/'].includes(req.url ?? '') ? {} : { name: 'a/b', tags: ['v1'] });
  });
  return { tokens, registry, realm };
}

async function client(host: string, tls: boolean, extra: { creds?: boolean; debug?: string[] } = {}): Promise<RegistryClient> {
  const pki = await testPki();
  const c = new RegistryClient(host, {
    plainHttp: !tls,
    caFiles: [pki.caFile],
    certsDirs: [],
    authFiles: [],
    userAgent: 'airlock-test',
    retry: { sleep: async () => {}, baseDelayMs: 1 },
    ...(extra.creds === true ? { credentials: { username: 'alice', password: 'wonderland-secret' } } : {}),
    ...(extra.debug === undefined ? {} : { debug: (line: string) => extra.debug?.push(line) }),
  });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AirlockError);
  return err as AirlockError;
}

describe('realmPlace', () => {
  it.each([
    ['https://r.example/token', 'https://r.example', 'same-origin'],
    ['https://r.example:443/token', 'https://r.example', 'same-origin'],
    ['http://r.example/token', 'https://r.example', 'other-plain-http'],
    ['https://auth.docker.io/token', 'https://registry-1.docker.io', 'other-https'],
    ['https://r.example:5001/token', 'https://r.example:5000', 'other-https'],
    ['http://r.example:5000/token', 'http://r.example:5000', 'same-origin'],
    ['http://r.example:5001/token', 'http://r.example:5000', 'other-plain-http'],
    ['http://localhost:5000/token', 'http://127.0.0.1:5000', 'other-plain-http'],
  ])('%s from %s is %s', (realm, origin, place) => {
    expect(realmPlace(new URL(realm), origin)).toBe(place);
  });
});

// The test certificates are made with openssl.
describe.skipIf(!hasTool('openssl'))('token realm policy', () => {
  it('refuses to send credentials to a plain-HTTP realm of an HTTPS registry, naming the realm and the fix', async () => {
    const { tokens, registry, realm } = await setup({ registryTls: true, tokenTls: false });
    const err = await failure((await client(registry.host, true, { creds: true })).listTags('a/b'));
    expect(err.code).toBe('AUTH');
    expect(err.message).toBe(
      `registry ${registry.host} is HTTPS but names a plain-HTTP token realm ${realm}: airlock does not send the credentials (from --creds) there`,
    );
    expect(err.hint).toContain('over HTTPS');
    // Nothing reached the realm, and the registry never saw the credentials either.
    expect(tokens.authorizations).toEqual([]);
    expect(registry.authorizations.every((a) => a === undefined)).toBe(true);
  });

  it('still fetches an anonymous token from such a realm (nothing secret to send)', async () => {
    const { tokens, registry } = await setup({ registryTls: true, tokenTls: false });
    expect(await (await client(registry.host, true)).listTags('a/b')).toEqual(['v1']);
    expect(tokens.authorizations).toEqual([undefined]);
  });

  it('refuses a plain-HTTP realm on another port of a plain-HTTP registry', async () => {
    const { tokens, registry } = await setup({ registryTls: false, tokenTls: false });
    const err = await failure((await client(registry.host, false, { creds: true })).listTags('a/b'));
    expect(err.code).toBe('AUTH');
    expect(err.message).toContain('names a plain-HTTP token realm on another host or port');
    expect(tokens.authorizations).toEqual([]);
  });

  it.each([
    ['another port', '127.0.0.1'],
    ['another host name (localhost)', 'localhost'],
  ])('sends credentials to an HTTPS realm on %s, and says so once in the debug notes', async (_what, realmHost) => {
    const { tokens, registry, realm } = await setup({ registryTls: true, tokenTls: true, realmHost });
    const debug: string[] = [];
    const c = await client(registry.host, true, { creds: true, debug });
    expect(await c.listTags('a/b')).toEqual(['v1']);
    expect(await c.listTags('c/d')).toEqual(['v1']);
    expect(tokens.authorizations).toHaveLength(2);
    expect(tokens.authorizations[0]).toBe(`Basic ${Buffer.from('alice:wonderland-secret').toString('base64')}`);
    expect(debug).toEqual([
      `sending the credentials for ${registry.host} (from --creds) to token realm ${realm}, another origin than the registry's https://${registry.host}`,
    ]);
  });
});
