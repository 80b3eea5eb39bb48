/**
 * A Bearer token server for integration tests, speaking the Docker / OCI distribution token flow the
 * way Docker Hub, Harbor and GitLab do: `GET /token?service=S&scope=repository:NAME:pull,push`
 * (several `scope` parameters, or several scopes separated by spaces), optional Basic credentials,
 * answered with `{ token, access_token, expires_in, issued_at }`.
 *
 * It listens with HTTPS on a free 127.0.0.1 port, using the run's test PKI (see `registry.js`): the
 * server certificate, signed by the test CA, is both its TLS certificate and the token signer. Tokens
 * are ES256 JWTs carrying that certificate in `x5c`, so a registry whose `rootcertbundle` is the test
 * CA trusts them. Claims follow what distribution 2.8.2 checks: `iss`, `aud` as a string,
 * `exp`, `nbf`, `iat`, `access`. Every request is recorded, so tests can assert reuse and refresh.
 */
import { createPrivateKey, type KeyObject, randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { testPki, type TokenAuthOptions } from './registry.js';
import { listenLocal } from './listen.js';

/** A user of the token server; `access(repository)` lists the actions granted there (`*` = all). */
export interface TokenUser {
  username: string;
  password: string;
  access: (repository: string) => string[];
}

/** Options of {@link startTokenServer}. */
export interface TokenServerOptions {
  users?: TokenUser[];
  /** Grant `pull` on every repository to requests without credentials (default false: grant nothing). */
  anonymousPull?: boolean;
  /** `expires_in` of new tokens, in seconds (default {@link DEFAULT_EXPIRES_IN}). */
  expiresIn?: number;
  /** The `service` the registry names in its challenge and the tokens' `aud`. */
  service?: string;
  /** The tokens' `iss`; the registry must be configured with the same. */
  issuer?: string;
}

/** One entry of the `access` claim. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/** What one request to the token server asked for and got. */
export interface TokenRequest {
  /** The Basic user, or undefined for an anonymous request. */
  username: string | undefined;
  service: string | undefined;
  /** Scopes as asked, e.g. `repository:coreos/etcd:pull,push`. */
  scopes: string[];
  status: number;
  /** What the issued token grants (empty when no token was issued). */
  granted: TokenAccess[];
}

/** A running token server. */
export interface TestTokenServer {
  /** `https://127.0.0.1:PORT`. */
  url: string;
  /** `https://127.0.0.1:PORT/token`. */
  realm: string;
  service: string;
  issuer: string;
  /** What `startRegistry({ tokenAuth })` needs; add `username`/`password` for seeding and skopeo. */
  auth: TokenAuthOptions;
  /** Every request so far, oldest first (a live array: read it, don't keep a copy). */
  readonly requests: TokenRequest[];
  /** `expires_in` (and `exp - iat`) of tokens issued from now on, in seconds. */
  setExpiresIn(seconds: number): void;
  /** Forget the recorded requests. */
  reset(): void;
  stop(): Promise<void>;
}

/** Docker Hub's token lifetime; long enough that no test sees a token expire unless it asks to. */
export const DEFAULT_EXPIRES_IN = 300;
const DEFAULT_SERVICE = 'airlock-test-registry';
const DEFAULT_ISSUER = 'airlock-test-token-server';
const TOKEN_PATH = '/token';

/**
 * Start a token server on a free 127.0.0.1 port (HTTPS, test CA).
 * @example
 *   const tokens = await startTokenServer({ users: [{ username: 'u', password: 'p', access: () => ['pull', 'push'] }] });
 *   const reg = await startRegistry({ tokenAuth: { ...tokens.auth, username: 'u', password: 'p' } });
 *   try { ... tokens.requests.length ... } finally { await reg.stop(); await tokens.stop(); }
 */
export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TestTokenServer> {
  const pki = await testPki();
  const [certPem, keyPem] = await Promise.all([readFile(pki.certFile, 'utf8'), readFile(pki.keyFile, 'utf8')]);
  const signer: Signer = { key: createPrivateKey(keyPem), x5c: [new X509Certificate(certPem).raw.toString('base64')] };
  const service = opts.service ?? DEFAULT_SERVICE;
  const issuer = opts.issuer ?? DEFAULT_ISSUER;
  const state: ServerState = {
    users: new Map((opts.users ?? []).map((u) => [u.username, u])),
    anonymousPull: opts.anonymousPull ?? false,
    expiresIn: opts.expiresIn ?? DEFAULT_EXPIRES_IN,
    service,
    issuer,
    signer,
    requests: [],
  };
  const server = createServer({ key: keyPem, cert: certPem }, (req, res) => handle(state, req, res));
  const listening = await listenLocal(server);
  const url = `https://${listening.host}`;
  const realm = `${url}${TOKEN_PATH}`;
  return {
    url,
    realm,
    service,
    issuer,
    auth: { realm, service, issuer, rootCertBundle: pki.caFile, caFile: pki.caFile },
    get requests() {
      return state.requests;
    },
    setExpiresIn(seconds) {
      state.expiresIn = seconds;
    },
    reset() {
      state.requests.length = 0;
    },
    stop: () => listening.close(),
  };
}

interface Signer {
  key: KeyObject;
  x5c: string[];
}

interface ServerState {
  users: Map<string, TokenUser>;
  anonymousPull: boolean;
  expiresIn: number;
  service: string;
  issuer: string;
  signer: Signer;
  requests: TokenRequest[];
}

function handle(state: ServerState, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://127.0.0.1');
  const scopes = url.searchParams
    .getAll('scope')
    .flatMap((s) => s.split(' '))
    .filter((s) => s !== '');
  const service = url.searchParams.get('service') ?? undefined;
  const record: TokenRequest = { username: undefined, service, scopes, status: 0, granted: [] };
  state.requests.push(record);
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    record.status = status;
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
  const error = (status: number, code: string, message: string, headers?: Record<string, string>): void =>
    answer(status, { errors: [{ code, message }] }, headers);

  if (url.pathname !== TOKEN_PATH) return error(404, 'NOT_FOUND', `no such path: ${url.pathname}`);
  if (req.method !== 'GET') return error(405, 'UNSUPPORTED', `${String(req.method)} is not supported, use GET`);
  if (service !== undefined && service !== state.service) {
    return error(400, 'INVALID_REQUEST', `unknown service ${service}, this server issues tokens for ${state.service}`);
  }
  const login = basicCredentials(req.headers.authorization);
  if (login === null) return error(400, 'INVALID_REQUEST', 'malformed Authorization header');
  record.username = login?.username;
  const user = login ? state.users.get(login.username) : undefined;
  if (login && user?.password !== login.password) {
    return error(401, 'UNAUTHORIZED', 'incorrect username or password', { 'www-authenticate': 'Basic realm="airlock-test"' });
  }
  const allowed = (repository: string): string[] => (user ? user.access(repository) : state.anonymousPull ? ['pull'] : []);
  record.granted = scopes.flatMap((scope) => grant(scope, allowed));
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(state.signer, {
    iss: state.issuer,
    sub: user?.username ?? '',
    aud: state.service,
    exp: now + state.expiresIn,
    nbf: now,
    iat: now,
    jti: randomUUID(),
    access: record.granted,
  });
  answer(200, { token, access_token: token, expires_in: state.expiresIn, issued_at: new Date(now * 1000).toISOString() });
}

/**
 * `Basic base64(user:pass)` → the pair; no header → undefined; anything else → null.
 */
function basicCredentials(header: string | undefined): { username: string; password: string } | undefined | null {
  if (header === undefined) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim());
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * `repository:NAME:ACTIONS` → the requested actions the user holds there (none: no entry). Other
 * resource types (`registry:catalog:*`) are never granted.
 */
function grant(scope: string, allowed: (repository: string) => string[]): TokenAccess[] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return [];
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  if (type !== 'repository') return [];
  const held = allowed(name);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '' && (held.includes('*') || held.includes(a)));
  return actions.length > 0 ? [{ type, name, actions: [...new Set(actions)] }] : [];
}

/** A compact JWS, ES256 (r || s, not DER), the signer's certificate chain in `x5c`. */
function signJwt(signer: Signer, claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const data = `${part({ typ: 'JWT', alg: 'ES256', x5c: signer.x5c })}.${part(claims)}`;
  const signature = sign('sha256', Buffer.from(data), { key: signer.key, dsaEncoding: 'ieee-p1363' });
  return `${data}.${signature.toString('base64url')}`;
}
