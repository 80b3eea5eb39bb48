/**
 * Answering a registry's authentication challenge: nothing, HTTP Basic, or a Bearer token per set
 * of scopes (`repository:NAME:pull`, `repository:NAME:pull,push`).
 *
 * The challenge is learnt once from `GET /v2/` (or from the first 401), so later requests carry
 * credentials up front instead of paying a 401 round trip each. Tokens are cached per scope set
 * until shortly before they expire, and concurrent requests for the same scopes share one fetch.
 * On a 401 (expired token, `error="insufficient_scope"`, a scope the registry wants added) the
 * caller asks {@link Authenticator.reauthorize} once for a fresh answer and retries once.
 */
import type { Dispatcher } from 'undici';
import type { Credentials } from './credentials.js';
import type { RegistryListener } from './events.js';
import type { Timeouts } from './timeouts.js';
import { credentialsRefused, fetchToken, type Token } from './token.js';
import { parseWwwAuthenticate, pickChallenge, type Challenge } from './www-authenticate.js';

/** What an {@link Authenticator} needs from its client. */
export interface AuthenticatorOptions {
  /** Registry host as the operator named it, for messages and credential lookup. */
  host: string;
  /** The registry's own origin, `https://registry-1.docker.io`: where credentials may always go. */
  origin: string;
  dispatcher: () => Promise<Dispatcher>;
  /** Credentials for a repository on this registry (memoised by the caller). */
  credentials: (repository: string | undefined) => Promise<Credentials | undefined>;
  userAgent: string;
  /** Current time in epoch ms, for token expiry. */
  now: () => number;
  /** The client's timeouts: token requests get the same. */
  timeouts: Timeouts;
  /** Traces token requests for `--debug`. */
  onEvent?: RegistryListener;
  /** Receives notes for `--debug` (each distinct line once). */
  debug?: (line: string) => void;
  /**
   * The client-wide signal. A token fetch is shared by every request needing those scopes, so
   * one caller's own signal must not abort it for the others.
   */
  signal?: AbortSignal;
}

/** The scope a request needs: `repository:NAME:pull` or `repository:NAME:pull,push`. */
export function repositoryScope(repository: string, push: boolean): string {
  return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
}

