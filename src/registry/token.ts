/**
 * Fetching a Bearer token from a registry's token realm (the distribution "token authentication"
 * spec, as Docker Hub, quay.io, ghcr.io, Harbor and GitLab implement it).
 *
 * Supported: anonymous `GET realm?service=…&scope=…`; the same with HTTP Basic when we have a
 * username and password; and, for an identity token (docker's `identitytoken`, or a helper's
 * `<token>` user), the OAuth2 refresh-token grant: `POST realm` with
 * `grant_type=refresh_token&refresh_token=…`. The password grant and registry tokens
 * (`registrytoken`) are not supported. The response may name the token `token` or `access_token`.
 */
import { request, type Dispatcher } from 'undici';
import { readCapped, MAX_ERROR_BODY_BYTES } from './body.js';
import type { Credentials } from './credentials.js';
import { statusError } from './errors.js';
import { failureReason, redactUrl, type RegistryListener } from './events.js';
import { DEFAULT_TIMEOUTS, type Timeouts } from './timeouts.js';
import { checkRealm, sendsSecret, showRealm } from './realm.js';
import type { Challenge } from './www-authenticate.js';
import { AirlockError } from '../errors.js';
import { registerSecret } from '../redact.js';

/** A token response is a few KB of JWT; 1 MiB leaves room for large claim sets and stops a flood. */
export const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

/** The token spec: a missing `expires_in` means 60 s, and no token lives shorter than that. */
export const MIN_TOKEN_LIFETIME_S = 60;

/** Tokens are renewed this long before they expire, so one is never sent as it runs out. */
export const TOKEN_RENEW_MARGIN_MS = 10_000;

/** The OAuth2 `client_id` we identify as in refresh-token grants. */
const OAUTH_CLIENT_ID = 'airlock';

/** A Bearer token and when to stop using it. */
export interface Token {
  value: string;
  /** Epoch ms after which the token must not be used. */
  expiresAt: number;
}

/** Everything {@link fetchToken} needs. */
export interface TokenRequest {
  /** A `bearer` challenge with at least `realm`. */
  challenge: Challenge;
  scopes: readonly string[];
  credentials: Credentials | undefined;
  dispatcher: Dispatcher;
  userAgent: string;
  /** Registry host and repository, for messages. */
  host: string;
  repository?: string;
  /** The registry's own origin (`https://registry-1.docker.io`): decides where credentials may go (see `realm.ts`). */
  registryOrigin: string;
  now: () => number;
  /** Receives a line when credentials go to a realm on another origin (shown by `--debug`). */
  debug?: (line: string) => void;
  signal?: AbortSignal;
  /** Head and body timeouts of the token request (default `DEFAULT_TIMEOUTS`). */
  timeouts?: Timeouts;
  /** Traces the request for `--debug`. */
  onEvent?: RegistryListener;
}

/** The realm as a URL; only http(s) is accepted. */
function realmUrl(req: TokenRequest): URL {
  const realm = req.challenge.params.realm ?? '';
  let url: URL | undefined;
  try {
    url = new URL(realm);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new AirlockError('REGISTRY', `registry ${req.host} sent an unusable token realm ${JSON.stringify(realm.slice(0, 100))}`, {
      subject: req.host,
      hint: "the registry's authentication is misconfigured; report it to its operator",
    });
  }
  return url;
}

function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** GET with optional Basic credentials. */
async function getToken(req: TokenRequest, url: URL): Promise<Dispatcher.ResponseData> {
  const { service } = req.challenge.params;
  if (service !== undefined) url.searchParams.set('service', service);
  for (const scope of req.scopes) url.searchParams.append('scope', scope);
  const headers: Record<string, string> = { 'user-agent': req.userAgent, accept: 'application/json' };
  const creds = req.credentials;
  if (creds?.username !== undefined && creds.password !== undefined) {
    headers.authorization = basicAuthorization(creds.username, creds.password);
  }
  return send(req, url, { method: 'GET', headers });
}

