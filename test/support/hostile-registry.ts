/**
 * A hostile registry for tests: an HTTP(S) server of our own that speaks enough of the distribution
 * API to be talked to, and misbehaves the way an attacker's (or a broken proxy's) registry would.
 * It is not a mock of the happy path: whatever it does not intercept it forwards to a real registry
 * (`upstream`, from `registry.ts`), so airlock runs its real protocol against it.
 *
 * Behaviours are chosen per test with {@link HostileRegistry.set} (each call replaces the last):
 *
 * - `auth`: open (default), HTTP Basic, or Bearer with the token realm at one of
 *   {@link RealmKind}: the registry's own origin, another port over HTTPS, the same over HTTPS under
 *   the host name `localhost` (another host to a client), or another port over plain HTTP. The token
 *   endpoints answer from this tool too and record every request, including whether an
 *   `Authorization` header reached them ({@link HostileRegistry.tokenRequests}).
 * - `failures`: answer matching requests (method, path pattern; after authentication, so they carry
 *   the client's credentials) with a status and a hostile body: `echo-authorization` repeats the
 *   `Authorization` header (Basic or Bearer), its decoded user and password, and the password in
 *   base64, in the JSON error message, its detail and a response header, in no form a pattern
 *   would recognise (no `Authorization:` or `"password":` around them); `ansi` is an error message full of terminal
 *   escape sequences (colour, erase line, cursor up, window title, a hyperlink), CR, BEL, a C1 CSI and
 *   a bidi override; any other string is sent as the body as it is.
 * - `tokenFailure`: the token endpoint answers with such a status and body instead of a token.
 * - `tags`: the tag list of a repository (`/v2/NAME/tags/list`), served instead of upstream's; see
 *   {@link HOSTILE_TAGS} for names no registry should hand out (`.`, path traversal, very long).
 * - `editManifest`: rewrite manifests read from upstream (by tag or digest) before serving them;
 *   the edited bytes get their own digest (`Docker-Content-Digest`) and are then also served by that
 *   digest. {@link skewLayerSize} is one such edit: the same layer digest with another size in one
 *   manifest than in the others.
 *
 * Every request is recorded ({@link HostileRegistry.requests}) with its method, path and
 * `Authorization`, so a test can assert what was (not) sent, e.g. that no path held `..`.
 *
 * @example
 *   const upstream = await startRegistry();
 *   const hostile = await startHostileRegistry({ tls: true, upstream });
 *   hostile.set({ auth: { kind: 'basic', ...LOGIN }, failures: [{ method: 'GET', path: /manifests/, status: 500, body: 'echo-authorization' }] });
 *   // airlock bundle create HOSTILE.host/app:1 --ca-file hostile.caFile --creds HOST=u:p ...
 *   await hostile.stop();
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Agent, request } from 'undici';
import { listenLocal } from './listen.js';
import { MANIFEST_TYPES, testPki, type TestRegistry } from './registry.js';

/** Where the Bearer challenge points its realm. */
export type RealmKind = 'same-origin' | 'https-other-port' | 'https-localhost' | 'http-other-port';

/** A body the hostile registry answers with; see the module comment. */
export type HostileBody = 'echo-authorization' | 'ansi' | (string & {});

