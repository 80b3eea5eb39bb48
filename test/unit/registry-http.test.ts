/**
 * HTTP-level behaviour of RegistryClient against throwaway node:http(s) servers on 127.0.0.1:
 * API check, Bearer and Basic auth, retries, TLS classification, manifests, tags.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/media-types.js';
import { RegistryClient, type RegistryOptions } from '../../src/registry/client.js';
import { listenLocal } from '../support/listen.js';
import { hasTool } from '../support/tools.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}
interface Fixture {
  host: string;
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

const open: Fixture[] = [];
const clients: RegistryClient[] = [];

async function listen(server: Server, scheme: string): Promise<Fixture> {
  const seen: Seen[] = [];
  server.prependListener('request', (req: IncomingMessage) => seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers }));
  const { host, close } = await listenLocal(server);
  const fixture = { host, url: `${scheme}://${host}`, seen, close };
  open.push(fixture);
  return fixture;
}

const serve = (handler: Handler): Promise<Fixture> => listen(createHttpServer(handler), 'http');

function client(host: string, options: Partial<RegistryOptions> = {}): RegistryClient {
  const c = new RegistryClient(host, {
    plainHttp: true,
    userAgent: 'airlock-test',
    certsDirs: [],
    authFiles: [],
    retry: { sleep: async () => {}, baseDelayMs: 1 },
    ...options,
  });
  clients.push(c);
  return c;
}

function json(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

const errorBody = (code: string, message: string) => ({ errors: [{ code, message }] });

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(open.splice(0).map((f) => f.close()));
});

const manifestBytes = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256Digest('{}'), size: 2 },
    layers: [],
  }),
);
const manifestDigest = sha256Digest(manifestBytes);

function serveManifest(res: ServerResponse, digest = manifestDigest): void {
  res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': manifestBytes.length, 'docker-content-digest': digest });
  res.end(manifestBytes);
}

async function failure(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AirlockError);
  return err as AirlockError;
}

describe('ping', () => {
  it('reports a refused connection as NETWORK at once, naming the host, with a hint', async () => {
    const f = await serve(() => {});
    await f.close();
    open.length = 0;
    const err = await failure(client(f.host).ping());
    expect(err.code).toBe('NETWORK');
    expect(err.message).toBe(`cannot connect to registry ${f.host}: connection refused`);
    expect(err.hint).toContain('--plain-http');
  });

  it('reports a server without the v2 API as REGISTRY', async () => {
    const f = await serve((_req, res) => json(res, 404, {}));
    expect((await failure(client(f.host).ping())).code).toBe('REGISTRY');
  });

  it('retries 503 on the API check, then succeeds', async () => {
    let n = 0;
    const f = await serve((_req, res) => (n++ < 2 ? json(res, 503, {}) : json(res, 200, {})));
    await client(f.host).ping();
    expect(n).toBe(3);
  });
});

describe('Bearer token auth', () => {
  // The token service shares the registry's origin: credentials never go to a plain-HTTP realm
  // elsewhere (see the realm tests below).
  async function tokenRegistry(opts: { user?: string; pass?: string; scopeError?: boolean } = {}) {
    const tokens: Seen[] = [];
    let issued = 0;
    const issue: Handler = (req, res) => {
      tokens.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      const expected = opts.user === undefined ? undefined : `Basic ${Buffer.from(`${opts.user}:${opts.pass}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return json(res, 401, { details: 'bad credentials' });
      const scopes = new URL(req.url ?? '', 'http://x').searchParams.getAll('scope').join(' ');
      issued++;
      return json(res, 200, { access_token: `tok${issued}:${scopes}`, expires_in: 300 });
    };
    let origin = '';
    const challenge = (scope?: string, error?: string) =>
      `Bearer realm="${origin}/token",service="test-registry"${scope ? `,scope="${scope}"` : ''}${error ? `,error="${error}"` : ''}`;
    const registry = await serve((req, res) => {
      if (req.url?.startsWith('/token') === true) return issue(req, res);
      const authz = req.headers.authorization ?? '';
      if (req.url === '/v2/') return json(res, 401, errorBody('UNAUTHORIZED', 'authentication required'), { 'www-authenticate': challenge() });
      const repo = /^\/v2\/(.+)\/manifests\//.exec(req.url ?? '')?.[1] ?? '';
      const needs = `repository:${repo}:pull`;
      if (opts.scopeError === true && repo === 'b' && !authz.includes('repository:extra:pull')) {
        return json(res, 401, errorBody('DENIED', 'insufficient scope'), {
          'www-authenticate': challenge('repository:extra:pull', 'insufficient_scope'),
        });
      }
      if (!authz.startsWith('Bearer ') || !authz.includes(needs)) {
        return json(res, 401, errorBody('UNAUTHORIZED', 'authentication required'), { 'www-authenticate': challenge(needs) });
      }
      return serveManifest(res);
    });
    origin = registry.url;
    return { registry, tokens };
  }

  it('fetches a token with Basic credentials, service and scope, and caches it per scope', async () => {
    const { registry, tokens } = await tokenRegistry({ user: 'u', pass: 'p:w' });
    const c = client(registry.host, { credentials: { username: 'u', password: 'p:w' } });
    const m = await c.getManifest('a/b', 'v1');
    expect(m.digest).toBe(manifestDigest);
    await c.getManifest('a/b', 'v2');
    expect(tokens).toHaveLength(1);
    const q = new URL(tokens[0]?.url ?? '', 'http://x').searchParams;
    expect([q.get('service'), q.getAll('scope')]).toEqual(['test-registry', ['repository:a/b:pull']]);
    // The token was sent up front: no 401 round trip on the manifest requests.
    expect(registry.seen.filter((s) => s.url.includes('/manifests/')).length).toBe(2);
    expect(registry.seen.filter((s) => s.url.startsWith('/token'))).toHaveLength(1);
    await c.getManifest('c/d', 'v1');
    expect(tokens).toHaveLength(2);
  });

  it('fetches a new token once the cached one expires, by the injected clock', async () => {
    const { registry, tokens } = await tokenRegistry();
    let now = 1_000_000;
    const c = client(registry.host, { retry: { sleep: async () => {}, now: () => now } });
    await c.getManifest('a/b', 'v1');
    now += 200_000; // within expires_in 300 s (less the renewal margin)
    await c.getManifest('a/b', 'v1');
    expect(tokens).toHaveLength(1);
    now += 100_000;
    await c.getManifest('a/b', 'v1');
    expect(tokens).toHaveLength(2);
  });

  it('renews a token the registry stopped accepting and retries once', async () => {
    let issued = 0;
    let minimum = 1; // tokens numbered below this are refused
    const auth = await serve((_req, res) => json(res, 200, { token: `t${++issued}` }));
    const registry = await serve((req, res) => {
      const n = Number(/^Bearer t(\d+)$/.exec(req.headers.authorization ?? '')?.[1] ?? 0);
      if (n < minimum) return json(res, 401, {}, { 'www-authenticate': `Bearer realm="${auth.url}/token",service="s"` });
      return req.url === '/v2/' ? json(res, 200, {}) : serveManifest(res);
    });
    const c = client(registry.host);
    await c.getManifest('a/b', 'v1');
    minimum = 2;
    await c.getManifest('a/b', 'v1');
    expect(issued).toBe(2);
    expect(registry.seen.filter((r) => r.url.includes('manifests')).map((r) => r.headers.authorization)).toEqual(['Bearer t1', 'Bearer t1', 'Bearer t2']);
  });

  it('gets anonymous tokens without credentials', async () => {
    const { registry, tokens } = await tokenRegistry();
    await client(registry.host).getManifest('a/b', 'v1');
    expect(tokens[0]?.headers.authorization).toBeUndefined();
  });

  it('fetches a wider token and retries once on insufficient_scope', async () => {
    const { registry, tokens } = await tokenRegistry({ scopeError: true });
    const m = await client(registry.host).getManifest('b', 'v1');
    expect(m.digest).toBe(manifestDigest);
    expect(new URL(tokens[1]?.url ?? '', 'http://x').searchParams.getAll('scope').sort()).toEqual(['repository:b:pull', 'repository:extra:pull']);
  });

  it('reports refused credentials as AUTH naming the registry and repository, without the password', async () => {
    const { registry } = await tokenRegistry({ user: 'u', pass: 'right' });
    const err = await failure(client(registry.host, { credentials: { username: 'u', password: 'wrong-secret' } }).getManifest('a/b', 'v1'));
    expect(err.code).toBe('AUTH');
    expect(err.message).toBe(`registry ${registry.host} refused the credentials for a/b (from --creds)`);
    expect(err.hint).toContain('--creds');
    expect(JSON.stringify(err.toJSON())).not.toContain('wrong-secret');
  });

  it('uses an identity token in an OAuth2 refresh-token POST', async () => {
    let form = '';
    const registry = await serve((req, res) => {
      if (req.url === '/token') {
        let data = '';
        req.on('data', (c: Buffer) => (data += c.toString()));
        req.on('end', () => {
          form = data;
          json(res, 200, { access_token: 'oauth-token', expires_in: 60 });
        });
        return;
      }
      if (req.headers.authorization !== 'Bearer oauth-token') {
        return json(res, 401, {}, { 'www-authenticate': `Bearer realm="${registry.url}/token",service="svc"` });
      }
      return serveManifest(res);
    });
    const file = join(await mkdtemp(join(tmpdir(), 'airlock-idtok-')), 'auth.json');
    await writeFile(file, JSON.stringify({ auths: { [registry.host]: { identitytoken: 'refresh-123' } } }));
    await client(registry.host, { authFiles: [file] }).getManifest('a/b', 'v1');
    const params = new URLSearchParams(form);
    expect(registry.seen.find((r) => r.url === '/token')?.method).toBe('POST');
    expect(Object.fromEntries(params)).toMatchObject({
      grant_type: 'refresh_token',
      refresh_token: 'refresh-123',
      service: 'svc',
      scope: 'repository:a/b:pull',
    });
    await rm(join(file, '..'), { recursive: true });
  });
});

describe('Basic auth and status mapping', () => {
  const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
  async function basicRegistry(handler: Handler) {
    return serve((req, res) => {
      if (req.headers.authorization !== basic) return json(res, 401, errorBody('UNAUTHORIZED', 'no'), { 'www-authenticate': 'Basic realm="test"' });
      if (req.url === '/v2/') return json(res, 200, {});
      return handler(req, res);
    });
  }

  it('sends Basic credentials up front after the API check', async () => {
    const f = await basicRegistry((_req, res) => serveManifest(res));
    await client(f.host, { credentials: { username: 'u', password: 'p' } }).getManifest('a', 'v1');
    expect(f.seen.map((s) => s.url)).toEqual(['/v2/', '/v2/a/manifests/v1']);
  });

  it('reports missing credentials as AUTH with a login hint', async () => {
    const f = await basicRegistry((_req, res) => serveManifest(res));
    const err = await failure(client(f.host).getManifest('a', 'v1'));
    expect([err.code, err.message]).toEqual(['AUTH', `registry ${f.host} requires authentication for a`]);
    expect(err.hint).toContain('docker login');
  });

  it('maps 403 to AUTH and 404 to NOT_FOUND with the registry message', async () => {
    const f = await basicRegistry((req, res) =>
      req.url?.includes('/secret/')
        ? json(res, 403, errorBody('DENIED', 'requested access to the resource is denied'))
        : json(res, 404, errorBody('MANIFEST_UNKNOWN', 'manifest unknown')),
    );
    const c = client(f.host, { credentials: { username: 'u', password: 'p' } });
    expect((await failure(c.getManifest('secret/x', 'v1'))).code).toBe('AUTH');
    const nf = await failure(c.getManifest('a/b', 'v9'));
    expect([nf.code, nf.message]).toEqual(['NOT_FOUND', `manifest a/b:v9 not found on ${f.host}: MANIFEST_UNKNOWN: manifest unknown`]);
  });
});

describe('retries', () => {
  it('honours Retry-After on 429, then succeeds', async () => {
    let n = 0;
    const f = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      if (n++ === 0) return json(res, 429, errorBody('TOOMANYREQUESTS', 'slow down'), { 'retry-after': '2' });
      return serveManifest(res);
    });
    const slept: number[] = [];
    const c = client(f.host, { retry: { sleep: async (ms) => void slept.push(ms) } });
    expect((await c.getManifest('a', 'v1')).digest).toBe(manifestDigest);
    expect(slept).toEqual([2000]);
  });

  it('gives up with RATE_LIMITED after the retries', async () => {
    const f = await serve((req, res) => (req.url === '/v2/' ? json(res, 200, {}) : json(res, 429, {}, { 'retry-after': '1' })));
    const err = await failure(client(f.host, { retry: { sleep: async () => {}, retries: 2 } }).getManifest('a', 'v1'));
    expect(err.code).toBe('RATE_LIMITED');
    expect(f.seen.filter((s) => s.url.includes('manifests'))).toHaveLength(3);
  });

  it('retries 500 for a GET and gives up with REGISTRY', async () => {
    const f = await serve((req, res) => (req.url === '/v2/' ? json(res, 200, {}) : json(res, 500, errorBody('UNKNOWN', 'boom'))));
    const err = await failure(client(f.host, { retry: { sleep: async () => {}, retries: 1 } }).getManifest('a', 'v1'));
    expect([err.code, err.message]).toEqual(['REGISTRY', `registry ${f.host} failed with 500 for manifest a:v1: UNKNOWN: boom`]);
    expect(f.seen.filter((s) => s.url.includes('manifests'))).toHaveLength(2);
  });

  it('retries a connection reset during a run', async () => {
    let n = 0;
    const f = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      if (n++ === 0) return req.socket.resetAndDestroy();
      return serveManifest(res);
    });
    expect((await client(f.host).getManifest('a', 'v1')).digest).toBe(manifestDigest);
  });
});

describe('manifests', () => {
  it('sends all four manifest media types in Accept', async () => {
    const f = await serve((req, res) => (req.url === '/v2/' ? json(res, 200, {}) : serveManifest(res)));
    await client(f.host).getManifest('a', 'v1');
    const accept = String(f.seen[1]?.headers.accept);
    for (const t of [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList]) expect(accept).toContain(t);
  });

  it('verifies the digest when fetched by digest, and Docker-Content-Digest when by tag', async () => {
    const other = sha256Digest('other');
    const f = await serve((req, res) => (req.url === '/v2/' ? json(res, 200, {}) : serveManifest(res, req.url?.includes('lying') ? other : manifestDigest)));
    const c = client(f.host);
    expect((await c.getManifest('a', manifestDigest)).digest).toBe(manifestDigest);
    expect((await failure(c.getManifest('a', other))).code).toBe('INTEGRITY');
    expect((await failure(c.getManifest('a', 'lying'))).code).toBe('INTEGRITY');
  });

  it('refuses a manifest over 4 MiB without reading it', async () => {
    const f = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': 5 * 1024 * 1024 });
      res.write(Buffer.alloc(1024));
    });
    expect((await failure(client(f.host).getManifest('a', 'v1'))).code).toBe('UNSUPPORTED');
  });

  it('puts a manifest with its media type as Content-Type, by tag or by digest', async () => {
    const bodies: Buffer[] = [];
    const f = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks));
        res.writeHead(201, { 'docker-content-digest': manifestDigest, location: req.url ?? '' }).end();
      });
    });
    const c = client(f.host);
    const m = {
      kind: 'manifest' as const,
      bytes: manifestBytes,
      mediaType: MediaType.OciManifest,
      digest: manifestDigest,
      parsed: JSON.parse(manifestBytes.toString()),
    };
    await c.putManifest('a/b', m, 'v1');
    await c.putManifest('a/b', m, undefined);
    const puts = f.seen.filter((s) => s.method === 'PUT');
    expect(puts.map((s) => [s.url, s.headers['content-type']])).toEqual([
      ['/v2/a/b/manifests/v1', MediaType.OciManifest],
      [`/v2/a/b/manifests/${manifestDigest}`, MediaType.OciManifest],
    ]);
    expect(bodies.every((b) => b.equals(manifestBytes))).toBe(true);
  });
});

describe('tags', () => {
  it('follows Link pagination and removes duplicates', async () => {
    const f = await serve((req, res) => {
      if (req.url === '/v2/') return json(res, 200, {});
      const last = new URL(req.url ?? '', 'http://x').searchParams.get('last');
      if (last === null) return json(res, 200, { name: 'a', tags: ['1', '2'] }, { link: '</v2/a/tags/list?last=2&n=1000>; rel="next"' });
      if (last === '2') return json(res, 200, { name: 'a', tags: ['2', '3'] }, { link: `<${f.url}/v2/a/tags/list?last=3&n=1000>; rel="next"` });
      return json(res, 200, { name: 'a', tags: ['4'] });
    });
    expect(await client(f.host).listTags('a')).toEqual(['1', '2', '3', '4']);
    expect(f.seen[1]?.url).toBe('/v2/a/tags/list?n=1000');
  });

  it('reports a missing repository as NOT_FOUND', async () => {
    const f = await serve((req, res) =>
      req.url === '/v2/' ? json(res, 200, {}) : json(res, 404, errorBody('NAME_UNKNOWN', 'repository name not known to registry')),
    );
    const err = await failure(client(f.host).listTags('nope'));
    expect([err.code, err.message]).toEqual(['NOT_FOUND', `repository nope not found on ${f.host}: NAME_UNKNOWN: repository name not known to registry`]);
  });
});

// The test certificate is made with openssl.
describe.skipIf(!hasTool('openssl'))('TLS', () => {
  let dir: string;
  let caFile: string;
  let keyFile: string;
  let certFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-tls-'));
    caFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    certFile = caFile;
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function tlsServer(): Promise<Fixture> {
    const { readFileSync } = await import('node:fs');
    const server = createHttpsServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (_req, res) => json(res, 200, {}));
    return listen(server, 'https');
  }

  it('classifies an untrusted certificate as TLS with the --ca-file hint', async () => {
    const f = await tlsServer();
    const err = await failure(client(f.host, { plainHttp: false }).ping());
    expect(err.code).toBe('TLS');
    expect(err.message).toContain('is not trusted');
    expect(err.hint).toContain('--ca-file');
  });

  it('trusts a --ca-file, a certs.d HOST:PORT/ca.crt, or nothing with --insecure-skip-tls-verify', async () => {
    const f = await tlsServer();
    await client(f.host, { plainHttp: false, caFiles: [caFile] }).ping();
    const certsDir = join(dir, 'certs.d');
    await mkdir(join(certsDir, f.host), { recursive: true });
    await writeFile(join(certsDir, f.host, 'ca.crt'), await (await import('node:fs/promises')).readFile(caFile));
    await client(f.host, { plainHttp: false, certsDirs: [certsDir] }).ping();
    await client(f.host, { plainHttp: false, insecureSkipTlsVerify: true }).ping();
  });

  it('says so when TLS meets a plain HTTP server', async () => {
    const f = await serve((_req, res) => json(res, 200, {}));
    const err = await failure(client(f.host, { plainHttp: false }).ping());
    expect([err.code, err.hint]).toEqual(['TLS', 'use --plain-http if the registry serves plain HTTP, or check the port']);
  });

  it('refuses a client certificate without its key', async () => {
    const certsDir = join(dir, 'certs-nokey');
    await mkdir(join(certsDir, 'r.example'), { recursive: true });
    await writeFile(join(certsDir, 'r.example', 'client.cert'), 'x');
    const err = await failure(client('r.example', { plainHttp: false, certsDirs: [certsDir] }).ping());
    expect(err.code).toBe('TLS');
    expect(err.message).toContain('client.key');
  });
});