function scopeKey(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

function basic(creds: Credentials | undefined): string | undefined {
  if (creds?.username === undefined || creds.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

/** Holds one registry's challenge and token cache; shared by every request of a client. */
export class Authenticator {
  readonly #opts: AuthenticatorOptions;
  #challenge: Challenge | undefined;
  /** Scope key → token, or the fetch of it in flight. */
  readonly #tokens = new Map<string, Promise<Token>>();
  /** Debug lines already given: a realm note per token fetch would drown the trace. */
  readonly #noted = new Set<string>();

  constructor(opts: AuthenticatorOptions) {
    this.#opts = opts;
  }

  /** The scheme in use: `none` until a registry has challenged us. */
  get scheme(): 'none' | 'basic' | 'bearer' {
    return (this.#challenge?.scheme as 'basic' | 'bearer' | undefined) ?? 'none';
  }

  /** Record the challenge of a `GET /v2/` 401 (`WWW-Authenticate` values). */
  learn(header: string | readonly string[] | undefined): void {
    const challenge = pickChallenge(parseWwwAuthenticate(header));
    if (challenge !== undefined) this.#useChallenge(challenge);
  }

  #useChallenge(challenge: Challenge): void {
    const previous = this.#challenge;
    if (previous?.scheme !== challenge.scheme || previous.params.realm !== challenge.params.realm) this.#tokens.clear();
    this.#challenge = challenge;
  }

  /** The `Authorization` value for a request needing `scopes`, or undefined for none. */
  async authorization(scopes: readonly string[], repository: string | undefined): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    const creds = await this.#opts.credentials(repository);
    if (challenge.scheme === 'basic') return basic(creds);
    const token = await this.#cachedToken(scopes, repository, creds);
    return `Bearer ${token.value}`;
  }

  /**
   * After a 401: a new `Authorization` to retry with once, or an AUTH error when retrying cannot
   * help (Basic credentials already refused, none to offer, or no usable challenge).
   *
   * @param header the 401's `WWW-Authenticate` values
   * @param sent the `Authorization` the refused request carried
   */
  async reauthorize(
    header: string | readonly string[] | undefined,
    scopes: readonly string[],
    repository: string | undefined,
    sent: string | undefined,
  ): Promise<string> {
    const creds = await this.#opts.credentials(repository);
    const challenge = pickChallenge(parseWwwAuthenticate(header));
    if (challenge === undefined) throw credentialsRefused(this.#opts.host, repository, sent === undefined ? undefined : creds);
    this.#useChallenge(challenge);
    if (challenge.scheme === 'basic') {
      const answer = basic(creds);
      if (answer === undefined || sent === answer) throw credentialsRefused(this.#opts.host, repository, answer === undefined ? undefined : creds);
      return answer;
    }
    const wanted = [...scopes, ...(challenge.params.scope?.split(' ').filter((s) => s !== '') ?? [])];
    const key = scopeKey(wanted);
    const cached = await this.#peek(key);
    // Another request may have renewed the token meanwhile: use that one rather than fetch again.
    const token = cached !== undefined && `Bearer ${cached.value}` !== sent ? cached : await this.#fetch(key, wanted, repository, creds);
    this.#tokens.set(scopeKey(scopes), Promise.resolve(token));
    return `Bearer ${token.value}`;
  }

  /** The AUTH error for a request the registry refused even with fresh authorisation. */
  async refused(repository: string | undefined): Promise<Error> {
    const creds = this.#challenge === undefined ? undefined : await this.#opts.credentials(repository);
    return credentialsRefused(this.#opts.host, repository, creds);
  }

  /** A cached, unexpired token for `key`, if any (a failed fetch counts as none). */
  async #peek(key: string): Promise<Token | undefined> {
    const pending = this.#tokens.get(key);
    if (pending === undefined) return undefined;
    try {
      const token = await pending;
      return token.expiresAt > this.#opts.now() ? token : undefined;
    } catch {
      return undefined;
    }
  }

  async #cachedToken(scopes: readonly string[], repository: string | undefined, creds: Credentials | undefined): Promise<Token> {
    const key = scopeKey(scopes);
    return (await this.#peek(key)) ?? this.#fetch(key, scopes, repository, creds);
  }

  #debug(line: string): void {
    if (this.#opts.debug === undefined || this.#noted.has(line)) return;
    this.#noted.add(line);
    this.#opts.debug(line);
  }

  /**
   * Fetch a token and cache it under `key`; failures are not cached. Temporary failures are
   * retried by the request that needed the token (see `RegistryHttp.call`), not here as well.
   */
  #fetch(key: string, scopes: readonly string[], repository: string | undefined, creds: Credentials | undefined): Promise<Token> {
    const challenge = this.#challenge as Challenge;
    const pending = this.#opts.dispatcher().then((dispatcher) =>
      fetchToken({
        challenge,
        scopes,
        credentials: creds,
        dispatcher,
        userAgent: this.#opts.userAgent,
        host: this.#opts.host,
        repository,
        registryOrigin: this.#opts.origin,
        now: this.#opts.now,
        timeouts: this.#opts.timeouts,
        ...(this.#opts.onEvent === undefined ? {} : { onEvent: this.#opts.onEvent }),
        debug: (line: string) => this.#debug(line),
        ...(this.#opts.signal === undefined ? {} : { signal: this.#opts.signal }),
      }),
    );
    this.#tokens.set(key, pending);
    pending.catch(() => {
      if (this.#tokens.get(key) === pending) this.#tokens.delete(key);
    });
    return pending;
  }
}