/** Answer requests that match with `status` and a hostile body. */
export interface Failure {
  /** Default: any method. */
  method?: string;
  /** Tested against the path and query. Default: any `/v2/…` path except `/v2/` itself. */
  path?: RegExp;
  status: number;
  body: HostileBody;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** A login the registry (Basic) or its token endpoint (Bearer) accepts. */
export interface Login {
  username: string;
  password: string;
}

/** What the hostile registry does; every field is optional. */
export interface Behaviour {
  auth?: ({ kind: 'basic' } & Login) | ({ kind: 'bearer'; realm: RealmKind } & Partial<Login>);
  failures?: Failure[];
  tokenFailure?: { status: number; body: HostileBody };
  tags?: Record<string, string[]>;
  /** Return a replacement document for `repository`/`reference`, or undefined to serve it unchanged. */
  editManifest?: (repository: string, reference: string, manifest: Record<string, unknown>) => Record<string, unknown> | undefined;
}

/** One request to the registry or a token endpoint. */
export interface RecordedRequest {
  method: string;
  /** The Host header: `127.0.0.1:PORT`, or `localhost:PORT` when the client took it for another host. */
  host: string;
  /** Path and query as received. */
  url: string;
  /** The `Authorization` header, or undefined when none was sent. */
  authorization: string | undefined;
}

/** One request to a token endpoint: which one, and what it carried. */
export interface RecordedTokenRequest extends RecordedRequest {
  realm: RealmKind;
}

/** A running hostile registry. */
export interface HostileRegistry {
  /** `127.0.0.1:PORT`: what goes into references. */
  host: string;
  /** The same server as another host: `localhost:PORT`. */
  localhostHost: string;
  /** `http(s)://127.0.0.1:PORT`. */
  url: string;
  /** The CA to trust (TLS only; it also signs the HTTPS token endpoints). */
  caFile?: string;
  /** The realm URL of each kind. */
  realm(kind: RealmKind): string;
  /** Every registry request so far, oldest first (a live array). */
  readonly requests: RecordedRequest[];
  /** Every token request so far, oldest first (a live array). */
  readonly tokenRequests: RecordedTokenRequest[];
  /** Tokens issued so far (the secrets a test greps for). */
  readonly tokens: string[];
  /** Replace the behaviour and forget recorded requests and tokens. */
  set(behaviour: Behaviour): void;
  stop(): Promise<void>;
}

/**
 * Tag names a hostile registry may list and no client should request or bundle: the current and
 * parent directory, a path that climbs out of the repository into another one's manifests, a tag
 * at the grammar's 128-character limit plus one, one far beyond it, one with a terminal escape.
 */
export const HOSTILE_TAGS: readonly string[] = [
  '.',
  '..',
  '../../../v2/other/manifests/1',
  'a/../../b',
  `t${'x'.repeat(128)}`,
  'x'.repeat(10_000),
  '-leading-dash',
  'has space',
  'red\x1b[31m',
];

/**
 * An {@link Behaviour.editManifest} that adds `by` to the size of layer `layer` of the manifest
 * `repository:tag`, leaving every other manifest alone: one layer digest, two sizes.
 */
export function skewLayerSize(repository: string, tag: string, by = 1, layer = 0): NonNullable<Behaviour['editManifest']> {
  return (repo, reference, manifest) => {
    if (repo !== repository || reference !== tag || !Array.isArray(manifest.layers)) return undefined;
    const layers = (manifest.layers as Record<string, unknown>[]).map((l, i) => (i === layer ? { ...l, size: Number(l.size) + by } : l));
    return { ...manifest, layers };
  };
}

/** What the `ansi` body says: every kind of terminal control a hostile message could carry. */
export const ANSI_MESSAGE =
  '\x1b[2K\x1b[1A\x1b[31mFATAL\x1b[0m \x1b]0;owned\x07\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ access denied\rOK \u009b2J\x08\x08\u202eexe.txt';

/** Headers not copied between the client's and upstream's connections. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'authorization', 'upgrade', 'proxy-connection']);

interface State {
  behaviour: Behaviour;
  requests: RecordedRequest[];
  tokenRequests: RecordedTokenRequest[];
  tokens: string[];
  /** Edited manifests by their new digest. */
  edited: Map<string, { body: Buffer; mediaType: string }>;
}

/**
 * Start a hostile registry on a free 127.0.0.1 port, with its token endpoints on two more.
 * @param opts.tls serve HTTPS with the test PKI (its certificate names 127.0.0.1 and localhost)
 * @param opts.upstream forward what no behaviour intercepts to this registry (else: 404)
 */
export async function startHostileRegistry(opts: { tls?: boolean; upstream?: TestRegistry } = {}): Promise<HostileRegistry> {
  const pki = await testPki();
  const tlsFiles = { key: await readFile(pki.keyFile), cert: await readFile(pki.certFile) };
  const state: State = { behaviour: {}, requests: [], tokenRequests: [], tokens: [], edited: new Map() };
  const upstreamAgent = new Agent({ connect: opts.upstream?.caFile ? { ca: await readFile(opts.upstream.caFile, 'utf8') } : {} });
  const realms = {} as Record<RealmKind, string>;

  const token = (kind: RealmKind) => (req: IncomingMessage, res: ServerResponse) => serveToken(state, kind, req, res);
  // One HTTPS token server answers both as 127.0.0.1 and as localhost; the Host header tells which realm was used.
  const httpsTokens = await listenLocal(
    createHttpsServer(tlsFiles, (req, res) => token(/^localhost:/.test(req.headers.host ?? '') ? 'https-localhost' : 'https-other-port')(req, res)),
  );
  const httpTokens = await listenLocal(createHttpServer(token('http-other-port')));
  const registry = await listenLocal(
    opts.tls === true
      ? createHttpsServer(tlsFiles, (req, res) => serveRegistry(state, realms, opts.upstream, upstreamAgent, origin, req, res))
      : createHttpServer((req, res) => serveRegistry(state, realms, opts.upstream, upstreamAgent, origin, req, res)),
  );
  const origin = `${opts.tls === true ? 'https' : 'http'}://127.0.0.1:${registry.port}`;
  realms['same-origin'] = `${origin}/token`;
  realms['https-other-port'] = `https://127.0.0.1:${httpsTokens.port}/token`;
  realms['https-localhost'] = `https://localhost:${httpsTokens.port}/token`;
  realms['http-other-port'] = `http://127.0.0.1:${httpTokens.port}/token`;

  return {
    host: `127.0.0.1:${registry.port}`,
    localhostHost: `localhost:${registry.port}`,
    url: origin,
    ...(opts.tls === true ? { caFile: pki.caFile } : {}),
    realm: (kind) => realms[kind],
    get requests() {
      return state.requests;
    },
    get tokenRequests() {
      return state.tokenRequests;
    },
    get tokens() {
      return state.tokens;
    },
    set(behaviour) {
      state.behaviour = behaviour;
      state.requests.length = 0;
      state.tokenRequests.length = 0;
      state.tokens.length = 0;
      state.edited.clear();
    },
    async stop() {
      await Promise.all([registry.close(), httpsTokens.close(), httpTokens.close()]);
      await upstreamAgent.close();
    },
  };
}