/** One request to the realm, with the client's timeouts, traced. */
async function send(
  req: TokenRequest,
  url: URL,
  opts: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<Dispatcher.ResponseData> {
  const t = req.timeouts ?? DEFAULT_TIMEOUTS;
  const started = performance.now();
  const trace = (status: number | undefined, err?: unknown): void =>
    req.onEvent?.({
      kind: 'http',
      method: opts.method,
      url: redactUrl(url),
      ms: Math.round(performance.now() - started),
      ...(status === undefined ? { error: failureReason(err, t) } : { status }),
    });
  try {
    const res = await request(url, {
      ...opts,
      dispatcher: req.dispatcher,
      signal: req.signal ?? null,
      headersTimeout: t.headersMs,
      bodyTimeout: t.bodyMs,
    });
    trace(res.statusCode);
    return res;
  } catch (err) {
    trace(undefined, err);
    throw err;
  }
}

/** POST of the OAuth2 refresh-token grant. */
async function postRefreshToken(req: TokenRequest, url: URL, refreshToken: string): Promise<Dispatcher.ResponseData> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: OAUTH_CLIENT_ID });
  if (req.challenge.params.service !== undefined) form.set('service', req.challenge.params.service);
  if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
  return send(req, url, {
    method: 'POST',
    headers: { 'user-agent': req.userAgent, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form.toString(),
  });
}

/** The AUTH error for a registry that refused credentials, or wants some we do not have. */
export function credentialsRefused(host: string, repository: string | undefined, credentials: Credentials | undefined): AirlockError {
  const repo = repository ?? 'its API';
  if (credentials === undefined) {
    return new AirlockError('AUTH', `registry ${host} requires authentication for ${repo}`, {
      subject: host,
      hint: `pass --creds USER:PASS or log in with docker login ${host}; the repository may also not exist`,
    });
  }
  return new AirlockError('AUTH', `registry ${host} refused the credentials for ${repo} (from ${credentials.source})`, {
    subject: host,
    hint: `check --creds, or log in again with docker login ${host}`,
    details: { credentialSource: credentials.source },
  });
}

function parseTokenResponse(req: TokenRequest, body: Buffer): Token {
  let doc: { token?: unknown; access_token?: unknown; refresh_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    doc = {};
  }
  // Every token in the answer is a secret, used or not: a server echoing one must not get it printed.
  for (const t of [doc.token, doc.access_token, doc.refresh_token]) if (typeof t === 'string') registerSecret(t);
  const value = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
  if (typeof value !== 'string' || value === '') {
    throw new AirlockError('REGISTRY', `token server of registry ${req.host} answered without a token`, {
      subject: req.host,
      hint: "the registry's authentication is misconfigured; report it to its operator",
    });
  }
  const lifetime = typeof doc.expires_in === 'number' && Number.isFinite(doc.expires_in) ? doc.expires_in : 0;
  const seconds = Math.max(MIN_TOKEN_LIFETIME_S, lifetime);
  return { value, expiresAt: req.now() + seconds * 1000 - TOKEN_RENEW_MARGIN_MS };
}

/**
 * Fetch a token for `scopes`. 401/403 from the realm is AUTH (credentials refused, or needed);
 * other statuses are mapped by {@link statusError} (so 429/5xx can be retried by the caller).
 */
export async function fetchToken(req: TokenRequest): Promise<Token> {
  const url = realmUrl(req);
  if (checkRealm(url, req.registryOrigin, req.host, req.credentials) === 'other-https') {
    const what = sendsSecret(req.credentials)
      ? `the credentials for ${req.host} (from ${req.credentials?.source})`
      : `an anonymous token request for ${req.host}`;
    req.debug?.(`sending ${what} to token realm ${showRealm(url)}, another origin than the registry's ${req.registryOrigin}`);
  }
  const identityToken = req.credentials?.identityToken;
  const res = identityToken === undefined ? await getToken(req, url) : await postRefreshToken(req, url, identityToken);
  const windowMs = (req.timeouts ?? DEFAULT_TIMEOUTS).bodyMs;
  if (res.statusCode === 401 || res.statusCode === 403) {
    await readCapped(res.body, MAX_ERROR_BODY_BYTES, 'truncate', windowMs);
    throw credentialsRefused(req.host, req.repository, req.credentials);
  }
  if (res.statusCode !== 200) {
    const body = await readCapped(res.body, MAX_ERROR_BODY_BYTES, 'truncate', windowMs);
    throw statusError(res.statusCode, body, { host: req.host, repository: req.repository, what: `token for ${req.scopes.join(' ') || 'the registry'}` });
  }
  let body: Buffer;
  try {
    body = await readCapped(res.body, MAX_TOKEN_RESPONSE_BYTES, 'throw', windowMs);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EBODYTOOLARGE') throw err;
    throw new AirlockError('REGISTRY', `token server of registry ${req.host} sent more than ${MAX_TOKEN_RESPONSE_BYTES} bytes`, {
      subject: req.host,
      cause: err,
    });
  }
  return parseTokenResponse(req, body);
}