function json(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}

/** `Basic base64(user:pass)` → the pair, else undefined. */
function decodeBasic(header: string | undefined): Login | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (m?.[1] === undefined) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Send a hostile body with `status`. */
function hostile(res: ServerResponse, status: number, body: HostileBody, authorization: string | undefined, headers: Record<string, string> = {}): void {
  if (body === 'echo-authorization') {
    const login = decodeBasic(authorization);
    // Not in `Authorization: …` or `"password": …` form: a hostile server need not make pattern-based redaction easy.
    const said = `request refused; you sent "${authorization ?? '(none)'}" as user ${login?.username ?? '?'} with ${login?.password ?? '?'}`;
    const detail = {
      sent: authorization ?? null,
      pw: login?.password ?? null,
      pw64: login === undefined ? null : Buffer.from(login.password).toString('base64'),
    };
    const echo = (authorization ?? '').replace(/[^\x20-\x7e]/g, '');
    return json(res, status, { errors: [{ code: 'DENIED', message: said, detail }] }, { 'x-echo-authorization': echo, ...headers });
  }
  if (body === 'ansi') return json(res, status, { errors: [{ code: 'DENIED', message: ANSI_MESSAGE, detail: { why: ANSI_MESSAGE } }] }, headers);
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}

function serveToken(state: State, realm: RealmKind, req: IncomingMessage, res: ServerResponse): void {
  const authorization = req.headers.authorization;
  state.tokenRequests.push({ realm, method: req.method ?? '', host: req.headers.host ?? '', url: req.url ?? '', authorization });
  req.resume();
  const { behaviour } = state;
  if (behaviour.tokenFailure !== undefined) return hostile(res, behaviour.tokenFailure.status, behaviour.tokenFailure.body, authorization);
  const auth = behaviour.auth;
  const wanted = auth?.kind === 'bearer' && auth.username !== undefined ? auth : undefined;
  if (wanted !== undefined) {
    const got = decodeBasic(authorization);
    if (got?.username !== wanted.username || got?.password !== wanted.password) {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad login' }] });
    }
  }
  const issued = `hostile-${randomBytes(24).toString('hex')}`;
  state.tokens.push(issued);
  json(res, 200, { token: issued, access_token: issued, expires_in: 300 });
}

/** `repository:NAME:pull` or `…:pull,push` for a request path. */
function scopeOf(method: string, path: string): string | undefined {
  const name = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(path)?.[1];
  if (name === undefined) return undefined;
  return `repository:${name}:${method === 'GET' || method === 'HEAD' ? 'pull' : 'pull,push'}`;
}

/** Whether the request passes the behaviour's authentication; answers the 401 itself if not. */
function authenticate(state: State, realms: Record<RealmKind, string>, req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const auth = state.behaviour.auth;
  if (auth === undefined) return true;
  const authorization = req.headers.authorization;
  if (auth.kind === 'basic') {
    const got = decodeBasic(authorization);
    if (got?.username === auth.username && got.password === auth.password) return true;
    json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': 'Basic realm="hostile"' });
    return false;
  }
  const bearer = /^Bearer\s+(\S+)$/.exec(authorization ?? '')?.[1];
  if (bearer !== undefined && state.tokens.includes(bearer)) return true;
  const scope = scopeOf(req.method ?? 'GET', path);
  const challenge = `Bearer realm="${realms[auth.realm]}",service="hostile"${scope === undefined ? '' : `,scope="${scope}"`}`;
  json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': challenge });
  return false;
}

function serveRegistry(
  state: State,
  realms: Record<RealmKind, string>,
  upstream: TestRegistry | undefined,
  agent: Agent,
  origin: string,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const url = req.url ?? '/';
  const method = req.method ?? 'GET';
  const authorization = req.headers.authorization;
  state.requests.push({ method, host: req.headers.host ?? '', url, authorization });
  const path = url.split('?')[0] ?? url;
  if (path === '/token') {
    serveToken(state, 'same-origin', req, res);
    return;
  }
  if (!authenticate(state, realms, req, res, path)) {
    req.resume();
    return;
  }
  const failure = state.behaviour.failures?.find(
    (f) => (f.method === undefined || f.method === method) && (f.path === undefined ? path !== '/v2/' : f.path.test(url)),
  );
  if (failure !== undefined) {
    req.resume();
    hostile(res, failure.status, failure.body, authorization, failure.headers);
    return;
  }
  const tags = /^\/v2\/(.+)\/tags\/list$/.exec(path);
  const listed = tags?.[1] === undefined ? undefined : state.behaviour.tags?.[tags[1]];
  if (listed !== undefined) {
    req.resume();
    json(res, 200, { name: tags?.[1], tags: listed });
    return;
  }
  const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
  if (manifest !== null && (method === 'GET' || method === 'HEAD')) {
    const [, repository = '', reference = ''] = manifest;
    const kept = state.edited.get(decodeURIComponent(reference));
    if (kept !== undefined) {
      req.resume();
      sendManifest(res, method, kept.body, kept.mediaType);
      return;
    }
    if (state.behaviour.editManifest !== undefined && upstream !== undefined) {
      req.resume();
      editedManifest(state, upstream, agent, method, repository, decodeURIComponent(reference), res).catch((err: unknown) => fail(res, err));
      return;
    }
  }
  if (upstream === undefined) {
    req.resume();
    if (path === '/v2/') json(res, 200, {});
    else json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    return;
  }
  forward(upstream, agent, origin, req, res).catch((err: unknown) => fail(res, err));
}

function fail(res: ServerResponse, err: unknown): void {
  if (res.headersSent) res.destroy(err as Error);
  else json(res, 502, { errors: [{ code: 'UNKNOWN', message: `hostile proxy: ${(err as Error).message}` }] });
}

function sendManifest(res: ServerResponse, method: string, body: Buffer, mediaType: string): void {
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  res.writeHead(200, { 'content-type': mediaType, 'content-length': body.length, 'docker-content-digest': digest });
  res.end(method === 'HEAD' ? undefined : body);
}

/** GET the manifest upstream, apply the edit, keep the result under its digest, answer with it. */
async function editedManifest(
  state: State,
  upstream: TestRegistry,
  agent: Agent,
  method: string,
  repository: string,
  reference: string,
  res: ServerResponse,
): Promise<void> {
  const up = await request(`${upstream.url}/v2/${repository}/manifests/${encodeURIComponent(reference)}`, {
    headers: { accept: MANIFEST_TYPES.join(', ') },
    dispatcher: agent,
  });
  const body = Buffer.from(await up.body.arrayBuffer());
  const mediaType = String(up.headers['content-type'] ?? MANIFEST_TYPES[0]);
  if (up.statusCode !== 200) {
    res.writeHead(up.statusCode, { 'content-type': mediaType, 'content-length': body.length }).end(body);
    return;
  }
  const edit = state.behaviour.editManifest?.(repository, reference, JSON.parse(body.toString('utf8')) as Record<string, unknown>);
  if (edit === undefined) return sendManifest(res, method, body, mediaType);
  const edited = Buffer.from(JSON.stringify(edit));
  state.edited.set(`sha256:${createHash('sha256').update(edited).digest('hex')}`, { body: edited, mediaType });
  sendManifest(res, method, edited, mediaType);
}

/** Forward one request to upstream (without the client's Authorization), rewriting `Location`. */
async function forward(upstream: TestRegistry, agent: Agent, origin: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_HEADERS.has(name)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const method = (req.method ?? 'GET') as 'GET';
  const hasBody = !['GET', 'HEAD'].includes(method);
  const up = await request(`${upstream.url}${req.url ?? '/'}`, {
    method,
    headers,
    body: hasBody ? req : null,
    dispatcher: agent,
  });
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(up.headers)) {
    if (value === undefined || HOP_HEADERS.has(name)) continue;
    out[name] = name === 'location' && typeof value === 'string' ? value.replace(upstream.url, origin) : value;
  }
  res.writeHead(up.statusCode, out);
  for await (const chunk of up.body) res.write(chunk as Buffer);
  res.end();
}
